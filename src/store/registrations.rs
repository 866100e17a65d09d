//! Provisional sign-ups: the registration, its one-time link token (only
//! the hash is stored), the application the link's completion carries,
//! and the operator's review (approval starts the service).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;
pub use super::status::RegistrationStatus;

#[derive(Debug, Clone, FromRow)]
pub struct RegistrationRow {
    pub id: Uuid,
    pub partner_id: Option<String>,
    pub email: String,
    pub locale: String,
    pub status: RegistrationStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub token_id: Option<Uuid>,
    pub application: Option<serde_json::Value>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub rejection_reason: Option<String>,
    pub customer_id: Option<String>,
    pub user_id: Option<String>,
}

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
    sqlx::query_as!(
        RegistrationRow,
        r#"insert into registrations (id, partner_id, token_hash, email, locale, expires_at,
                                    created_at, token_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, partner_id, email, locale, status as "status: RegistrationStatus", expires_at, created_at, completed_at, started_at, token_id, application, reviewed_at, rejection_reason, customer_id, user_id"#,
        new.id,
        new.partner_id,
        new.token_hash,
        new.email,
        new.locale,
        new.expires_at,
        new.now,
        new.token_id,
    )
    .fetch_one(&mut **tx)
    .await
}

/// The registration a link token belongs to, locked for its completion.
pub async fn lock_by_token_hash(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<RegistrationRow>> {
    sqlx::query_as!(
        RegistrationRow,
        r#"select id, partner_id, email, locale, status as "status: RegistrationStatus", expires_at, created_at, completed_at, started_at, token_id, application, reviewed_at, rejection_reason, customer_id, user_id from registrations where token_hash = $1 for update"#,
        token_hash,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn lock(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<RegistrationRow>> {
    sqlx::query_as!(
        RegistrationRow,
        r#"select id, partner_id, email, locale, status as "status: RegistrationStatus", expires_at, created_at, completed_at, started_at, token_id, application, reviewed_at, rejection_reason, customer_id, user_id from registrations where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<RegistrationRow>> {
    sqlx::query_as!(
        RegistrationRow,
        r#"select id, partner_id, email, locale, status as "status: RegistrationStatus", expires_at, created_at, completed_at, started_at, token_id, application, reviewed_at, rejection_reason, customer_id, user_id from registrations where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// A pending registration whose link passed its time.
pub async fn expire(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update registrations set status = 'expired' where id = $1 and status = 'pending'",
        id,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The link was completed with a valid application: it awaits review.
pub async fn apply(
    tx: &mut Tx<'_>,
    id: Uuid,
    application: &serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update registrations set status = 'applied', application = $2, completed_at = $3
         where id = $1 and status = 'pending'",
        id,
        application,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The operator's approval: the service starts now, for the customer and
/// user the approval put in the directory.
pub struct Approval<'a> {
    pub customer_id: &'a str,
    pub user_id: &'a str,
    pub reviewed_by: Uuid,
    pub now: DateTime<Utc>,
}

pub async fn approve(tx: &mut Tx<'_>, id: Uuid, approval: &Approval<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "update registrations set status = 'approved', reviewed_at = $2, started_at = $2,
                reviewed_by = $3, customer_id = $4, user_id = $5
         where id = $1 and status = 'applied'",
        id,
        approval.now,
        approval.reviewed_by,
        approval.customer_id,
        approval.user_id,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn reject(
    tx: &mut Tx<'_>,
    id: Uuid,
    reason: &str,
    reviewed_by: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update registrations set status = 'rejected', reviewed_at = $2, reviewed_by = $3,
                rejection_reason = $4
         where id = $1 and status = 'applied'",
        id,
        now,
        reviewed_by,
        reason,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Serialises sign-ups for one address until the transaction ends, so the
/// check for an application in progress and the insert are one step.
pub async fn lock_address(tx: &mut Tx<'_>, email: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('registration:' || lower($1), 0))",
        email,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The registrations of this address still in progress (pending or
/// applied), locked; a pending one may have passed its time.
pub async fn in_progress(tx: &mut Tx<'_>, email: &str) -> sqlx::Result<Vec<RegistrationRow>> {
    sqlx::query_as!(
        RegistrationRow,
        r#"select id, partner_id, email, locale, status as "status: RegistrationStatus", expires_at, created_at, completed_at, started_at, token_id, application, reviewed_at, rejection_reason, customer_id, user_id from registrations
         where lower(email) = lower($1) and status in ('pending', 'applied') for update"#,
        email,
    )
    .fetch_all(&mut **tx)
    .await
}

/// The review queue: applications awaiting an operator, oldest first.
pub async fn awaiting_review<'e>(
    db: impl PgExecutor<'e>,
    limit: i64,
) -> sqlx::Result<Vec<RegistrationRow>> {
    sqlx::query_as!(
        RegistrationRow,
        r#"select id, partner_id, email, locale, status as "status: RegistrationStatus", expires_at, created_at, completed_at, started_at, token_id, application, reviewed_at, rejection_reason, customer_id, user_id from registrations where status = 'applied'
         order by completed_at, id limit $1"#,
        limit,
    )
    .fetch_all(db)
    .await
}
