//! `trial.notices`: under the trial's lock, expires a trial that reached
//! its end and sends the notices of its current term that are due. Each
//! notice is recorded once per trial, kind and term, so a redelivery or a
//! second sweep finds it recorded and sends nothing.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::job::{JobArgs, JobError, JobKind};
use crate::runtime::{JobContext, Worker};
use crate::store::jobs::JobRow;
use crate::store::trials::TrialStatus;
use crate::store::{Tx, directory, trials};
use crate::trials::job::{TrialJob, lock_trial};
use crate::trials::{
    AdminNotice, Notice, Timeline, TrialChange, TrialMoment, audit_change, queue_admin_notices,
};

/// The args of `trial.notices`: the trial whose notices may be due.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrialNoticesArgs(pub TrialJob);

impl JobArgs for TrialNoticesArgs {
    const KIND: JobKind = JobKind::TrialNotices;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const TrialNotices: JobKind = JobKind::new("trial.notices");
}

pub struct TrialNotices;

#[async_trait]
impl Worker for TrialNotices {
    type Args = TrialNoticesArgs;

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        TrialNoticesArgs(args): TrialNoticesArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let (trial, now) = lock_trial(tx, args, &ctx.clock).await?;
        let trial_id = trial.id;
        let timeline = Timeline::from_settings(&ctx.settings.trial);
        let recorded = trials::notices(&mut **tx, trial_id).await?;
        let is_recorded = |kind: &str| {
            recorded
                .iter()
                .any(|n| n.kind == kind && n.term_ends == trial.ends_at)
        };
        let moment = TrialMoment {
            status: trial.status,
            ends_at: trial.ends_at,
            expiring_recorded: is_recorded("expiring"),
            expired_recorded: is_recorded("expired"),
        };
        let plan = timeline.notice_plan(moment, now);
        if plan.is_empty() {
            return Ok(()); // done by an earlier delivery, converted, or extended
        }
        if plan.expire {
            let grace_ends = timeline.grace_ends(trial.ends_at);
            trials::set_status(tx, trial_id, TrialStatus::Expired, Some(grace_ends), now).await?;
            let change = TrialChange {
                action: "trial.status",
                from: Some("active"),
                to: Some("expired"),
                token_id: job.token_id,
                job_id: Some(job.id),
                detail: json!({ "ends_at": trial.ends_at, "grace_ends_at": grace_ends }),
            };
            audit_change(tx, &trial, change, now).await?;
        }
        let customer_name = directory::find_customer(&mut **tx, &trial.customer_id)
            .await?
            .map(|c| c.name)
            .unwrap_or_default();
        for (kind, mail, notice) in [
            ("expiring", AdminNotice::Expiring, plan.expiring),
            ("expired", AdminNotice::Expired, plan.expired),
        ] {
            let Some(notice) = notice else { continue };
            let outcome = notice.outcome();
            trials::record_notice(
                tx,
                trial_id,
                kind,
                trial.ends_at,
                outcome,
                Some(job.id),
                now,
            )
            .await?;
            if notice == Notice::Send {
                queue_admin_notices(
                    &ctx.mailer,
                    tx,
                    &trial,
                    mail,
                    &customer_name,
                    &ctx.settings.trial,
                    now,
                )
                .await?;
            }
            let change = TrialChange {
                action: "trial.notice",
                from: None,
                to: None,
                token_id: job.token_id,
                job_id: Some(job.id),
                detail: json!({ "kind": kind, "outcome": outcome, "term_ends": trial.ends_at }),
            };
            audit_change(tx, &trial, change, now).await?;
        }
        Ok(())
    }
}
