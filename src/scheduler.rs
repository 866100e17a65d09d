//! The cron scheduler: tokio-cron-scheduler fires each sweep on its
//! schedule (wall time, UTC). Every replica fires; the first to record
//! the tick in `sweep_runs` runs it and the others step aside, so each
//! tick runs once however many schedulers there are (SPEC §3.4).

use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use croner::Cron;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::settings::parse_schedule;
use crate::store::sweeps;
use crate::sweeps::{Sweep, SweepRequest, Sweeper, Trigger};

/// The tick a firing at `fired_at` belongs to: the latest scheduled
/// instant not after it. Replicas firing late still agree on it.
pub fn tick_of(schedule: &Cron, fired_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Schedules have whole seconds; croner would keep the fraction.
    let whole_second = fired_at.with_nanosecond(0)?;
    schedule.find_previous_occurrence(&whole_second, true).ok()
}

/// Fires the sweeps until `shutdown` is cancelled.
pub async fn run(sweeper: Sweeper, shutdown: CancellationToken) {
    if let Err(error) = schedule_sweeps(sweeper, shutdown).await {
        tracing::error!(error = %format!("{error:#}"), "the scheduler failed");
    }
}

async fn schedule_sweeps(sweeper: Sweeper, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut scheduler = JobScheduler::new().await?;
    for sweep in Sweep::ALL {
        let expression = sweep.schedule(&sweeper.settings).to_owned();
        let schedule = Arc::new(parse_schedule(&expression).map_err(anyhow::Error::msg)?);
        let sweeper = sweeper.clone();
        let job = Job::new_async(expression.as_str(), move |_id, _scheduler| {
            let sweeper = sweeper.clone();
            let schedule = schedule.clone();
            Box::pin(async move { fire(&sweeper, sweep, &schedule).await })
        })?;
        scheduler.add(job).await?;
        tracing::info!(%sweep, schedule = %expression, "sweep scheduled");
    }
    scheduler.start().await?;
    shutdown.cancelled().await;
    scheduler.shutdown().await?;
    Ok(())
}

async fn fire(sweeper: &Sweeper, sweep: Sweep, schedule: &Cron) {
    let Some(tick) = tick_of(schedule, Utc::now()) else {
        return;
    };
    let request = SweepRequest {
        sweep,
        trigger: Trigger::Schedule { tick },
        dry_run: false,
        token_id: None,
    };
    match sweeper.run(&request, |_, _| {}).await {
        Ok(report) if report.run_id.is_none() => {
            tracing::info!(%sweep, %tick, claimed = false, "sweep tick run by another replica");
        }
        Ok(report) => {
            tracing::info!(
                %sweep, %tick, claimed = true, due = report.due, published = report.published,
                already_queued = report.already_queued, "sweep tick run"
            );
            prune_old_runs(sweeper).await;
        }
        Err(error) => {
            tracing::error!(%sweep, %tick, error = %format!("{error:#}"), "sweep failed");
        }
    }
}

/// The claims of ticks older than `scheduler.keep_runs` guard nothing any
/// more; without pruning the SLA watch alone adds 1,440 rows a day.
async fn prune_old_runs(sweeper: &Sweeper) {
    let keep = chrono::Duration::from_std(sweeper.settings.scheduler.keep_runs)
        .unwrap_or(chrono::Duration::MAX);
    // `started_at` is the database's wall time, not the business clock.
    let Some(before) = Utc::now().checked_sub_signed(keep) else {
        return;
    };
    match sweeps::prune_scheduled_runs(&sweeper.pool, before).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "old scheduled sweep runs pruned"),
        Err(error) => tracing::warn!(%error, "pruning old sweep runs failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_need_seconds_and_say_so() {
        assert!(parse_schedule("0 */10 * * * *").is_ok());
        let error = parse_schedule("*/10 * * * *").unwrap_err();
        assert!(error.contains("seconds"), "{error}");
        assert!(parse_schedule("every day").is_err());
    }

    #[test]
    fn late_firings_belong_to_the_tick_they_were_for() {
        let schedule = parse_schedule("0 */10 * * * *").unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let tick = at("2030-01-01T00:10:00Z");
        assert_eq!(tick_of(&schedule, tick), Some(tick));
        assert_eq!(tick_of(&schedule, at("2030-01-01T00:10:01.5Z")), Some(tick));
        assert_eq!(tick_of(&schedule, at("2030-01-01T00:19:59Z")), Some(tick));
    }
}
