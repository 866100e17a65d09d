//! `trial.notices`: under the trial's lock, expires a trial that reached
//! its end and sends the notices of its current term that are due. Each
//! notice is recorded once per trial, kind and term, so a redelivery or a
//! second sweep finds it recorded and sends nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::job::{JobError, JobKind};
use crate::runtime::{JobContext, JobHandler, payload};
use crate::store::jobs::JobRow;
use crate::store::trials::TrialRow;
use crate::store::{Tx, directory, trials};
use crate::trials::{
    Notice, Timeline, TrialChange, TrialMoment, audit_change, queue_admin_notices,
};

pub struct TrialNotices;

/// The payload of every trial job: the trial it is for, and the business
/// instant of the sweep that found it due (SPEC §3.10).
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct TrialPayload {
    pub trial_id: uuid::Uuid,
    /// A sweep run at a moved clock (`clock.now`) queues work due at that
    /// instant; a worker on another clock must still do it, so it acts at
    /// the later of its own clock and this.
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
}

/// The trial a trial job is for, locked for the job's transaction, and the
/// instant the job acts at; a trial that does not exist is a fatal error
/// (the job can never succeed).
pub(super) async fn lock_job_trial(
    ctx: &JobContext,
    tx: &mut Tx<'_>,
    job: &JobRow,
) -> Result<(TrialRow, DateTime<Utc>), JobError> {
    let TrialPayload { trial_id, as_of } = payload(job)?;
    let trial = trials::lock_trial(tx, trial_id)
        .await?
        .ok_or_else(|| JobError::fatal(format!("trial {trial_id} does not exist")))?;
    let now = ctx.clock.now();
    Ok((trial, as_of.map_or(now, |as_of| as_of.max(now))))
}

#[async_trait]
impl JobHandler for TrialNotices {
    fn kind(&self) -> JobKind {
        JobKind::TrialNotices
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
        let recorded = trials::notices(&mut **tx, trial_id).await?;
        let is_recorded = |kind: &str| {
            recorded
                .iter()
                .any(|n| n.kind == kind && n.term_ends == trial.ends_at)
        };
        let moment = TrialMoment {
            status: &trial.status,
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
            trials::set_status(tx, trial_id, "expired", Some(grace_ends), now).await?;
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
        for (kind, template, notice) in [
            ("expiring", "trial_expiring", plan.expiring),
            ("expired", "trial_expired", plan.expired),
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
                    template,
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
