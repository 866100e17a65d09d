//! Who may act for whom (SPEC §1.5): reseller relationships between a
//! partner and a customer, the customers' invitations that grant them, and
//! the partnerships between indirect providers and resellers. Invitations
//! store only the hash of their one-time link token.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;
pub use super::status::InvitationStatus;

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Relationship {
    pub id: Uuid,
    pub partner_id: String,
    pub customer_id: String,
    /// `active` or `ended`.
    pub status: String,
    /// `directory` (written by the partner of record or an operator) or
    /// `invitation` (accepted by the customer).
    pub granted_by: String,
    pub request_id: Option<Uuid>,
    pub partnership_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub async fn find_relationship<'e>(
    db: impl PgExecutor<'e>,
    partner_id: &str,
    customer_id: &str,
) -> sqlx::Result<Option<Relationship>> {
    sqlx::query_as!(
        Relationship,
        "select id, partner_id, customer_id, status, granted_by, request_id, partnership_id, created_at, ended_at from reseller_relationships where partner_id = $1 and customer_id = $2",
        partner_id,
        customer_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn is_active<'e>(
    db: impl PgExecutor<'e>,
    partner_id: &str,
    customer_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from reseller_relationships
                        where partner_id = $1 and customer_id = $2 and status = 'active') as "exists!""#,
        partner_id,
        customer_id,
    )
    .fetch_one(db)
    .await
}

pub struct Grant<'a> {
    pub partner_id: &'a str,
    pub customer_id: &'a str,
    pub granted_by: &'static str,
    pub request_id: Option<Uuid>,
    pub partnership_id: Option<Uuid>,
    pub now: DateTime<Utc>,
}

/// Makes the relationship active (a new row, or an ended one again).
/// Returns it and whether it changed: granting an active one is a no-op.
pub async fn grant(tx: &mut Tx<'_>, grant: &Grant<'_>) -> sqlx::Result<(Relationship, bool)> {
    let changed: Option<Relationship> = sqlx::query_as!(
        Relationship,
        "insert into reseller_relationships
             (partner_id, customer_id, granted_by, request_id, partnership_id, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $6)
         on conflict (partner_id, customer_id) do update
             set status = 'active', ended_at = null, granted_by = excluded.granted_by,
                 request_id = excluded.request_id, partnership_id = excluded.partnership_id,
                 updated_at = excluded.updated_at
             where reseller_relationships.status = 'ended'
         returning id, partner_id, customer_id, status, granted_by, request_id, partnership_id, created_at, ended_at",
        grant.partner_id,
        grant.customer_id,
        grant.granted_by,
        grant.request_id,
        grant.partnership_id,
        grant.now,
    )
    .fetch_optional(&mut **tx)
    .await?;
    match changed {
        Some(relationship) => Ok((relationship, true)),
        None => {
            let existing = find_relationship(&mut **tx, grant.partner_id, grant.customer_id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            Ok((existing, false))
        }
    }
}

/// Ends an active relationship; `None` when there is none to end.
pub async fn end(
    tx: &mut Tx<'_>,
    partner_id: &str,
    customer_id: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<Relationship>> {
    sqlx::query_as!(
        Relationship,
        "update reseller_relationships set status = 'ended', ended_at = $3, updated_at = $3
         where partner_id = $1 and customer_id = $2 and status = 'active'
         returning id, partner_id, customer_id, status, granted_by, request_id, partnership_id, created_at, ended_at",
        partner_id,
        customer_id,
        now,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Ends the relationships a partnership's two-tier requests granted its
/// provider: without the partnership, the provider has no reason to see them.
pub async fn end_granted_through(
    tx: &mut Tx<'_>,
    partnership_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Relationship>> {
    sqlx::query_as!(
        Relationship,
        "update reseller_relationships set status = 'ended', ended_at = $2, updated_at = $2
         where partnership_id = $1 and status = 'active'
         returning id, partner_id, customer_id, status, granted_by, request_id, partnership_id, created_at, ended_at",
        partnership_id,
        now,
    )
    .fetch_all(&mut **tx)
    .await
}

// Relationship requests: a customer's invitation link.

#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    pub partner_id: String,
    pub customer_id: String,
    pub provider_id: Option<String>,
    pub partnership_id: Option<Uuid>,
    pub admin_email: String,
    pub locale: String,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

pub struct NewRequest<'a> {
    pub id: Uuid,
    pub partner_id: &'a str,
    pub customer_id: &'a str,
    pub provider: Option<(&'a str, Uuid)>,
    pub admin_email: &'a str,
    pub locale: &'a str,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    pub token_id: Uuid,
    pub now: DateTime<Utc>,
}

/// Inserts an invitation; `None` when the partner has one open for the
/// customer already.
pub async fn insert_request(
    tx: &mut Tx<'_>,
    new: &NewRequest<'_>,
) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as!(
        RequestRow,
        r#"insert into relationship_requests
             (id, partner_id, customer_id, provider_id, partnership_id, admin_email, locale,
              token_hash, expires_at, created_at, token_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         on conflict (partner_id, customer_id) where status = 'invited' do nothing
         returning id, partner_id, customer_id, provider_id, partnership_id, admin_email, locale, status as "status: InvitationStatus", expires_at, created_at, decided_at"#,
        new.id,
        new.partner_id,
        new.customer_id,
        new.provider.map(|(id, _)| id),
        new.provider.map(|(_, partnership)| partnership),
        new.admin_email,
        new.locale,
        new.token_hash,
        new.expires_at,
        new.now,
        new.token_id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find_request<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as!(
        RequestRow,
        r#"select id, partner_id, customer_id, provider_id, partnership_id, admin_email, locale, status as "status: InvitationStatus", expires_at, created_at, decided_at from relationship_requests where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// The invitation a link token belongs to, locked for its decision.
pub async fn lock_request_by_token(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as!(
        RequestRow,
        r#"select id, partner_id, customer_id, provider_id, partnership_id, admin_email, locale, status as "status: InvitationStatus", expires_at, created_at, decided_at from relationship_requests where token_hash = $1 for update"#,
        token_hash,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// An open invitation whose time ran out is expired on the spot, so the
/// partner may ask again.
pub async fn expire_open_request(
    tx: &mut Tx<'_>,
    partner_id: &str,
    customer_id: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<RequestRow>> {
    sqlx::query_as!(
        RequestRow,
        r#"update relationship_requests set status = 'expired', decided_at = $3
         where partner_id = $1 and customer_id = $2 and status = 'invited' and expires_at < $3
         returning id, partner_id, customer_id, provider_id, partnership_id, admin_email, locale, status as "status: InvitationStatus", expires_at, created_at, decided_at"#,
        partner_id,
        customer_id,
        now,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn decide_request(
    tx: &mut Tx<'_>,
    id: Uuid,
    status: InvitationStatus,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update relationship_requests set status = $2, decided_at = $3 where id = $1",
        id,
        status.as_str(),
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// Partnerships: an indirect provider and an indirect reseller.

#[derive(Debug, Clone, FromRow)]
pub struct PartnershipRow {
    pub id: Uuid,
    pub provider_id: String,
    pub reseller_id: String,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub struct NewPartnership<'a> {
    pub id: Uuid,
    pub provider_id: &'a str,
    pub reseller_id: &'a str,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    pub token_id: Uuid,
    pub now: DateTime<Utc>,
}

/// Inserts an invitation; `None` when the pair has a live partnership
/// (invited or active) already.
pub async fn insert_partnership(
    tx: &mut Tx<'_>,
    new: &NewPartnership<'_>,
) -> sqlx::Result<Option<PartnershipRow>> {
    sqlx::query_as!(
        PartnershipRow,
        r#"insert into partnerships (id, provider_id, reseller_id, token_hash, expires_at, created_at, token_id)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (provider_id, reseller_id) where status in ('invited', 'active') do nothing
         returning id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at"#,
        new.id,
        new.provider_id,
        new.reseller_id,
        new.token_hash,
        new.expires_at,
        new.now,
        new.token_id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find_partnership<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<PartnershipRow>> {
    sqlx::query_as!(
        PartnershipRow,
        r#"select id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at from partnerships where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn lock_partnership(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<PartnershipRow>> {
    sqlx::query_as!(
        PartnershipRow,
        r#"select id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at from partnerships where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn lock_partnership_by_token(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<PartnershipRow>> {
    sqlx::query_as!(
        PartnershipRow,
        r#"select id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at from partnerships where token_hash = $1 for update"#,
        token_hash,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// The pair's active partnership, locked so that it cannot end while a
/// two-tier grant relies on it.
pub async fn lock_active_partnership(
    tx: &mut Tx<'_>,
    provider_id: &str,
    reseller_id: &str,
) -> sqlx::Result<Option<PartnershipRow>> {
    sqlx::query_as!(
        PartnershipRow,
        r#"select id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at from partnerships
         where provider_id = $1 and reseller_id = $2 and status = 'active' for update"#,
        provider_id,
        reseller_id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// An invited partnership whose time ran out is expired on the spot, so the
/// provider may invite again.
pub async fn expire_open_partnership(
    tx: &mut Tx<'_>,
    provider_id: &str,
    reseller_id: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<PartnershipRow>> {
    sqlx::query_as!(
        PartnershipRow,
        r#"update partnerships set status = 'expired', decided_at = $3
         where provider_id = $1 and reseller_id = $2 and status = 'invited' and expires_at < $3
         returning id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at"#,
        provider_id,
        reseller_id,
        now,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn set_partnership_status(
    tx: &mut Tx<'_>,
    id: Uuid,
    status: InvitationStatus,
    now: DateTime<Utc>,
) -> sqlx::Result<PartnershipRow> {
    sqlx::query_as!(
        PartnershipRow,
        r#"update partnerships set status = $2,
                decided_at = case when $2 in ('active', 'declined', 'expired') then $3 else decided_at end,
                ended_at = case when $2 = 'ended' then $3 else ended_at end
         where id = $1
         returning id, provider_id, reseller_id, status as "status: InvitationStatus", expires_at, created_at, decided_at, ended_at"#,
        id,
        status.as_str(),
        now,
    )
    .fetch_one(&mut **tx)
    .await
}
