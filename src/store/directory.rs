//! The directory: partners, customers, users, subscriptions, role
//! assignments. Every write is an upsert that reports whether it created
//! the row. Reseller relationships have their own module, `relationships`.

use sqlx::{FromRow, PgExecutor};

use super::Tx;
pub use super::status::UserStatus;

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub admin_email: Option<String>,
    pub locale: String,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Customer {
    pub id: String,
    pub partner_id: String,
    pub name: String,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub customer_id: String,
    pub email: String,
    pub locale: String,
    pub name: String,
    pub status: UserStatus,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    pub customer_id: String,
    pub partner_id: String,
    pub product: String,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct RoleAssignment {
    pub id: String,
    pub principal_type: String,
    pub principal_id: String,
    pub role: String,
    pub scope_type: String,
    pub scope_id: String,
    pub status: String,
}

pub async fn find_partner<'e>(db: impl PgExecutor<'e>, id: &str) -> sqlx::Result<Option<Partner>> {
    sqlx::query_as!(
        Partner,
        "select id, name, admin_email, locale from partners where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn upsert_partner(tx: &mut Tx<'_>, partner: &Partner) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"insert into partners (id, name, admin_email, locale) values ($1, $2, $3, $4)
         on conflict (id) do update set name = excluded.name, admin_email = excluded.admin_email,
                                        locale = excluded.locale, updated_at = now()
         returning (xmax = 0) as "inserted!""#,
        &partner.id,
        &partner.name,
        partner.admin_email.as_deref(),
        &partner.locale,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Locks the customer row (if any) so concurrent writes of one customer
/// decide ownership one after the other.
pub async fn lock_customer(tx: &mut Tx<'_>, id: &str) -> sqlx::Result<Option<Customer>> {
    sqlx::query_as!(
        Customer,
        "select id, partner_id, name from customers where id = $1 for update",
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find_customer<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<Customer>> {
    sqlx::query_as!(
        Customer,
        "select id, partner_id, name from customers where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn upsert_customer(tx: &mut Tx<'_>, customer: &Customer) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"insert into customers (id, partner_id, name) values ($1, $2, $3)
         on conflict (id) do update set partner_id = excluded.partner_id, name = excluded.name,
                                        updated_at = now()
         returning (xmax = 0) as "inserted!""#,
        &customer.id,
        &customer.partner_id,
        &customer.name,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Whether `partner_id` may act for the customer: its reseller of record,
/// or a partner with an active reseller relationship (SPEC §1.5).
pub async fn customer_visible_to<'e>(
    db: impl PgExecutor<'e>,
    customer_id: &str,
    partner_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from customers where id = $1 and partner_id = $2)
             or exists (select 1 from reseller_relationships
                       where customer_id = $1 and partner_id = $2 and status = 'active') as "exists!""#,
        customer_id,
        partner_id,
    )
    .fetch_one(db)
    .await
}

pub async fn find_user<'e>(db: impl PgExecutor<'e>, id: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"select id, customer_id, email, locale, name, status as "status: UserStatus" from users where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn upsert_user(tx: &mut Tx<'_>, user: &User) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"insert into users (id, customer_id, email, locale, name) values ($1, $2, $3, $4, $5)
         on conflict (id) do update set customer_id = excluded.customer_id, email = excluded.email,
                                        locale = excluded.locale, name = excluded.name,
                                        updated_at = now()
         returning (xmax = 0) as "inserted!""#,
        &user.id,
        &user.customer_id,
        &user.email,
        &user.locale,
        &user.name,
    )
    .fetch_one(&mut **tx)
    .await
}

pub async fn find_subscription<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<Subscription>> {
    sqlx::query_as!(
        Subscription,
        "select id, customer_id, partner_id, product from subscriptions where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

/// Those of `ids` that name no subscription, in one round trip.
pub async fn missing_subscriptions<'e>(
    db: impl PgExecutor<'e>,
    ids: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"select id as "id!" from unnest($1::text[]) as wanted(id)
         where not exists (select 1 from subscriptions s where s.id = wanted.id)
         order by id"#,
        ids,
    )
    .fetch_all(db)
    .await
}

pub async fn upsert_subscription(
    tx: &mut Tx<'_>,
    subscription: &Subscription,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"insert into subscriptions (id, customer_id, partner_id, product) values ($1, $2, $3, $4)
         on conflict (id) do update set customer_id = excluded.customer_id,
                                        partner_id = excluded.partner_id,
                                        product = excluded.product, updated_at = now()
         returning (xmax = 0) as "inserted!""#,
        &subscription.id,
        &subscription.customer_id,
        &subscription.partner_id,
        &subscription.product,
    )
    .fetch_one(&mut **tx)
    .await
}

pub async fn find_role<'e>(
    db: impl PgExecutor<'e>,
    id: &str,
) -> sqlx::Result<Option<RoleAssignment>> {
    sqlx::query_as!(
        RoleAssignment,
        "select id, principal_type, principal_id, role, scope_type, scope_id, status
         from role_assignments where id = $1",
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn upsert_role(tx: &mut Tx<'_>, role: &RoleAssignment) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"insert into role_assignments (id, principal_type, principal_id, role, scope_type, scope_id,
                                       status, removed_at)
         values ($1, $2, $3, $4, $5, $6, $7, case when $7 = 'removed' then now() end)
         on conflict (id) do update set
             principal_type = excluded.principal_type, principal_id = excluded.principal_id,
             role = excluded.role, scope_type = excluded.scope_type, scope_id = excluded.scope_id,
             status = excluded.status,
             removed_at = case when excluded.status = 'removed'
                               then coalesce(role_assignments.removed_at, now()) end,
             updated_at = now()
         returning (xmax = 0) as "inserted!""#,
        &role.id,
        &role.principal_type,
        &role.principal_id,
        &role.role,
        &role.scope_type,
        &role.scope_id,
        &role.status,
    )
    .fetch_one(&mut **tx)
    .await
}

/// The customer's users among `ids` (unknown ids and other customers'
/// users are left out).
pub async fn users_of_customer<'e>(
    db: impl PgExecutor<'e>,
    customer_id: &str,
    ids: &[String],
) -> sqlx::Result<Vec<User>> {
    sqlx::query_as!(
        User,
        r#"select id, customer_id, email, locale, name, status as "status: UserStatus" from users
         where customer_id = $1 and id = any($2)"#,
        customer_id,
        ids,
    )
    .fetch_all(db)
    .await
}

/// The user an address is already registered under, if any (the oldest,
/// when portals keep one address for several customers).
pub async fn user_by_email<'e>(db: impl PgExecutor<'e>, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"select id, customer_id, email, locale, name, status as "status: UserStatus" from users
         where lower(email) = lower($1) order by created_at, id limit 1"#,
        email,
    )
    .fetch_optional(db)
    .await
}
