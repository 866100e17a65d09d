//! `trial.purge`: the irreversible end of an unconverted trial. One
//! transaction, under the trial's lock, re-checks that the trial is still
//! unconverted with its grace over (a conversion or extension that arrived
//! while this job waited wins), then deletes the organisation's licenses,
//! admin roles and settings, moves its members to the free organisation,
//! holds its numbers, audits the purge and queues the members' mail.

use async_trait::async_trait;
use serde_json::json;

use super::trial_notices::lock_job_trial;
use crate::job::{JobError, JobKind};
use crate::runtime::{JobContext, JobHandler};
use crate::store::jobs::JobRow;
use crate::store::{Tx, directory, trials};
use crate::trials::{Timeline, TrialChange, audit_change, queue_purge_mails};

pub struct TrialPurge;

#[async_trait]
impl JobHandler for TrialPurge {
    fn kind(&self) -> JobKind {
        JobKind::TrialPurge
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let (trial, now) = lock_job_trial(ctx, tx, job).await?;
        let trial_id = trial.id;
        let timeline = Timeline::from_settings(&ctx.settings.trial);
        if !timeline.purge_due(&trial.status, trial.ends_at, now) {
            tracing::info!(%trial_id, status = %trial.status, ends_at = %trial.ends_at,
                "purge not due any more; nothing deleted");
            return Ok(());
        }
        let members = trials::members(&mut **tx, trial_id).await?;
        let release_at = now + timeline.number_hold;
        let deleted = trials::purge_organisation(tx, trial_id, release_at, now).await?;
        trials::set_status(tx, trial_id, "purged", None, now).await?;
        trials::record_notice(
            tx,
            trial_id,
            "purged",
            trial.ends_at,
            "sent",
            Some(job.id),
            now,
        )
        .await?;
        let change = TrialChange {
            action: "trial.purged",
            from: Some(&trial.status),
            to: Some("purged"),
            token_id: job.token_id,
            job_id: Some(job.id),
            detail: json!({
                "ends_at": trial.ends_at,
                "deleted": { "licenses": deleted.licenses, "admin_roles": deleted.admin_roles,
                             "settings": deleted.settings },
                "users_moved_to_free": members.iter().filter(|u| u.status == "active")
                    .map(|u| &u.id).collect::<Vec<_>>(),
                "numbers_held_until": release_at,
            }),
        };
        audit_change(tx, &trial, change, now).await?;
        let customer_name = directory::find_customer(&mut **tx, &trial.customer_id)
            .await?
            .map(|c| c.name)
            .unwrap_or_default();
        queue_purge_mails(&ctx.mailer, tx, &trial, &members, &customer_name, now).await
    }
}
