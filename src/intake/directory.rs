//! Directory upserts: portals keep fulfil's copy of their world in sync
//! with idempotent `PUT`s (201 when created, 200 when updated) and read it
//! back with `GET`. A portal writes only within its own partner's scope —
//! its partner, the customers it is reseller of record for, their users,
//! the subscriptions it sells, and roles on those; anything outside answers
//! 404 (or 403 when the body itself names another partner). Operators may
//! write everything. Reseller relationships are granted, not upserted:
//! see `relationships`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, is_identifier, is_plausible_email, parse_json};
use super::problem::ApiError;
use crate::store::directory::UserStatus;
use crate::store::directory::{self, Customer, Partner, RoleAssignment, Subscription, User};
use crate::store::tokens::Role;

fn upserted<T: Serialize>(created: bool, resource: &T) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(resource)).into_response()
}

pub(super) fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {what} {id}"))
}

fn check_id(checks: &mut Checks, field: &str, id: &str) {
    checks.check(
        is_identifier(id),
        field,
        "1 to 64 letters, digits, '.', '_' or '-'",
    );
}

/// The partner a write is for: a portal's own (a body naming another is
/// refused), or the one an operator names.
fn acting_partner(caller: &Caller, named: Option<&str>) -> Result<String, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    match (caller.partner_scope(), named) {
        (Some(own), None) => Ok(own.to_owned()),
        (Some(own), Some(named)) if named == own => Ok(own.to_owned()),
        (Some(_), Some(_)) => Err(ApiError::Forbidden(
            "a portal token writes only its own partner's data".into(),
        )),
        (None, Some(named)) => Ok(named.to_owned()),
        (None, None) => Err(ApiError::field("partner_id", "operators name the partner")),
    }
}

/// Whether the caller may write the customer's data (its reseller of
/// record; operators may write everything).
pub(super) fn owns(caller: &Caller, customer: &Customer) -> bool {
    caller
        .partner_scope()
        .is_none_or(|own| own == customer.partner_id)
}

/// The customer, if the caller may write within it.
async fn owned_customer(state: &AppState, caller: &Caller, id: &str) -> Result<Customer, ApiError> {
    let customer = directory::find_customer(&state.pool, id).await?;
    customer
        .filter(|c| owns(caller, c))
        .ok_or_else(|| not_found("customer", id))
}

async fn visible_customer(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Customer, ApiError> {
    let mut conn = state.pool.acquire().await?;
    customer_acted_for(&mut conn, caller, id).await
}

/// The customer, if the caller's partner may act for it: its partner of
/// record, or a partner with an active reseller relationship (operators act
/// for all). Anything else answers 404, exactly as an unknown customer
/// does (SPEC §1.5), so a portal cannot even tell that it exists.
pub async fn customer_acted_for(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    id: &str,
) -> Result<Customer, ApiError> {
    let customer = directory::find_customer(&mut *conn, id)
        .await?
        .ok_or_else(|| not_found("customer", id))?;
    match caller.partner_scope() {
        None => Ok(customer),
        Some(own) if own == customer.partner_id => Ok(customer),
        Some(own) if directory::customer_visible_to(&mut *conn, id, own).await? => Ok(customer),
        Some(_) => Err(not_found("customer", id)),
    }
}

// Partners

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerBody {
    #[serde(default)]
    #[schema(max_length = 200)]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub admin_email: Option<String>,
    /// `ja` or `en`.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
}

#[utoipa::path(put, path = "/v1/partners/{id}", tag = "directory",
    request_body = PartnerBody,
    params(("id" = String, Path)),
    responses((status = 200, body = Partner), (status = 201, body = Partner), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_partner(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let partner_id = acting_partner(&caller, Some(&id))?;
    let body: PartnerBody = parse_json(&body)?;
    let locale = body
        .locale
        .unwrap_or_else(|| state.settings.mail.default_locale.to_string());
    let mut checks = Checks::default();
    check_id(&mut checks, "id", &id);
    checks.locale("locale", Some(&locale));
    checks.check(
        body.name.chars().count() <= 200,
        "name",
        "at most 200 characters",
    );
    if let Some(email) = &body.admin_email {
        checks.check(
            is_plausible_email(email),
            "admin_email",
            "must be a mail address",
        );
    }
    checks.finish()?;
    let partner = Partner {
        id: partner_id,
        name: body.name,
        admin_email: body.admin_email,
        locale,
    };
    let mut tx = state.pool.begin().await?;
    let created = directory::upsert_partner(&mut tx, &partner).await?;
    tx.commit().await?;
    Ok(upserted(created, &partner))
}

#[utoipa::path(get, path = "/v1/partners/{id}", tag = "directory",
    params(("id" = String, Path)),
    responses((status = 200, body = Partner), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_partner(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    if caller.partner_scope().is_some_and(|own| own != id) {
        return Err(not_found("partner", &id));
    }
    Ok(Json(
        directory::find_partner(&state.pool, &id)
            .await?
            .ok_or_else(|| not_found("partner", &id))?,
    ))
}

// Customers

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    /// The reseller of record; a portal's own partner when left out.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub partner_id: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub name: String,
}

#[utoipa::path(put, path = "/v1/customers/{id}", tag = "directory",
    request_body = CustomerBody,
    params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 201, body = Customer), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body: CustomerBody = parse_json(&body)?;
    let partner_id = acting_partner(&caller, body.partner_id.as_deref())?;
    let mut checks = Checks::default();
    check_id(&mut checks, "id", &id);
    checks.check(
        body.name.chars().count() <= 200,
        "name",
        "at most 200 characters",
    );
    checks.finish()?;
    let mut tx = state.pool.begin().await?;
    if directory::find_partner(&mut *tx, &partner_id)
        .await?
        .is_none()
    {
        return Err(ApiError::field(
            "partner_id",
            format!("no partner {partner_id}"),
        ));
    }
    if let Some(existing) = directory::lock_customer(&mut tx, &id).await?
        && !owns(&caller, &existing)
    {
        return Err(not_found("customer", &id));
    }
    let customer = Customer {
        id,
        partner_id,
        name: body.name,
    };
    let created = directory::upsert_customer(&mut tx, &customer).await?;
    tx.commit().await?;
    Ok(upserted(created, &customer))
}

#[utoipa::path(get, path = "/v1/customers/{id}", tag = "directory",
    params(("id" = String, Path)),
    responses((status = 200, body = Customer), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_customer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Customer>, ApiError> {
    Ok(Json(visible_customer(&state, &caller, &id).await?))
}

// Users

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
    #[serde(default)]
    pub name: String,
}

#[utoipa::path(put, path = "/v1/users/{id}", tag = "directory",
    request_body = UserBody,
    params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 201, body = User), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let body: UserBody = parse_json(&body)?;
    let locale = body
        .locale
        .unwrap_or_else(|| state.settings.mail.default_locale.to_string());
    let mut checks = Checks::default();
    check_id(&mut checks, "id", &id);
    checks.check(
        is_plausible_email(&body.email),
        "email",
        "must be a mail address",
    );
    checks.locale("locale", Some(&locale));
    checks.finish()?;
    owned_customer(&state, &caller, &body.customer_id).await?;
    if let Some(existing) = directory::find_user(&state.pool, &id).await? {
        owned_customer(&state, &caller, &existing.customer_id)
            .await
            .map_err(|_| not_found("user", &id))?;
    }
    let user = User {
        id,
        customer_id: body.customer_id,
        email: body.email,
        locale,
        name: body.name,
        status: UserStatus::Active,
    };
    let mut tx = state.pool.begin().await?;
    let created = directory::upsert_user(&mut tx, &user).await?;
    tx.commit().await?;
    let stored = directory::find_user(&state.pool, &user.id)
        .await?
        .unwrap_or(user);
    Ok(upserted(created, &stored))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "directory",
    params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let user = directory::find_user(&state.pool, &id)
        .await?
        .ok_or_else(|| not_found("user", &id))?;
    visible_customer(&state, &caller, &user.customer_id)
        .await
        .map_err(|_| not_found("user", &id))?;
    Ok(Json(user))
}

// Subscriptions

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    /// The selling partner; a portal's own partner when left out.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub partner_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub product: String,
}

fn sells(caller: &Caller, subscription: &Subscription) -> bool {
    caller
        .partner_scope()
        .is_none_or(|own| own == subscription.partner_id)
}

#[utoipa::path(put, path = "/v1/subscriptions/{id}", tag = "directory",
    request_body = SubscriptionBody,
    params(("id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 201, body = Subscription), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let body: SubscriptionBody = parse_json(&body)?;
    let partner_id = acting_partner(&caller, body.partner_id.as_deref())?;
    let mut checks = Checks::default();
    check_id(&mut checks, "id", &id);
    checks.check(
        !body.product.trim().is_empty() && body.product.chars().count() <= 200,
        "product",
        "1 to 200 characters",
    );
    checks.finish()?;
    visible_customer(&state, &caller, &body.customer_id).await?;
    if let Some(existing) = directory::find_subscription(&state.pool, &id).await?
        && !sells(&caller, &existing)
    {
        return Err(not_found("subscription", &id));
    }
    let subscription = Subscription {
        id,
        customer_id: body.customer_id,
        partner_id,
        product: body.product,
    };
    let mut tx = state.pool.begin().await?;
    let created = directory::upsert_subscription(&mut tx, &subscription).await?;
    tx.commit().await?;
    Ok(upserted(created, &subscription))
}

#[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "directory",
    params(("id" = String, Path)),
    responses((status = 200, body = Subscription), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let subscription = directory::find_subscription(&state.pool, &id)
        .await?
        .filter(|s| sells(&caller, s))
        .ok_or_else(|| not_found("subscription", &id))?;
    Ok(Json(subscription))
}

// Role assignments

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `partner` or `user`.
    #[schema(pattern = "^(partner|user)$")]
    pub principal_type: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub principal_id: String,
    #[schema(min_length = 1, max_length = 100)]
    pub role: String,
    /// `customer` or `subscription`.
    #[schema(pattern = "^(customer|subscription)$")]
    pub scope_type: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub scope_id: String,
    /// `present` (default) or `removed`.
    #[schema(pattern = "^(present|removed)$")]
    pub status: Option<String>,
}

/// Whether the caller may write roles on the scope.
async fn scope_writable(
    state: &AppState,
    caller: &Caller,
    scope_type: &str,
    scope_id: &str,
) -> Result<bool, ApiError> {
    Ok(match scope_type {
        "customer" => owned_customer(state, caller, scope_id).await.is_ok(),
        _ => directory::find_subscription(&state.pool, scope_id)
            .await?
            .is_some_and(|s| sells(caller, &s)),
    })
}

#[utoipa::path(put, path = "/v1/role-assignments/{id}", tag = "directory",
    request_body = RoleBody,
    params(("id" = String, Path)),
    responses((status = 200, body = RoleAssignment), (status = 201, body = RoleAssignment), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let body: RoleBody = parse_json(&body)?;
    let status = body.status.unwrap_or_else(|| "present".into());
    let mut checks = Checks::default();
    check_id(&mut checks, "id", &id);
    checks.check(
        ["partner", "user"].contains(&body.principal_type.as_str()),
        "principal_type",
        "partner or user",
    );
    check_id(&mut checks, "principal_id", &body.principal_id);
    checks.check(
        // Characters, as the schema's maxLength counts them, not bytes.
        (1..=100).contains(&body.role.chars().count()),
        "role",
        "1 to 100 characters",
    );
    checks.check(
        ["customer", "subscription"].contains(&body.scope_type.as_str()),
        "scope_type",
        "customer or subscription",
    );
    check_id(&mut checks, "scope_id", &body.scope_id);
    checks.check(
        ["present", "removed"].contains(&status.as_str()),
        "status",
        "present or removed",
    );
    checks.finish()?;
    if !scope_writable(&state, &caller, &body.scope_type, &body.scope_id).await? {
        return Err(not_found(&body.scope_type, &body.scope_id));
    }
    if let Some(existing) = directory::find_role(&state.pool, &id).await?
        && !scope_writable(&state, &caller, &existing.scope_type, &existing.scope_id).await?
    {
        return Err(not_found("role assignment", &id));
    }
    let role = RoleAssignment {
        id,
        principal_type: body.principal_type,
        principal_id: body.principal_id,
        role: body.role,
        scope_type: body.scope_type,
        scope_id: body.scope_id,
        status,
    };
    let mut tx = state.pool.begin().await?;
    let created = directory::upsert_role(&mut tx, &role).await?;
    tx.commit().await?;
    Ok(upserted(created, &role))
}

#[utoipa::path(get, path = "/v1/role-assignments/{id}", tag = "directory",
    params(("id" = String, Path)),
    responses((status = 200, body = RoleAssignment), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RoleAssignment>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let role = directory::find_role(&state.pool, &id)
        .await?
        .ok_or_else(|| not_found("role assignment", &id))?;
    if !scope_writable(&state, &caller, &role.scope_type, &role.scope_id).await? {
        return Err(not_found("role assignment", &id));
    }
    Ok(Json(role))
}
