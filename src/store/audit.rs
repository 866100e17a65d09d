//! The audit trail: one row per state change, written in the transaction
//! of the change itself.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

pub struct AuditEvent<'a> {
    pub at: DateTime<Utc>,
    pub entity_type: &'static str,
    pub entity_id: Uuid,
    pub action: &'static str,
    pub from_state: Option<&'a str>,
    pub to_state: Option<&'a str>,
    pub token_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

pub async fn record(tx: &mut Tx<'_>, event: AuditEvent<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into audit_events (at, entity_type, entity_id, action, from_state, to_state,
                                   token_id, job_id, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        event.at,
        event.entity_type,
        event.entity_id,
        event.action,
        event.from_state,
        event.to_state,
        event.token_id,
        event.job_id,
        &event.detail,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub entity_type: String,
    pub entity_id: Uuid,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub token_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// The trail, oldest first (an entity's history), optionally for one
/// entity and from an instant.
pub async fn list<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    entity_id: Option<Uuid>,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as!(
        AuditRow,
        "select id, at, entity_type, entity_id, action, from_state, to_state, token_id, job_id, detail
         from audit_events
         where ($1::uuid is null or entity_id = $1) and ($2::timestamptz is null or at >= $2)
         order by id
         limit $3",
        entity_id,
        since,
        limit,
    )
    .fetch_all(executor)
    .await
}

/// One page of the trail for operators, newest first: events before the
/// cursor `before` (an event id), so the latest is always on the first page.
pub async fn newest_first<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    entity_id: Option<Uuid>,
    since: Option<DateTime<Utc>>,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as!(
        AuditRow,
        "select id, at, entity_type, entity_id, action, from_state, to_state, token_id, job_id, detail
         from audit_events
         where ($1::uuid is null or entity_id = $1) and ($2::timestamptz is null or at >= $2)
           and ($3::bigint is null or id < $3)
         order by id desc
         limit $4",
        entity_id,
        since,
        before,
        limit,
    )
    .fetch_all(executor)
    .await
}
