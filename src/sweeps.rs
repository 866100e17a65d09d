//! The sweeps: find what is due and queue its work. The trial sweeps queue
//! one job per trial due for a step of its timeline, so the work spreads
//! over the workers; the SLA watch queues one mail to the operators per
//! license request that came within the margin of its deadline, and one
//! per request that breached it. A dry run describes what would be done
//! and changes nothing.
//!
//! A sweep is safe to run at any time and any number of times: trial jobs
//! carry a unique key (one pending job per trial and kind) and re-check
//! their trial under lock before they change anything; an SLA alert is
//! recorded once per request and stage, in the mail's transaction.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::enqueue::{Opts, enqueue_unique};
use crate::job::JobArgs;
use crate::mail::Locale;
use crate::mail::contexts::{self, Content, mail_time};
use crate::mail::queue::{MailRequest, Mailer, queue_mail};
use crate::settings::Settings;
use crate::store::sla::{self, SlaAlert};
use crate::store::trials::TrialStatus;
use crate::store::{Tx, sweeps, trials};
use crate::trials::job::TrialJob;
use crate::trials::{Timeline, TrialMoment};
use crate::workers::number_release::NumberReleaseArgs;
use crate::workers::trial_notices::TrialNoticesArgs;
use crate::workers::trial_purge::TrialPurgeArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// Expire trials that reached their end; send the notices that are due.
    TrialNotices,
    /// Purge the trials whose grace ended unconverted.
    TrialPurges,
    /// Free calling numbers whose hold after a purge ended.
    NumberReleases,
    /// Mail the operators about license requests near or past their SLA.
    SlaWatch,
}

impl Sweep {
    pub const ALL: [Sweep; 4] = [
        Sweep::TrialNotices,
        Sweep::TrialPurges,
        Sweep::NumberReleases,
        Sweep::SlaWatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sweep::TrialNotices => "trial-notices",
            Sweep::TrialPurges => "trial-purges",
            Sweep::NumberReleases => "number-releases",
            Sweep::SlaWatch => "sla-watch",
        }
    }

    /// What its items are, singular: "1 trial due", "3 trials due".
    pub fn subject(self) -> &'static str {
        match self {
            Sweep::SlaWatch => "license request",
            _ => "trial",
        }
    }

    pub fn parse(name: &str) -> Option<Sweep> {
        Sweep::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Its cron expression in the scheduler settings.
    pub fn schedule(self, settings: &Settings) -> &str {
        match self {
            Sweep::TrialNotices => &settings.scheduler.trial_notices,
            Sweep::TrialPurges => &settings.scheduler.trial_purges,
            Sweep::NumberReleases => &settings.scheduler.number_releases,
            Sweep::SlaWatch => &settings.scheduler.sla_watch,
        }
    }
}

impl std::fmt::Display for Sweep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who started a run, for the run record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A scheduler replica, for this tick of the schedule.
    Schedule {
        tick: DateTime<Utc>,
    },
    Api,
    Cli,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule { .. } => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
        }
    }
}

pub struct SweepRequest {
    pub sweep: Sweep,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub token_id: Option<Uuid>,
}

/// One due thing and what its job does (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SweepItem {
    /// `trial` or `license_request`.
    pub entity_type: &'static str,
    pub entity_id: Uuid,
    /// It, in one line for people: its customer, status and end, say.
    pub summary: String,
    pub actions: Vec<String>,
    /// The job queued for it; `None` in a dry run or when one is pending.
    pub job_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// `None` when a scheduled tick was already run by another replica.
    pub run_id: Option<Uuid>,
    pub sweep: Sweep,
    pub dry_run: bool,
    /// The business clock's instant the sweep judged by.
    pub now: DateTime<Utc>,
    pub due: usize,
    pub published: usize,
    /// Due items whose job from an earlier run is still pending.
    pub already_queued: usize,
    pub items: Vec<SweepItem>,
}

/// Jobs queued per transaction: small enough to keep locks short, large
/// enough that a big sweep is not a transaction per trial.
const BATCH: usize = 500;

/// Where the sweeps run: the database, the settings and the clock.
#[derive(Clone)]
pub struct Sweeper {
    pub pool: PgPool,
    pub settings: std::sync::Arc<Settings>,
    pub clock: Clock,
    mailer: Mailer,
    /// Names this process in run records (host and pid).
    pub replica: String,
}

impl Sweeper {
    pub fn new(
        pool: PgPool,
        settings: std::sync::Arc<Settings>,
        clock: Clock,
        mailer: Mailer,
    ) -> Sweeper {
        let host = hostname::get().map_or_else(
            |_| "unknown-host".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        Sweeper {
            pool,
            mailer,
            settings,
            clock,
            replica: format!("{host}:{}", std::process::id()),
        }
    }

    /// Runs the sweep; `progress(done, due)` hears after each batch.
    /// A scheduled tick some other replica claimed returns a report with
    /// no `run_id` and does nothing.
    pub async fn run(
        &self,
        request: &SweepRequest,
        mut progress: impl FnMut(usize, usize),
    ) -> anyhow::Result<SweepReport> {
        let now = self.clock.now();
        let mut report = SweepReport {
            run_id: None,
            sweep: request.sweep,
            dry_run: request.dry_run,
            now,
            due: 0,
            published: 0,
            already_queued: 0,
            items: Vec::new(),
        };
        let tick = match request.trigger {
            Trigger::Schedule { tick } => Some(tick),
            _ => None,
        };
        let run = sweeps::NewRun {
            sweep: request.sweep.as_str(),
            tick,
            trigger: request.trigger.as_str(),
            replica: &self.replica,
            dry_run: request.dry_run,
            token_id: request.token_id,
        };
        let Some(run_id) = sweeps::start_run(&self.pool, &run).await? else {
            return Ok(report);
        };
        report.run_id = Some(run_id);
        report.items = self.due_items(request.sweep, now).await?;
        report.due = report.items.len();
        progress(0, report.due);
        if !request.dry_run {
            let mut done = 0;
            for batch in report.items.chunks_mut(BATCH) {
                self.queue_batch(request, batch, now).await?;
                done += batch.len();
                progress(done, report.due);
            }
            report.published = report.items.iter().filter(|i| i.job_id.is_some()).count();
            report.already_queued = report.due - report.published;
        }
        sweeps::finish_run(&self.pool, run_id, report.due, report.published).await?;
        Ok(report)
    }

    async fn due_items(&self, sweep: Sweep, now: DateTime<Utc>) -> anyhow::Result<Vec<SweepItem>> {
        let timeline = Timeline::from_settings(&self.settings.trial);
        let mut items = Vec::new();
        match sweep {
            Sweep::TrialNotices => {
                let ending_before = now + timeline.notice_before;
                for c in sweeps::notice_candidates(&self.pool, now, ending_before).await? {
                    let moment = TrialMoment {
                        status: c.status,
                        ends_at: c.ends_at,
                        expiring_recorded: c.expiring_recorded,
                        expired_recorded: c.expired_recorded,
                    };
                    let plan = timeline.notice_plan(moment, now);
                    if !plan.is_empty() {
                        items.push(trial_item(
                            c.id,
                            &c.customer_id,
                            c.status,
                            c.ends_at,
                            plan.describe(),
                        ));
                    }
                }
            }
            Sweep::TrialPurges => {
                for c in sweeps::purge_candidates(&self.pool, now - timeline.grace).await? {
                    let held = trials::holdings(&self.pool, c.id).await?;
                    let n = |count: i64, singular: &str| counted(count as usize, singular);
                    let actions = vec![format!(
                        "purge: delete {}, {} and {}; move {} to the free organisation; \
                         hold {} until {}",
                        n(held.licenses, "license"),
                        n(held.admin_roles, "admin role"),
                        n(held.settings, "setting"),
                        n(held.users, "user"),
                        n(held.numbers, "number"),
                        mail_time(now + timeline.number_hold)
                    )];
                    let item = trial_item(c.id, &c.customer_id, c.status, c.ends_at, actions);
                    items.push(item);
                }
            }
            Sweep::NumberReleases => {
                for c in sweeps::release_candidates(&self.pool, now).await? {
                    let numbers = sweeps::numbers_due(&self.pool, c.id, now).await?;
                    let actions = vec![format!("release numbers {}", numbers.join(", "))];
                    let item = trial_item(c.id, &c.customer_id, c.status, c.ends_at, actions);
                    items.push(item);
                }
            }
            Sweep::SlaWatch => {
                let margin = self.sla_margin()?;
                for alert in sla::due_alerts(&self.pool, now, margin).await? {
                    items.push(sla_item(&alert, now, &self.settings.ops.email));
                }
            }
        }
        Ok(items)
    }

    fn sla_margin(&self) -> anyhow::Result<TimeDelta> {
        Ok(TimeDelta::from_std(self.settings.ops.sla_margin)?)
    }

    async fn queue_batch(
        &self,
        request: &SweepRequest,
        batch: &mut [SweepItem],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if let Sweep::SlaWatch = request.sweep {
            return self.queue_sla_alerts(batch, now).await;
        }
        let mut tx = self.pool.begin().await?;
        for item in batch.iter_mut() {
            // The sweep's instant travels with the job: a worker on
            // another clock acts at it (SPEC §3.10).
            let job = TrialJob {
                trial_id: item.entity_id,
                as_of: Some(now),
            };
            let opts = Opts {
                partner_id: None,
                token_id: request.token_id,
                resource_type: "trial",
                resource_id: item.entity_id,
                sla_deadline: None,
                max_attempts: self.settings.jobs.max_attempts,
                now,
            };
            // The job kind each sweep queues per trial.
            let tx = &mut tx;
            item.job_id = match request.sweep {
                Sweep::TrialNotices => queue_trial_job(tx, &TrialNoticesArgs(job), opts).await?,
                Sweep::TrialPurges => queue_trial_job(tx, &TrialPurgeArgs(job), opts).await?,
                Sweep::NumberReleases => queue_trial_job(tx, &NumberReleaseArgs(job), opts).await?,
                Sweep::SlaWatch => unreachable!("the SLA watch queues mails, above"),
            };
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records each alert still due and queues its mail to the operators,
    /// in one transaction: an alert is recorded if and only if its mail is queued.
    async fn queue_sla_alerts(
        &self,
        batch: &mut [SweepItem],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let margin = self.sla_margin()?;
        let mut queued = Vec::new();
        let mut tx = self.pool.begin().await?;
        for item in batch.iter_mut() {
            let Some(alert) = sla::due_alert(&mut tx, item.entity_id, now, margin).await? else {
                continue;
            };
            if !sla::record_alert(&mut tx, alert.request_id, &alert.stage, now).await? {
                continue;
            }
            let mail = MailRequest {
                cause: format!("sla_{}:{}", alert.stage, alert.request_id),
                content: sla_mail(&alert, now),
                locale: Some(Locale::En),
                to: &self.settings.ops.email,
                to_name: None,
                attachments: Vec::new(),
                partner_id: None,
            };
            item.job_id = queue_mail(&self.mailer, &mut tx, mail, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            queued.push(alert.stage);
        }
        tx.commit().await?;
        for stage in queued {
            crate::meters::sla_alert_queued(&stage);
        }
        Ok(())
    }
}

fn trial_item(
    trial_id: Uuid,
    customer_id: &str,
    status: TrialStatus,
    ends_at: DateTime<Utc>,
    actions: Vec<String>,
) -> SweepItem {
    let ends_at = ends_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    SweepItem {
        entity_type: "trial",
        entity_id: trial_id,
        summary: format!("customer {customer_id}  {status}  ends {ends_at}"),
        actions,
        job_id: None,
    }
}

fn sla_item(alert: &SlaAlert, now: DateTime<Utc>, ops_email: &str) -> SweepItem {
    let deadline = alert
        .sla_deadline
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    let state = match alert.completed_at {
        Some(done) => format!("done {} late", late_by(done - alert.sla_deadline)),
        None if now > alert.sla_deadline => {
            format!("open, {} past", late_by(now - alert.sla_deadline))
        }
        None => format!("open, due in {}", late_by(alert.sla_deadline - now)),
    };
    SweepItem {
        entity_type: "license_request",
        entity_id: alert.request_id,
        summary: format!(
            "{} for partner {}  deadline {deadline}  {state}",
            alert.kind, alert.partner_id
        ),
        actions: vec![format!(
            "mail {ops_email}: {}",
            alert.stage.replace('_', " ")
        )],
        job_id: None,
    }
}

/// A duration in whole units people read at a glance: "4m", "2h 5m", "3d 1h".
fn late_by(delta: TimeDelta) -> String {
    let secs = delta.num_seconds().max(0);
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (days, hours) {
        (0, 0) if minutes == 0 => format!("{secs}s"),
        (0, 0) => format!("{minutes}m"),
        (0, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

fn sla_mail(alert: &SlaAlert, now: DateTime<Utc>) -> Content {
    let late = alert
        .completed_at
        .map(|done| late_by(done - alert.sla_deadline));
    Content::of(&contexts::SlaAlert {
        stage: &alert.stage,
        request_id: alert.request_id,
        kind: &alert.kind,
        order_id: alert.order_id,
        partner_id: &alert.partner_id,
        accepted_at: alert.accepted_at,
        sla_deadline: alert.sla_deadline,
        now,
        completed_at: alert.completed_at,
        late: late.as_deref(),
        job_id: alert.job_id,
        job_kind: &alert.job_kind,
        job_status: &alert.job_status,
        attempts: alert.attempts,
        last_error: alert.last_error.as_deref(),
    })
}

/// Queues one trial's job unless the same kind's job for it is pending:
/// running a sweep twice before the workers caught up queues it once.
async fn queue_trial_job<A: JobArgs>(
    tx: &mut Tx<'_>,
    args: &A,
    opts: Opts<'_>,
) -> sqlx::Result<Option<Uuid>> {
    let unique_key = format!("{}:{}", A::KIND, opts.resource_id);
    enqueue_unique(tx, args, &unique_key, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_by_reads_at_a_glance() {
        assert_eq!(late_by(TimeDelta::seconds(42)), "42s");
        assert_eq!(late_by(TimeDelta::minutes(4)), "4m");
        assert_eq!(late_by(TimeDelta::minutes(125)), "2h 5m");
        assert_eq!(late_by(TimeDelta::hours(73)), "3d 1h");
        assert_eq!(late_by(TimeDelta::seconds(-5)), "0s");
    }
}

/// "1 trial", "2 trials": a count with its noun in agreement.
pub fn counted(n: usize, singular: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {singular}{s}")
}

#[cfg(test)]
mod counted_tests {
    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(super::counted(1, "setting"), "1 setting");
        assert_eq!(super::counted(0, "number"), "0 numbers");
        assert_eq!(super::counted(2, "admin role"), "2 admin roles");
    }
}
