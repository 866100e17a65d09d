//! The sweeps: find the trials that are due for a step of their timeline
//! and queue one job per trial, so the work spreads over the workers. A
//! dry run describes what each job would do and changes nothing.
//!
//! A sweep is safe to run at any time and any number of times: its jobs
//! carry a unique key (one pending job per trial and kind), and each job
//! re-checks its trial under lock before it changes anything.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::job::JobKind;
use crate::settings::Settings;
use crate::store::{jobs, sweeps, trials};
use crate::trials::{Timeline, TrialMoment};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// Expire trials that reached their end; send the notices that are due.
    TrialNotices,
    /// Purge the trials whose grace ended unconverted.
    TrialPurges,
    /// Free calling numbers whose hold after a purge ended.
    NumberReleases,
}

impl Sweep {
    pub const ALL: [Sweep; 3] = [
        Sweep::TrialNotices,
        Sweep::TrialPurges,
        Sweep::NumberReleases,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sweep::TrialNotices => "trial-notices",
            Sweep::TrialPurges => "trial-purges",
            Sweep::NumberReleases => "number-releases",
        }
    }

    pub fn parse(name: &str) -> Option<Sweep> {
        Sweep::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn job_kind(self) -> JobKind {
        match self {
            Sweep::TrialNotices => JobKind::TrialNotices,
            Sweep::TrialPurges => JobKind::TrialPurge,
            Sweep::NumberReleases => JobKind::NumberRelease,
        }
    }

    /// Its cron expression in the scheduler settings.
    pub fn schedule(self, settings: &Settings) -> &str {
        match self {
            Sweep::TrialNotices => &settings.scheduler.trial_notices,
            Sweep::TrialPurges => &settings.scheduler.trial_purges,
            Sweep::NumberReleases => &settings.scheduler.number_releases,
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

/// One due trial and what its job does (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SweepItem {
    pub trial_id: Uuid,
    pub customer_id: String,
    pub status: String,
    pub ends_at: DateTime<Utc>,
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
    /// Due trials whose job from an earlier run is still pending.
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
    /// Names this process in run records (host and pid).
    pub replica: String,
}

impl Sweeper {
    pub fn new(pool: PgPool, settings: std::sync::Arc<Settings>, clock: Clock) -> Sweeper {
        let host = hostname::get().map_or_else(
            |_| "unknown-host".to_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        Sweeper {
            pool,
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
                        status: &c.status,
                        ends_at: c.ends_at,
                        expiring_recorded: c.expiring_recorded,
                        expired_recorded: c.expired_recorded,
                    };
                    let plan = timeline.notice_plan(moment, now);
                    if !plan.is_empty() {
                        items.push(item(
                            c.id,
                            c.customer_id,
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
                    let actions = vec![format!(
                        "purge: delete {} licenses, {} admin roles and {} settings; \
                         move {} users to the free organisation; hold {} numbers until {}",
                        held.licenses,
                        held.admin_roles,
                        held.settings,
                        held.users,
                        held.numbers,
                        crate::trials::mail_time(now + timeline.number_hold)
                    )];
                    items.push(item(c.id, c.customer_id, c.status, c.ends_at, actions));
                }
            }
            Sweep::NumberReleases => {
                for c in sweeps::release_candidates(&self.pool, now).await? {
                    let numbers = sweeps::numbers_due(&self.pool, c.id, now).await?;
                    let actions = vec![format!("release numbers {}", numbers.join(", "))];
                    items.push(item(c.id, c.customer_id, c.status, c.ends_at, actions));
                }
            }
        }
        Ok(items)
    }

    async fn queue_batch(
        &self,
        request: &SweepRequest,
        batch: &mut [SweepItem],
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let kind = request.sweep.job_kind();
        let mut tx = self.pool.begin().await?;
        for item in batch.iter_mut() {
            let job = jobs::NewJob {
                kind,
                payload: json!({ "trial_id": item.trial_id }),
                partner_id: None,
                token_id: request.token_id,
                resource_type: "trial",
                resource_id: item.trial_id,
                sla_deadline: None,
            };
            let unique_key = format!("{kind}:{}", item.trial_id);
            let max_attempts = self.settings.jobs.max_attempts;
            item.job_id =
                jobs::enqueue_unique(&mut tx, job, &unique_key, max_attempts, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn item(
    trial_id: Uuid,
    customer_id: String,
    status: String,
    ends_at: DateTime<Utc>,
    actions: Vec<String>,
) -> SweepItem {
    SweepItem {
        trial_id,
        customer_id,
        status,
        ends_at,
        actions,
        job_id: None,
    }
}
