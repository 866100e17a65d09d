//! The outbox rows the relay publishes: claiming a due batch (skipping rows
//! another relay holds) and deleting them after the confirms. A row in the
//! outbox is a message still to be published; the job row is the record.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::Tx;
use crate::job::Envelope;

#[derive(Debug, FromRow)]
struct DueRow {
    outbox_id: i64,
    attempt: i32,
    job_id: Uuid,
    kind: String,
    version: i32,
    enqueued_at: DateTime<Utc>,
    payload: serde_json::Value,
}

pub struct DueMessage {
    pub outbox_id: i64,
    pub envelope: Envelope,
}

/// Locks up to `limit` due rows until the transaction ends.
pub async fn claim_due(tx: &mut Tx<'_>, limit: i64) -> sqlx::Result<Vec<DueMessage>> {
    let rows: Vec<DueRow> = sqlx::query_as!(
        DueRow,
        "select o.id as outbox_id, o.attempt, j.id as job_id, j.kind, j.version,
                j.enqueued_at, j.payload
         from outbox o join jobs j on j.id = o.job_id
         where o.available_at <= now()
         order by o.id
         limit $1
         for update of o skip locked",
        limit,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| DueMessage {
            outbox_id: row.outbox_id,
            envelope: Envelope {
                job_id: row.job_id,
                kind: row.kind,
                version: row.version,
                enqueued_at: row.enqueued_at,
                attempt: row.attempt,
                payload: row.payload,
            },
        })
        .collect())
}

/// Removes rows whose messages are published (or whose jobs ran in this
/// process); a row already removed is no error.
pub async fn delete_published(tx: &mut Tx<'_>, outbox_ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query!("delete from outbox where id = any($1)", outbox_ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How long until the next unpublished row falls due (zero if one is due),
/// or `None` when no row waits at all.
pub async fn next_due_in(pool: &PgPool) -> sqlx::Result<Option<Duration>> {
    // No `greatest(…, 0)` in SQL: `greatest` ignores NULLs, so "no row"
    // would come back as "due now" and the relay would spin.
    let seconds: Option<f64> = sqlx::query_scalar!(
        "select extract(epoch from min(available_at) - now())::float8
         from outbox",
    )
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Rows due for publishing but not yet published, and the age of the
/// oldest: how far the relay is behind.
pub async fn lag(pool: &PgPool) -> sqlx::Result<(i64, Option<f64>)> {
    let row = sqlx::query!(
        r#"select count(*) as "count!", extract(epoch from now() - min(available_at))::float8 as lag
         from outbox where available_at <= now()"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((row.count, row.lag))
}
