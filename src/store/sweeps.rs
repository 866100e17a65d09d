//! Sweeps: what each one finds due, and the record of every run. A
//! scheduled run is claimed by inserting its (sweep, tick): the unique
//! constraint lets exactly one scheduler replica win each tick.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor, PgPool};
use uuid::Uuid;

use super::status::TrialStatus;

/// A trial as the notices sweep sees it.
#[derive(Debug, Clone, FromRow)]
pub struct NoticeCandidate {
    pub id: Uuid,
    pub customer_id: String,
    pub status: TrialStatus,
    pub ends_at: DateTime<Utc>,
    pub expiring_recorded: bool,
    pub expired_recorded: bool,
}

/// Trials with something to do on the notice timeline: past their end
/// while still active, or with a notice of the current term unrecorded
/// inside its window.
pub async fn notice_candidates<'e>(
    db: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    window_starts_before: DateTime<Utc>,
) -> sqlx::Result<Vec<NoticeCandidate>> {
    sqlx::query_as!(
        NoticeCandidate,
        r#"select c.id, c.customer_id, c.status as "status: TrialStatus", c.ends_at,
                c.expiring_recorded as "expiring_recorded!", c.expired_recorded as "expired_recorded!"
         from (
             select t.id, t.customer_id, t.status, t.ends_at,
                    exists (select 1 from trial_notices n where n.trial_id = t.id
                            and n.kind = 'expiring' and n.term_ends = t.ends_at) as expiring_recorded,
                    exists (select 1 from trial_notices n where n.trial_id = t.id
                            and n.kind = 'expired' and n.term_ends = t.ends_at) as expired_recorded
             from trials t
             where t.status in ('active', 'expired') and t.ends_at <= $2
         ) c
         where not c.expiring_recorded
            or (c.ends_at <= $1 and (c.status = 'active' or not c.expired_recorded))
         order by c.ends_at, c.id"#,
        now,
        window_starts_before,
    )
    .fetch_all(db)
    .await
}

/// A trial (or its numbers) as the purge and release sweeps see it.
#[derive(Debug, Clone, FromRow)]
pub struct TrialCandidate {
    pub id: Uuid,
    pub customer_id: String,
    pub status: TrialStatus,
    pub ends_at: DateTime<Utc>,
}

/// Unconverted trials whose grace ended at or before `now`.
pub async fn purge_candidates<'e>(
    db: impl PgExecutor<'e>,
    ended_before: DateTime<Utc>,
) -> sqlx::Result<Vec<TrialCandidate>> {
    sqlx::query_as!(
        TrialCandidate,
        r#"select id, customer_id, status as "status: TrialStatus", ends_at from trials
         where status in ('active', 'expired') and ends_at <= $1
         order by ends_at, id"#,
        ended_before,
    )
    .fetch_all(db)
    .await
}

/// Trials holding numbers whose hold ended.
pub async fn release_candidates<'e>(
    db: impl PgExecutor<'e>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<TrialCandidate>> {
    sqlx::query_as!(
        TrialCandidate,
        r#"select t.id, t.customer_id, t.status as "status: TrialStatus", t.ends_at from trials t
         where exists (select 1 from trial_numbers n
                       where n.trial_id = t.id and n.status = 'held' and n.release_at <= $1)
         order by t.id"#,
        now,
    )
    .fetch_all(db)
    .await
}

/// Held numbers of a trial due for release.
pub async fn numbers_due<'e>(
    db: impl PgExecutor<'e>,
    trial_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select number from trial_numbers
         where trial_id = $1 and status = 'held' and release_at <= $2 order by number",
        trial_id,
        now,
    )
    .fetch_all(db)
    .await
}

pub struct NewRun<'a> {
    pub sweep: &'a str,
    /// The schedule's instant this run is for; `None` for a manual run.
    pub tick: Option<DateTime<Utc>>,
    pub trigger: &'a str,
    pub replica: &'a str,
    pub dry_run: bool,
    pub token_id: Option<Uuid>,
}

/// Records the start of a run. For a scheduled tick another replica
/// already claimed, nothing is written and `None` comes back.
pub async fn start_run(pool: &PgPool, run: &NewRun<'_>) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "insert into sweep_runs (id, sweep, tick, trigger, replica, dry_run, token_id, started_at)
         values ($1, $2, $3, $4, $5, $6, $7, now())
         on conflict (sweep, tick) do nothing
         returning id",
        Uuid::now_v7(),
        run.sweep,
        run.tick,
        run.trigger,
        run.replica,
        run.dry_run,
        run.token_id,
    )
    .fetch_optional(pool)
    .await
}

/// Deletes scheduled runs that started before `before`; returns how many.
/// A tick that old can never fire again, so its claim is no longer needed.
pub async fn prune_scheduled_runs(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let deleted = sqlx::query!(
        "delete from sweep_runs where trigger = 'schedule' and started_at < $1",
        before,
    )
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

pub async fn finish_run(pool: &PgPool, id: Uuid, due: usize, published: usize) -> sqlx::Result<()> {
    sqlx::query!(
        "update sweep_runs set finished_at = now(), due = $2, published = $3 where id = $1",
        id,
        i32::try_from(due).unwrap_or(i32::MAX),
        i32::try_from(published).unwrap_or(i32::MAX),
    )
    .execute(pool)
    .await?;
    Ok(())
}
