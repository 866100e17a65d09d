//! `trial.purge`: the irreversible end of an unconverted trial. One
//! transaction, under the trial's lock, re-checks that the trial is still
//! unconverted with its grace over (a conversion or extension that arrived
//! while this job waited wins), then deletes the organisation's licenses,
//! admin roles and settings, moves its members to the free organisation,
//! holds its numbers, audits the purge and queues the members' mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::job::{JobArgs, JobError, JobKind};
use crate::runtime::{JobContext, Worker};
use crate::store::directory::UserStatus;
use crate::store::jobs::JobRow;
use crate::store::trials::TrialStatus;
use crate::store::{Tx, directory, trials};
use crate::trials::job::{TrialJob, lock_trial};
use crate::trials::{Timeline, TrialChange, audit_change, queue_purge_mails};

/// The args of `trial.purge`: the unconverted trial whose grace is over.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialPurgeArgs(pub TrialJob);

impl JobArgs for TrialPurgeArgs {
    const KIND: JobKind = JobKind::TrialPurge;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const TrialPurge: JobKind = JobKind::new("trial.purge");
}

pub struct TrialPurge;

#[async_trait]
impl Worker for TrialPurge {
    type Args = TrialPurgeArgs;

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        TrialPurgeArgs(args): TrialPurgeArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let (trial, now) = lock_trial(tx, args, &ctx.clock).await?;
        let trial_id = trial.id;
        let timeline = Timeline::from_settings(&ctx.settings.trial);
        if !timeline.purge_due(trial.status, trial.ends_at, now) {
            tracing::info!(%trial_id, status = %trial.status, ends_at = %trial.ends_at,
                "purge not due any more; nothing deleted");
            return Ok(());
        }
        let members = trials::members(&mut **tx, trial_id).await?;
        let release_at = now + timeline.number_hold;
        let deleted = trials::purge_organisation(tx, trial_id, release_at, now).await?;
        trials::set_status(tx, trial_id, TrialStatus::Purged, None, now).await?;
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
            from: Some(trial.status.as_str()),
            to: Some("purged"),
            token_id: job.token_id,
            job_id: Some(job.id),
            detail: json!({
                "ends_at": trial.ends_at,
                "deleted": { "licenses": deleted.licenses, "admin_roles": deleted.admin_roles,
                             "settings": deleted.settings },
                "users_moved_to_free": members.iter().filter(|u| u.status == UserStatus::Active)
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
