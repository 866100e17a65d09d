//! Saved responses for `Idempotency-Key`, scoped to the calling token.

use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Debug, FromRow)]
pub struct SavedResponse {
    pub request_fingerprint: Vec<u8>,
    pub response_status: i16,
    pub response_body: serde_json::Value,
}

/// Takes a transaction-scoped advisory lock on (token, key). `false` means
/// another request with the same key is in flight right now.
pub async fn try_lock(tx: &mut Tx<'_>, token_id: Uuid, key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("idempotency:{token_id}:{key}"))
        .fetch_one(&mut **tx)
        .await
}

pub async fn find(
    tx: &mut Tx<'_>,
    token_id: Uuid,
    key: &str,
) -> sqlx::Result<Option<SavedResponse>> {
    sqlx::query_as(
        "select request_fingerprint, response_status, response_body from idempotency_keys
         where token_id = $1 and key = $2",
    )
    .bind(token_id)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn save(
    tx: &mut Tx<'_>,
    token_id: Uuid,
    key: &str,
    fingerprint: &[u8],
    status: u16,
    body: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into idempotency_keys (token_id, key, request_fingerprint, response_status, response_body)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(token_id)
    .bind(key)
    .bind(fingerprint)
    .bind(status as i16)
    .bind(body)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
