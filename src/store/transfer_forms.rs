//! Transfer forms (SPEC §1.2, second round): the form the source partner
//! opens, the customer completes through a one-time link (only its hash is
//! stored) and the source submits as a transfer ticket.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;
pub use super::status::FormState;

#[derive(Debug, Clone, FromRow)]
pub struct FormRow {
    pub id: Uuid,
    pub customer_id: String,
    pub source_partner_id: String,
    pub destination_partner_id: Option<String>,
    pub status: FormState,
    pub source_contact: serde_json::Value,
    pub customer_contact: Option<serde_json::Value>,
    pub destination_contact: Option<serde_json::Value>,
    pub admin_email: String,
    pub locale: String,
    pub transfer_id: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub returned_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

pub struct NewForm<'a> {
    pub id: Uuid,
    pub customer_id: &'a str,
    pub source_partner_id: &'a str,
    pub subscription_ids: &'a [String],
    pub source_contact: serde_json::Value,
    pub admin_email: &'a str,
    pub locale: &'a str,
    pub token_hash: &'a [u8],
    pub token_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// Inserts a `draft` form and its subscriptions.
pub async fn insert_form(tx: &mut Tx<'_>, new: &NewForm<'_>) -> sqlx::Result<FormRow> {
    let form = sqlx::query_as!(
        FormRow,
        r#"insert into transfer_forms
             (id, customer_id, source_partner_id, source_contact, admin_email, locale,
              token_hash, token_id, expires_at, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
         returning id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at"#,
        new.id,
        new.customer_id,
        new.source_partner_id,
        &new.source_contact,
        new.admin_email,
        new.locale,
        new.token_hash,
        new.token_id,
        new.expires_at,
        new.now,
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into transfer_form_subscriptions (form_id, subscription_id)
         select $1, unnest($2::text[])",
        new.id,
        new.subscription_ids,
    )
    .execute(&mut **tx)
    .await?;
    Ok(form)
}

pub async fn find_form<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<FormRow>> {
    sqlx::query_as!(
        FormRow,
        r#"select id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at from transfer_forms where id = $1"#,
        id,
    )
        .fetch_optional(db)
        .await
}

/// The form, locked for an act on it.
pub async fn lock_form(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<FormRow>> {
    sqlx::query_as!(
        FormRow,
        r#"select id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at from transfer_forms where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// The form a link token belongs to, locked for its completion.
pub async fn lock_form_by_token(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<FormRow>> {
    sqlx::query_as!(
        FormRow,
        r#"select id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at from transfer_forms where token_hash = $1 for update"#,
        token_hash,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn subscription_ids<'e>(
    db: impl PgExecutor<'e>,
    form_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select subscription_id from transfer_form_subscriptions where form_id = $1
         order by subscription_id",
        form_id,
    )
    .fetch_all(db)
    .await
}

/// The customer's part of the form.
pub struct Completion<'a> {
    pub customer_contact: serde_json::Value,
    pub destination_partner_id: &'a str,
    pub destination_contact: serde_json::Value,
}

/// Records the customer's part: `draft` → `returned`.
pub async fn complete(
    tx: &mut Tx<'_>,
    id: Uuid,
    completion: &Completion<'_>,
    now: DateTime<Utc>,
) -> sqlx::Result<FormRow> {
    sqlx::query_as!(
        FormRow,
        r#"update transfer_forms
         set status = 'returned', customer_contact = $2, destination_partner_id = $3,
             destination_contact = $4, returned_at = $5, updated_at = $5
         where id = $1
         returning id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at"#,
        id,
        &completion.customer_contact,
        completion.destination_partner_id,
        &completion.destination_contact,
        now,
    )
    .fetch_one(&mut **tx)
    .await
}

/// `returned` → `submitted`, naming the ticket the submission created.
pub async fn mark_submitted(
    tx: &mut Tx<'_>,
    id: Uuid,
    transfer_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<FormRow> {
    sqlx::query_as!(
        FormRow,
        r#"update transfer_forms
         set status = 'submitted', transfer_id = $2, submitted_at = $3, updated_at = $3
         where id = $1
         returning id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at"#,
        id,
        transfer_id,
        now,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Ends a form that was never submitted: `withdrawn` or `expired`.
pub async fn end(
    tx: &mut Tx<'_>,
    id: Uuid,
    status: FormState,
    now: DateTime<Utc>,
) -> sqlx::Result<FormRow> {
    sqlx::query_as!(
        FormRow,
        r#"update transfer_forms
         set status = $2, updated_at = $3,
             withdrawn_at = case when $2 = 'withdrawn' then $3 else withdrawn_at end
         where id = $1
         returning id, customer_id, source_partner_id, destination_partner_id, status as "status: FormState",
     source_contact, customer_contact, destination_contact, admin_email, locale, transfer_id,
     expires_at, created_at, updated_at, returned_at, submitted_at, withdrawn_at"#,
        id,
        status.as_str(),
        now,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Which of `ids` are the customer's and held by `partner_id`: a form
/// names only subscriptions its source can give away.
pub async fn held_subscriptions<'e>(
    db: impl PgExecutor<'e>,
    customer_id: &str,
    partner_id: &str,
    ids: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select id from subscriptions
         where id = any($1) and customer_id = $2 and partner_id = $3",
        ids,
        customer_id,
        partner_id,
    )
    .fetch_all(db)
    .await
}
