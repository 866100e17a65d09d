//! `trial.number_release`: frees a purged trial's calling numbers once
//! their hold ended, so that another trial may reserve them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::job::{JobArgs, JobError, JobKind};
use crate::runtime::{JobContext, Worker};
use crate::store::jobs::JobRow;
use crate::store::{Tx, trials};
use crate::trials::job::{TrialJob, lock_trial};
use crate::trials::{TrialChange, audit_change};

/// The args of `trial.number_release`: the purged trial whose numbers are held.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NumberReleaseArgs(pub TrialJob);

impl JobArgs for NumberReleaseArgs {
    const KIND: JobKind = JobKind::NumberRelease;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const NumberRelease: JobKind = JobKind::new("trial.number_release");
}

pub struct NumberRelease;

#[async_trait]
impl Worker for NumberRelease {
    type Args = NumberReleaseArgs;

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        NumberReleaseArgs(args): NumberReleaseArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let (trial, now) = lock_trial(tx, args, &ctx.clock).await?;
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
