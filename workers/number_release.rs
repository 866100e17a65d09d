//! `trial.number_release`: frees a purged trial's calling numbers once
//! their hold ended, so that another trial may reserve them.

use async_trait::async_trait;
use serde_json::json;

use super::trial_notices::lock_job_trial;
use crate::job::{JobError, JobKind};
use crate::runtime::{JobContext, JobHandler};
use crate::store::jobs::JobRow;
use crate::store::{Tx, trials};
use crate::trials::{TrialChange, audit_change};

pub struct NumberRelease;

#[async_trait]
impl JobHandler for NumberRelease {
    fn kind(&self) -> JobKind {
        JobKind::NumberRelease
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let (trial, now) = lock_job_trial(ctx, tx, job).await?;
        let trial_id = trial.id;
        let released = trials::release_numbers(tx, trial_id, now).await?;
        if released.is_empty() {
            return Ok(()); // released by an earlier delivery, or not yet due
        }
        let change = TrialChange {
            action: "trial.numbers_released",
            from: None,
            to: None,
            token_id: job.token_id,
            job_id: Some(job.id),
            detail: json!({ "numbers": released }),
        };
        audit_change(tx, &trial, change, now).await?;
        Ok(())
    }
}
