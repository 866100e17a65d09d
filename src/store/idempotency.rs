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

/// What a key holds when a request with it begins.
#[derive(Debug)]
pub enum KeyState {
    /// Another request with the same key is in flight right now.
    Busy,
    Fresh,
    Saved(SavedResponse),
}

/// Takes a transaction-scoped advisory lock on (token, key) and reads the
/// saved response, in one round trip. The read's snapshot may predate the
/// lock, so a request that commits in between goes unseen here; the
/// primary key then refuses the second save, and [`save`] reports it.
pub async fn begin(tx: &mut Tx<'_>, token_id: Uuid, key: &str) -> sqlx::Result<KeyState> {
    #[derive(FromRow)]
    struct Row {
        locked: bool,
        request_fingerprint: Option<Vec<u8>>,
        response_status: Option<i16>,
        response_body: Option<serde_json::Value>,
    }
    let row: Row = sqlx::query_as!(
        Row,
        r#"select pg_try_advisory_xact_lock(hashtextextended($3, 0)) as "locked!",
                k.request_fingerprint, k.response_status, k.response_body
         from (select) as one
         left join idempotency_keys k on k.token_id = $1 and k.key = $2"#,
        token_id,
        key,
        lock_name(token_id, key),
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(KeyState::of(
        row.locked,
        row.request_fingerprint,
        row.response_status,
        row.response_body,
    ))
}

/// The name whose hash is the advisory lock of (token, key).
pub fn lock_name(token_id: Uuid, key: &str) -> String {
    format!("idempotency:{token_id}:{key}")
}

impl KeyState {
    /// The state from the lock taken and the saved columns read.
    pub fn of(
        locked: bool,
        request_fingerprint: Option<Vec<u8>>,
        response_status: Option<i16>,
        response_body: Option<serde_json::Value>,
    ) -> KeyState {
        match (locked, request_fingerprint, response_status, response_body) {
            (false, ..) => KeyState::Busy,
            (true, Some(request_fingerprint), Some(response_status), Some(response_body)) => {
                KeyState::Saved(SavedResponse {
                    request_fingerprint,
                    response_status,
                    response_body,
                })
            }
            _ => KeyState::Fresh,
        }
    }
}

pub async fn save(
    tx: &mut Tx<'_>,
    token_id: Uuid,
    key: &str,
    fingerprint: &[u8],
    status: u16,
    body: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into idempotency_keys (token_id, key, request_fingerprint, response_status, response_body)
         values ($1, $2, $3, $4, $5)",
        token_id,
        key,
        fingerprint,
        status as i16,
        body,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `save` failed because a request with the same key saved first.
pub fn is_taken(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
