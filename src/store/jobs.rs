//! Jobs: enqueueing (job row + first outbox row, in the caller's
//! transaction), the state changes of an attempt, and the job view.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::Tx;
pub use super::status::JobStatus;
use crate::job::JobKind;

pub struct NewJob<'a> {
    pub kind: JobKind,
    pub payload: serde_json::Value,
    pub partner_id: Option<&'a str>,
    pub token_id: Option<Uuid>,
    pub resource_type: &'static str,
    pub resource_id: Uuid,
    pub sla_deadline: Option<DateTime<Utc>>,
}

/// Writes the job and its first outbox row; the relay publishes it once the
/// caller's transaction commits. Returns the job id (UUIDv7).
pub async fn enqueue(
    tx: &mut Tx<'_>,
    job: NewJob<'_>,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    enqueue_with_id(tx, id, job, max_attempts, now).await?;
    Ok(id)
}

pub async fn enqueue_with_id(
    tx: &mut Tx<'_>,
    id: Uuid,
    job: NewJob<'_>,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    // Without a unique key the insert cannot step aside: it writes, or fails.
    insert(tx, id, job, None, max_attempts, now).await?;
    Ok(())
}

/// Like [`enqueue`], unless a job with the same `unique_key` is still
/// pending (queued, running or retrying): then nothing is written and
/// `None` comes back. Sweeps use it so that running one twice before the
/// workers caught up does not queue the same work twice.
pub async fn enqueue_unique(
    tx: &mut Tx<'_>,
    job: NewJob<'_>,
    unique_key: &str,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    insert(tx, Uuid::now_v7(), job, Some(unique_key), max_attempts, now).await
}

/// The job row and its first outbox row; `None` when a pending job holds
/// the same unique key.
async fn insert(
    tx: &mut Tx<'_>,
    id: Uuid,
    job: NewJob<'_>,
    unique_key: Option<&str>,
    max_attempts: i32,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Uuid>> {
    // One round trip: the outbox row is written from the job insert's
    // RETURNING, so a job held back by its unique key gets none.
    let id: Option<Uuid> = sqlx::query_scalar!(
        "with job as (
             insert into jobs (id, kind, version, payload, max_attempts, partner_id, token_id,
                               resource_type, resource_id, sla_deadline, enqueued_at, unique_key)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             on conflict (unique_key) where unique_key is not null
                                        and status in ('queued', 'running', 'retrying')
             do nothing
             returning id
         )
         insert into outbox (job_id, attempt) select id, 1 from job
         returning job_id",
        id,
        job.kind.as_str(),
        job.kind.version(),
        &job.payload,
        max_attempts,
        job.partner_id,
        job.token_id,
        job.resource_type,
        job.resource_id,
        job.sla_deadline,
        now,
        unique_key,
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub version: i32,
    pub payload: serde_json::Value,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub partner_id: Option<String>,
    pub token_id: Option<Uuid>,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub sla_deadline: Option<DateTime<Utc>>,
    pub enqueued_at: DateTime<Utc>,
}

/// Locks the job for the rest of the transaction, so two deliveries of the
/// same job are handled one after the other, never side by side.
pub async fn lock(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"select id, kind, version, payload, status as "status: JobStatus", attempts, max_attempts, partner_id,
     token_id, resource_type, resource_id, sla_deadline, enqueued_at from jobs where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Locks every job of a batch for the rest of the transaction, in id
/// order: two batches that share a job (a redelivery) wait for each other
/// instead of deadlocking. Jobs that do not exist are simply missing.
pub async fn lock_many(tx: &mut Tx<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"select id, kind, version, payload, status as "status: JobStatus", attempts, max_attempts, partner_id,
     token_id, resource_type, resource_id, sla_deadline, enqueued_at from jobs where id = any($1) order by id for update"#,
        ids,
    )
    .fetch_all(&mut **tx)
    .await
}

/// Counts the deliveries of each job (an id may come twice) and, unless
/// it is finished, marks it running. Its own commit, so that ops see the
/// attempt while it runs. Kinds that run as sets skip it: their jobs are
/// done in moments, and [`mark_succeeded`] counts their deliveries.
pub async fn mark_running(pool: &PgPool, ids: &[Uuid], now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "update jobs set deliveries = deliveries + d.copies,
                status = case when status in ('queued', 'retrying') then 'running' else status end,
                started_at = case when status in ('queued', 'retrying')
                                  then coalesce(started_at, $2) else started_at end
         from (select id, count(*)::int4 as copies from unnest($1::uuid[]) as id group by id) d
         where jobs.id = d.id",
        ids,
        now,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts one delivery of a job that needed no attempt (a copy of a
/// finished job), for a kind that does not [`mark_running`].
pub async fn count_delivery(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update jobs set deliveries = deliveries + 1 where id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One attempt that succeeded, as the batch completer records it.
pub struct Succeeded {
    pub id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    /// Deliveries of the attempt not yet counted by [`mark_running`].
    pub uncounted: i32,
}

/// Marks every job of a batch succeeded, with its attempt: one statement
/// however many there are (River's batch completer). The job row is the
/// record of its successful attempt; `job_attempts` files failures.
pub async fn mark_succeeded(
    tx: &mut Tx<'_>,
    done: &[Succeeded],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = done.iter().map(|d| d.id).collect();
    let attempts: Vec<i32> = done.iter().map(|d| d.attempt).collect();
    let started: Vec<DateTime<Utc>> = done.iter().map(|d| d.started_at).collect();
    let uncounted: Vec<i32> = done.iter().map(|d| d.uncounted).collect();
    sqlx::query!(
        "update jobs set status = 'succeeded', attempts = f.attempt, finished_at = $4,
                         next_attempt_at = null, attempt_started_at = f.started_at,
                         started_at = coalesce(jobs.started_at, f.started_at),
                         deliveries = jobs.deliveries + f.uncounted
         from unnest($1::uuid[], $2::int4[], $3::timestamptz[], $5::int4[])
              as f(id, attempt, started_at, uncounted)
         where jobs.id = f.id",
        &ids,
        &attempts,
        &started,
        now,
        &uncounted,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_attempt(
    tx: &mut Tx<'_>,
    id: Uuid,
    attempt: i32,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    outcome: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into job_attempts (job_id, attempt, started_at, finished_at, outcome, error)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (job_id, attempt) do nothing",
        id,
        attempt,
        started_at,
        finished_at,
        outcome,
        error,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    RetryIn(Duration),
    Dead,
    /// Another delivery finished the job meanwhile; nothing to record.
    AlreadyDone,
}

/// A failed attempt, as the runtime reports it.
pub struct Failure<'a> {
    pub id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub error: &'a str,
    /// `None` when no retry can help (a fatal error).
    pub retry_in: Option<Duration>,
    pub queue: &'a str,
    /// The raw message and its AMQP message id, kept with the dead letter.
    pub body: &'a str,
    pub message_id: Option<&'a str>,
    /// Deliveries of the attempt not yet counted by [`mark_running`].
    pub uncounted: i32,
}

/// Records a failed attempt: schedules the next one through the outbox, or
/// dead-letters the job when it is fatal or out of attempts.
pub async fn record_failure(
    pool: &PgPool,
    failure: Failure<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<FailureOutcome> {
    let Failure {
        id,
        attempt,
        started_at,
        error,
        retry_in,
        queue,
        body,
        message_id,
        uncounted,
    } = failure;
    let mut tx = pool.begin().await?;
    let Some(job) = lock(&mut tx, id).await? else {
        return Ok(FailureOutcome::AlreadyDone);
    };
    if job.status.is_final() || job.attempts >= attempt {
        return Ok(FailureOutcome::AlreadyDone);
    }
    let outcome = match retry_in {
        Some(delay) if attempt < job.max_attempts => FailureOutcome::RetryIn(delay),
        _ => FailureOutcome::Dead,
    };
    match outcome {
        FailureOutcome::RetryIn(delay) => {
            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            sqlx::query!(
                "update jobs set status = 'retrying', attempts = $2, last_error = $3,
                        next_attempt_at = now() + make_interval(secs => $4::float8 / 1000),
                        started_at = coalesce(started_at, $5), deliveries = deliveries + $6
                 where id = $1",
                id,
                attempt,
                error,
                delay_ms as f64,
                started_at,
                uncounted,
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "insert into outbox (job_id, attempt, available_at)
                 values ($1, $2, now() + make_interval(secs => $3::float8 / 1000))",
                id,
                attempt + 1,
                delay_ms as f64,
            )
            .execute(&mut *tx)
            .await?;
            insert_attempt(
                &mut tx,
                id,
                attempt,
                started_at,
                now,
                "retrying",
                Some(error),
            )
            .await?;
        }
        FailureOutcome::Dead => {
            let letter = DeadJob {
                attempts: attempt,
                reason: error,
                queue,
                body,
                message_id,
                uncounted,
                started_at: Some(started_at),
            };
            mark_dead(&mut tx, &job, letter, now).await?;
            insert_attempt(&mut tx, id, attempt, started_at, now, "dead", Some(error)).await?;
        }
        FailureOutcome::AlreadyDone => unreachable!("decided above"),
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Why and from where a job went to the dead letters.
struct DeadJob<'a> {
    attempts: i32,
    reason: &'a str,
    queue: &'a str,
    body: &'a str,
    message_id: Option<&'a str>,
    /// Deliveries not yet counted by [`mark_running`], and the start of
    /// the attempt that failed, if one ran.
    uncounted: i32,
    started_at: Option<DateTime<Utc>>,
}

/// Marks a locked job dead and files its dead letter.
async fn mark_dead(
    tx: &mut Tx<'_>,
    job: &JobRow,
    letter: DeadJob<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update jobs set status = 'dead', attempts = $2, last_error = $3,
                finished_at = $4, next_attempt_at = null,
                started_at = coalesce(started_at, $5), deliveries = deliveries + $6
         where id = $1",
        job.id,
        letter.attempts,
        letter.reason,
        now,
        letter.started_at,
        letter.uncounted,
    )
    .execute(&mut **tx)
    .await?;
    super::dead_letters::insert(
        &mut **tx,
        super::dead_letters::NewDeadLetter {
            job_id: Some(job.id),
            kind: Some(&job.kind),
            queue: letter.queue,
            reason: letter.reason,
            body: letter.body,
            attempts: letter.attempts,
            message_id: letter.message_id,
        },
    )
    .await?;
    Ok(())
}

/// Marks a job dead for a reason found before any attempt ran (an unknown
/// envelope version, say); the raw message goes to the dead letters, also
/// when it names no job that exists.
pub async fn dead_letter_unrunnable(
    pool: &PgPool,
    id: Uuid,
    reason: &str,
    queue: &str,
    body: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    match lock(&mut tx, id).await? {
        Some(job) if job.status.is_final() => return Ok(()),
        Some(job) => {
            let letter = DeadJob {
                attempts: job.attempts,
                reason,
                queue,
                body,
                message_id,
                uncounted: 0,
                started_at: None,
            };
            mark_dead(&mut tx, &job, letter, now).await?;
        }
        None => {
            super::dead_letters::insert_unattached(&mut *tx, queue, reason, body, message_id)
                .await?
        }
    }
    tx.commit().await
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    pub status: JobStatus,
    pub attempts: i32,
    pub deliveries: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub partner_id: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub sla_deadline: Option<DateTime<Utc>>,
    pub enqueued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct AttemptView {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub error: Option<String>,
}

pub async fn find_view(
    pool: &PgPool,
    id: Uuid,
) -> sqlx::Result<Option<(JobView, Vec<AttemptView>)>> {
    // One snapshot, so the attempts agree with the job's status.
    let mut snapshot = super::snapshot(pool).await?;
    let job: Option<JobView> = sqlx::query_as!(
        JobView,
        r#"select id, kind, status as "status: JobStatus", attempts, deliveries, max_attempts, last_error, partner_id, resource_type,
                resource_id, sla_deadline, enqueued_at, started_at, finished_at, next_attempt_at
         from jobs where id = $1"#,
        id,
    )
    .fetch_optional(&mut *snapshot)
    .await?;
    let Some(job) = job else { return Ok(None) };
    let attempts = sqlx::query_as!(
        AttemptView,
        r#"select attempt as "attempt!", started_at as "started_at!",
                  finished_at as "finished_at!", outcome as "outcome!", error
           from job_attempts where job_id = $1
           union all
           select attempts, coalesce(attempt_started_at, started_at), finished_at,
                  'succeeded', null
           from jobs
           where id = $1 and status = 'succeeded'
             and not exists (select 1 from job_attempts
                             where job_id = $1 and outcome = 'succeeded')
           order by 1"#,
        id,
    )
    .fetch_all(&mut *snapshot)
    .await?;
    snapshot.commit().await?;
    Ok(Some((job, attempts)))
}

/// Gives a dead job a fresh allowance of attempts and queues its next
/// attempt through the outbox. The caller holds the job's lock.
pub async fn requeue_dead(tx: &mut Tx<'_>, job: &JobRow, more_attempts: i32) -> sqlx::Result<()> {
    sqlx::query!(
        "update jobs set status = 'queued', max_attempts = attempts + $2, finished_at = null,
                next_attempt_at = null
         where id = $1 and status = 'dead'",
        job.id,
        more_attempts,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into outbox (job_id, attempt) values ($1, $2)",
        job.id,
        job.attempts + 1,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Per kind: jobs waiting (queued or retrying), running, and the age of
/// the oldest waiting one.
#[derive(Debug, Clone, FromRow)]
pub struct KindBacklog {
    pub kind: String,
    pub waiting: i64,
    pub running: i64,
    pub oldest_waiting: Option<DateTime<Utc>>,
}

pub async fn backlog_by_kind(pool: &PgPool) -> sqlx::Result<Vec<KindBacklog>> {
    sqlx::query_as!(
        KindBacklog,
        r#"select kind,
                count(*) filter (where status in ('queued', 'retrying')) as "waiting!",
                count(*) filter (where status = 'running') as "running!",
                min(enqueued_at) filter (where status in ('queued', 'retrying')) as oldest_waiting
         from jobs where status in ('queued', 'retrying', 'running') group by kind"#,
    )
    .fetch_all(pool)
    .await
}
