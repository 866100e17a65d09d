//! Provisional sign-ups: the registration, its one-time link token (only
//! the hash is stored), completion and the service start.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;

#[derive(Debug, Clone, FromRow)]
pub struct RegistrationRow {
    pub id: Uuid,
    pub partner_id: Option<String>,
    pub email: String,
    pub locale: String,
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub token_id: Option<Uuid>,
}

const COLUMNS: &str = "id, partner_id, email, locale, status, expires_at, created_at, completed_at, started_at, token_id";

pub struct NewRegistration<'a> {
    pub id: Uuid,
    pub partner_id: Option<&'a str>,
    pub token_hash: &'a [u8],
    pub email: &'a str,
    pub locale: &'a str,
    pub expires_at: DateTime<Utc>,
    pub token_id: Option<Uuid>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx<'_>, new: &NewRegistration<'_>) -> sqlx::Result<RegistrationRow> {
    sqlx::query_as(&format!(
        "insert into registrations (id, partner_id, token_hash, email, locale, expires_at,
                                    created_at, token_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.partner_id)
    .bind(new.token_hash)
    .bind(new.email)
    .bind(new.locale)
    .bind(new.expires_at)
    .bind(new.now)
    .bind(new.token_id)
    .fetch_one(&mut **tx)
    .await
}

/// The registration a link token belongs to, locked for its completion.
pub async fn lock_by_token_hash(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<RegistrationRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from registrations where token_hash = $1 for update"
    ))
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn lock(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<RegistrationRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from registrations where id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<RegistrationRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from registrations where id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn set_status(
    tx: &mut Tx<'_>,
    id: Uuid,
    status: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update registrations set status = $2,
                completed_at = case when $2 = 'completed' then $3 else completed_at end
         where id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn mark_started(tx: &mut Tx<'_>, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("update registrations set started_at = $2 where id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
