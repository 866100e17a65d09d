//! Trials: the trial organisation (members, licenses, admin roles,
//! settings, calling numbers), its notices, and the purge that deletes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;
use super::directory::UserStatus;
pub use super::status::TrialStatus;

/// Someone who hears about the trial: the customer's or the partner's admin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub email: String,
    /// `ja` or `en`; the default locale when absent.
    pub locale: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct TrialRow {
    pub id: Uuid,
    pub customer_id: String,
    pub partner_id: String,
    pub services: Vec<String>,
    pub status: TrialStatus,
    pub ends_at: DateTime<Utc>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub extensions: i32,
    pub customer_admin: sqlx::types::Json<Admin>,
    pub partner_admin: sqlx::types::Json<Admin>,
    pub token_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub converted_at: Option<DateTime<Utc>>,
    pub purged_at: Option<DateTime<Utc>>,
}

pub struct NewTrial<'a> {
    pub id: Uuid,
    pub customer_id: &'a str,
    pub partner_id: &'a str,
    pub services: &'a [String],
    pub ends_at: DateTime<Utc>,
    pub customer_admin: &'a Admin,
    pub partner_admin: &'a Admin,
    pub user_ids: &'a [String],
    pub numbers: &'a [String],
    pub settings: &'a serde_json::Value,
    pub token_id: Option<Uuid>,
    pub now: DateTime<Utc>,
}

/// Creates the trial organisation: the trial, its members, one license per
/// service and member, both admin roles, its settings and its numbers.
/// A number another trial holds fails with a unique violation on
/// `trial_numbers_in_use`.
pub async fn insert_trial(tx: &mut Tx<'_>, trial: &NewTrial<'_>) -> sqlx::Result<TrialRow> {
    let row = sqlx::query_as!(
        TrialRow,
        r#"insert into trials (id, customer_id, partner_id, services, ends_at, customer_admin,
                             partner_admin, token_id, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         returning id, customer_id, partner_id, services, status as "status: TrialStatus", ends_at, grace_ends_at,
     extensions, customer_admin as "customer_admin: sqlx::types::Json<Admin>",
     partner_admin as "partner_admin: sqlx::types::Json<Admin>", token_id, created_at, updated_at, converted_at,
     purged_at"#,
        trial.id,
        trial.customer_id,
        trial.partner_id,
        trial.services,
        trial.ends_at,
        sqlx::types::Json(trial.customer_admin) as _,
        sqlx::types::Json(trial.partner_admin) as _,
        trial.token_id,
        trial.now,
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into trial_users (trial_id, user_id) select $1, unnest($2::text[])",
        trial.id,
        trial.user_ids,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into trial_licenses (trial_id, service, user_id)
         select $1, service, user_id from unnest($2::text[]) service, unnest($3::text[]) user_id",
        trial.id,
        trial.services,
        trial.user_ids,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into trial_admin_roles (trial_id, principal, email, role)
         values ($1, 'customer_admin', $2, 'trial_admin'), ($1, 'partner_admin', $3, 'partner_admin')",
        trial.id,
        &trial.customer_admin.email,
        &trial.partner_admin.email,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into trial_settings (trial_id, settings) values ($1, $2)",
        trial.id,
        trial.settings,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into trial_numbers (trial_id, number) select $1, unnest($2::text[])",
        trial.id,
        trial.numbers,
    )
    .execute(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn lock_trial(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<TrialRow>> {
    sqlx::query_as!(
        TrialRow,
        r#"select id, customer_id, partner_id, services, status as "status: TrialStatus", ends_at, grace_ends_at,
     extensions, customer_admin as "customer_admin: sqlx::types::Json<Admin>",
     partner_admin as "partner_admin: sqlx::types::Json<Admin>", token_id, created_at, updated_at, converted_at,
     purged_at from trials where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find_trial<'e>(db: impl PgExecutor<'e>, id: Uuid) -> sqlx::Result<Option<TrialRow>> {
    sqlx::query_as!(
        TrialRow,
        r#"select id, customer_id, partner_id, services, status as "status: TrialStatus", ends_at, grace_ends_at,
     extensions, customer_admin as "customer_admin: sqlx::types::Json<Admin>",
     partner_admin as "partner_admin: sqlx::types::Json<Admin>", token_id, created_at, updated_at, converted_at,
     purged_at from trials where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

/// Numbers among `numbers` that another trial reserves or holds.
pub async fn numbers_in_use<'e>(
    db: impl PgExecutor<'e>,
    numbers: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select number from trial_numbers where number = any($1) and status <> 'released'
         order by number",
        numbers,
    )
    .fetch_all(db)
    .await
}

/// Moves a trial to `status`, keeping the columns that go with each one.
pub async fn set_status(
    tx: &mut Tx<'_>,
    id: Uuid,
    status: TrialStatus,
    grace_ends_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"update trials set status = $2, grace_ends_at = $3, updated_at = $4,
                converted_at = case when $2 = 'converted' then $4::timestamptz end,
                purged_at = case when $2 = 'purged' then $4::timestamptz end
         where id = $1"#,
        id,
        status.as_str(),
        grace_ends_at,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One more extension step: the new end, active again.
pub async fn extend(
    tx: &mut Tx<'_>,
    id: Uuid,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<TrialRow> {
    sqlx::query_as!(
        TrialRow,
        r#"update trials set ends_at = $2, status = 'active', grace_ends_at = null,
                extensions = extensions + 1, updated_at = $3
         where id = $1
         returning id, customer_id, partner_id, services, status as "status: TrialStatus", ends_at, grace_ends_at,
     extensions, customer_admin as "customer_admin: sqlx::types::Json<Admin>",
     partner_admin as "partner_admin: sqlx::types::Json<Admin>", token_id, created_at, updated_at, converted_at,
     purged_at"#,
        id,
        ends_at,
        now,
    )
    .fetch_one(&mut **tx)
    .await
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct NoticeRow {
    pub kind: String,
    pub term_ends: DateTime<Utc>,
    pub outcome: String,
    pub at: DateTime<Utc>,
    pub job_id: Option<Uuid>,
}

pub async fn notices<'e>(db: impl PgExecutor<'e>, trial_id: Uuid) -> sqlx::Result<Vec<NoticeRow>> {
    sqlx::query_as!(
        NoticeRow,
        "select kind, term_ends, outcome, at, job_id from trial_notices
         where trial_id = $1 order by at, kind",
        trial_id,
    )
    .fetch_all(db)
    .await
}

/// Records a notice for the trial's term; false when it was already
/// recorded (sent or skipped), which is what keeps a notice to once.
pub async fn record_notice(
    tx: &mut Tx<'_>,
    trial_id: Uuid,
    kind: &str,
    term_ends: DateTime<Utc>,
    outcome: &str,
    job_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "insert into trial_notices (trial_id, kind, term_ends, outcome, at, job_id)
         values ($1, $2, $3, $4, $5, $6)
         on conflict do nothing",
        trial_id,
        kind,
        term_ends,
        outcome,
        now,
        job_id,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct NumberRow {
    pub number: String,
    pub status: String,
    pub release_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
}

pub async fn numbers<'e>(db: impl PgExecutor<'e>, trial_id: Uuid) -> sqlx::Result<Vec<NumberRow>> {
    sqlx::query_as!(
        NumberRow,
        "select number, status, release_at, released_at from trial_numbers
         where trial_id = $1 order by number",
        trial_id,
    )
    .fetch_all(db)
    .await
}

/// The members of the trial organisation, with their mail and locale.
pub async fn members<'e>(
    db: impl PgExecutor<'e>,
    trial_id: Uuid,
) -> sqlx::Result<Vec<super::directory::User>> {
    sqlx::query_as!(
        super::directory::User,
        r#"select u.id, u.customer_id, u.email, u.locale, u.name, u.status as "status: UserStatus"
         from trial_users t join users u on u.id = t.user_id
         where t.trial_id = $1 order by u.id"#,
        trial_id,
    )
    .fetch_all(db)
    .await
}

/// What the trial organisation still holds: what a purge would delete.
#[derive(Debug, Clone, Copy, Default, FromRow, Serialize, PartialEq, Eq)]
pub struct Holdings {
    pub licenses: i64,
    pub admin_roles: i64,
    pub settings: i64,
    pub users: i64,
    pub numbers: i64,
}

pub async fn holdings<'e>(db: impl PgExecutor<'e>, trial_id: Uuid) -> sqlx::Result<Holdings> {
    sqlx::query_as!(
        Holdings,
        r#"select (select count(*) from trial_licenses where trial_id = $1) as "licenses!",
                (select count(*) from trial_admin_roles where trial_id = $1) as "admin_roles!",
                (select count(*) from trial_settings where trial_id = $1) as "settings!",
                (select count(*) from trial_users tu join users u on u.id = tu.user_id
                  where tu.trial_id = $1 and u.status = 'active') as "users!",
                (select count(*) from trial_numbers where trial_id = $1 and status = 'reserved') as "numbers!""#,
        trial_id,
    )
    .fetch_one(db)
    .await
}

/// Deletes the trial organisation's licenses, admin roles and settings,
/// moves its members to the free organisation and holds its numbers until
/// `release_at`. The caller holds the trial's lock and re-checked it.
pub async fn purge_organisation(
    tx: &mut Tx<'_>,
    trial_id: Uuid,
    release_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Holdings> {
    let before = holdings(&mut **tx, trial_id).await?;
    sqlx::query!("delete from trial_licenses where trial_id = $1", trial_id,)
        .execute(&mut **tx)
        .await?;
    sqlx::query!(
        "delete from trial_admin_roles where trial_id = $1",
        trial_id,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!("delete from trial_settings where trial_id = $1", trial_id,)
        .execute(&mut **tx)
        .await?;
    sqlx::query!(
        "update users set status = 'moved_to_free', updated_at = $2
         where status = 'active' and id in (select user_id from trial_users where trial_id = $1)",
        trial_id,
        now,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "update trial_numbers set status = 'held', release_at = $2
         where trial_id = $1 and status = 'reserved'",
        trial_id,
        release_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(before)
}

/// Frees the trial's held numbers whose hold ended; returns them.
pub async fn release_numbers(
    tx: &mut Tx<'_>,
    trial_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "update trial_numbers set status = 'released', release_at = null, released_at = $2
         where trial_id = $1 and status = 'held' and release_at <= $2
         returning number",
        trial_id,
        now,
    )
    .fetch_all(&mut **tx)
    .await
}
