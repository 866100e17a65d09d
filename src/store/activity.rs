//! What the workers did lately, for the dashboard: throughput and latency
//! per job kind, and the most recent failed attempts with their errors.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

/// One job kind's attempts and finished jobs since an instant.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct KindActivity {
    pub kind: String,
    pub succeeded: i64,
    pub retried: i64,
    pub dead: i64,
    /// Seconds from enqueue to done, over the jobs that succeeded.
    pub p50_secs: Option<f64>,
    pub p95_secs: Option<f64>,
}

pub async fn by_kind<'e>(
    db: impl PgExecutor<'e>,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<KindActivity>> {
    sqlx::query_as!(
        KindActivity,
        r#"with failed as (
             select j.kind,
                    count(*) filter (where a.outcome = 'retrying') as retried,
                    count(*) filter (where a.outcome = 'dead') as dead
             from job_attempts a join jobs j on j.id = a.job_id
             where a.finished_at >= $1 and a.outcome <> 'succeeded' group by j.kind
         ), done as (
             -- A successful attempt is filed on its job row: one per job.
             select kind, count(*) as succeeded,
                    percentile_cont(0.5) within group (order by extract(epoch from finished_at - enqueued_at)::float8) as p50_secs,
                    percentile_cont(0.95) within group (order by extract(epoch from finished_at - enqueued_at)::float8) as p95_secs
             from jobs where status = 'succeeded' and finished_at >= $1 group by kind
         )
         select coalesce(d.kind, f.kind) as "kind!", coalesce(d.succeeded, 0) as "succeeded!",
                coalesce(f.retried, 0) as "retried!", coalesce(f.dead, 0) as "dead!",
                d.p50_secs, d.p95_secs
         from done d full join failed f on f.kind = d.kind
         order by 1"#,
        since,
    )
    .fetch_all(db)
    .await
}

/// A failed attempt.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Failure {
    pub job_id: Uuid,
    pub kind: String,
    pub attempt: i32,
    /// `retrying` or `dead`.
    pub outcome: String,
    pub finished_at: DateTime<Utc>,
    pub error: Option<String>,
}

pub async fn recent_failures<'e>(
    db: impl PgExecutor<'e>,
    limit: i64,
) -> sqlx::Result<Vec<Failure>> {
    sqlx::query_as!(
        Failure,
        "select a.job_id, j.kind, a.attempt, a.outcome, a.finished_at, a.error
         from job_attempts a join jobs j on j.id = a.job_id
         where a.outcome <> 'succeeded'
         order by a.finished_at desc
         limit $1",
        limit,
    )
    .fetch_all(db)
    .await
}
