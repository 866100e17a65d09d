//! Trials: `POST /v1/trials` (the trial organisation is created at once),
//! `POST /v1/trials/{id}/extensions`, `POST /v1/trials/{id}/conversions`
//! and `GET /v1/trials/{id}` with its history and the notices sent. What
//! happens with time (notices, expiry, purge) is the sweeps' work; changes
//! while a trial runs (services, purchase requests) are `trial_changes`'.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, is_identifier, is_plausible_email, parse_json};
use super::idempotency::{self, Fresh};
use super::problem::{ApiError, FieldError};
use crate::store::directory::UserStatus;
use crate::store::tokens::Role;
use crate::store::trials::TrialStatus;
use crate::store::trials::{self, Admin, NewTrial, TrialRow};
use crate::store::{self, audit, customer_services, directory, trial_changes};
use crate::trials::{Timeline, TrialChange, audit_change};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    /// The partner running the trial; a portal's own partner when left out.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub partner_id: Option<String>,
    /// The services on trial, e.g. `["chat", "meetings"]`.
    #[schema(min_items = 1, max_items = 20)]
    pub services: Vec<String>,
    /// When the trial ends (RFC 3339, in the future).
    pub ends_at: DateTime<Utc>,
    pub customer_admin: Admin,
    /// The partner's admin; the partner's `admin_email` when left out.
    pub partner_admin: Option<Admin>,
    /// Directory users of the customer who are members of the trial.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub user_ids: Vec<String>,
    /// Calling numbers reserved for the trial (E.164 digits, optional `+`).
    #[serde(default)]
    pub calling_numbers: Vec<String>,
    /// The trial organisation's settings, deleted with it.
    #[serde(default)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

pub(super) fn is_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn is_calling_number(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (4..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_admin(checks: &mut Checks, field: &str, admin: &Admin) {
    checks.check(
        is_plausible_email(&admin.email),
        &format!("{field}.email"),
        "must be a mail address",
    );
    checks.locale(&format!("{field}.locale"), admin.locale.as_deref());
}

fn validate(request: &TrialRequest, now: DateTime<Utc>) -> Result<(), ApiError> {
    let mut checks = Checks::default();
    checks.check(is_identifier(&request.customer_id), "customer_id", "an id");
    if let Some(partner) = &request.partner_id {
        checks.check(is_identifier(partner), "partner_id", "an id");
    }
    checks.check(
        (1..=20).contains(&request.services.len()),
        "services",
        "1 to 20 services",
    );
    for (i, service) in request.services.iter().enumerate() {
        checks.check(
            is_service_name(service),
            &format!("services[{i}]"),
            "lower-case letters, digits, '.', '_' or '-', 1 to 64",
        );
    }
    checks.check(request.ends_at > now, "ends_at", "must be in the future");
    check_admin(&mut checks, "customer_admin", &request.customer_admin);
    if let Some(admin) = &request.partner_admin {
        check_admin(&mut checks, "partner_admin", admin);
    }
    checks.check(
        request.user_ids.len() <= 1000,
        "user_ids",
        "at most 1000 users",
    );
    for (i, id) in request.user_ids.iter().enumerate() {
        checks.check(is_identifier(id), &format!("user_ids[{i}]"), "an id");
    }
    checks.check(
        request.calling_numbers.len() <= 100,
        "calling_numbers",
        "at most 100 numbers",
    );
    for (i, number) in request.calling_numbers.iter().enumerate() {
        checks.check(
            is_calling_number(number),
            &format!("calling_numbers[{i}]"),
            "4 to 15 digits, optionally after '+'",
        );
    }
    Ok(checks.finish()?)
}

pub(super) fn sorted_unique(values: &[String]) -> Vec<String> {
    let mut values = values.to_vec();
    values.sort();
    values.dedup();
    values
}

#[utoipa::path(post, path = "/v1/trials", tag = "trials", request_body = TrialRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 201, description = "the trial, active"), (status = 400, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let request: TrialRequest = parse_json(&body)?;
    let now = state.clock.now();
    validate(&request, now)?;
    let mut fresh = idempotency::begin(&state, &caller, &headers, "POST /v1/trials", &body).await?;
    let customer =
        super::directory::customer_acted_for(&mut fresh.tx, &caller, &request.customer_id).await?;
    let partner_id = match (caller.partner_scope(), &request.partner_id) {
        (Some(own), Some(named)) if named != own => {
            return Err(ApiError::Forbidden(
                "a portal runs trials for its own partner only".into(),
            ));
        }
        (Some(own), _) => own.to_owned(),
        (None, Some(named)) => named.clone(),
        (None, None) => customer.partner_id.clone(),
    };
    let partner = directory::find_partner(&mut *fresh.tx, &partner_id)
        .await?
        .ok_or_else(|| ApiError::Unprocessable {
            slug: "unknown-reference",
            detail: format!("unknown: partner {partner_id}"),
        })?;
    let partner_admin = match (&request.partner_admin, &partner.admin_email) {
        (Some(admin), _) => admin.clone(),
        (None, Some(email)) => Admin {
            email: email.clone(),
            locale: Some(partner.locale.clone()),
        },
        (None, None) => {
            return Err(ApiError::field(
                "partner_admin",
                "the partner has no admin_email on record; name the partner admin",
            ));
        }
    };
    let user_ids = sorted_unique(&request.user_ids);
    let members = directory::users_of_customer(&mut *fresh.tx, &customer.id, &user_ids).await?;
    let not_members: Vec<FieldError> = request
        .user_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| {
            !members
                .iter()
                .any(|u| &u.id == *id && u.status == UserStatus::Active)
        })
        .map(|(i, id)| FieldError {
            field: format!("user_ids[{i}]"),
            message: format!("{id} is not an active user of customer {}", customer.id),
        })
        .collect();
    if !not_members.is_empty() {
        return Err(ApiError::UnprocessableFields {
            slug: "unknown-reference",
            detail: "some users are not active users of the customer".into(),
            errors: not_members,
        });
    }
    let numbers = sorted_unique(&request.calling_numbers);
    let taken = trials::numbers_in_use(&mut *fresh.tx, &numbers).await?;
    if !taken.is_empty() {
        return Err(number_taken(&taken));
    }
    let services = sorted_unique(&request.services);
    refuse_paid_kinds(&mut fresh.tx, &customer.id, &services).await?;
    let trial_id = Uuid::now_v7();
    let settings = serde_json::Value::Object(request.settings.clone().unwrap_or_default());
    let new = NewTrial {
        id: trial_id,
        customer_id: &customer.id,
        partner_id: &partner_id,
        services: &services,
        ends_at: request.ends_at,
        customer_admin: &request.customer_admin,
        partner_admin: &partner_admin,
        user_ids: &user_ids,
        numbers: &numbers,
        settings: &settings,
        token_id: Some(caller.0.id),
        now,
    };
    let trial = trials::insert_trial(&mut fresh.tx, &new)
        .await
        .map_err(|e| match &e {
            // Another trial reserved one of the numbers since the check.
            sqlx::Error::Database(db) if db.constraint() == Some("trial_numbers_in_use") => {
                number_taken(&numbers)
            }
            _ => e.into(),
        })?;
    let change = TrialChange {
        action: "trial.status",
        from: None,
        to: Some("active"),
        token_id: Some(caller.0.id),
        job_id: None,
        detail: json!({ "ends_at": trial.ends_at, "services": services,
                        "users": user_ids.len(), "numbers": numbers }),
    };
    audit_change(&mut fresh.tx, &trial, change, now).await?;
    let view = view(&state, &mut fresh.tx, &trial).await?;
    fresh.finish(StatusCode::CREATED, view).await
}

/// A customer that already pays for a kind (a converted trial or a direct
/// sale) cannot trial it again: 409 naming the kinds. Takes the customer's
/// lock first, so a sale committing meanwhile is seen.
pub(super) async fn refuse_paid_kinds(
    tx: &mut store::Tx<'_>,
    customer_id: &str,
    services: &[String],
) -> Result<(), ApiError> {
    customer_services::lock_customer(tx, customer_id).await?;
    let paid = customer_services::paid_kinds(&mut **tx, customer_id, services).await?;
    if paid.is_empty() {
        return Ok(());
    }
    Err(ApiError::Conflict {
        slug: "service-already-paid",
        detail: format!(
            "customer {customer_id} already has a paid service of: {}",
            paid.join(", ")
        ),
    })
}

fn number_taken(numbers: &[String]) -> ApiError {
    ApiError::Conflict {
        slug: "number-reserved",
        detail: format!(
            "calling numbers already reserved by another trial: {}",
            numbers.join(", ")
        ),
    }
}

pub(super) fn may_see(caller: &Caller, trial: &TrialRow) -> bool {
    caller.can_see(Some(&trial.partner_id))
}

/// The trial as the API shows it. Actions read it inside their own
/// transaction, so the saved idempotent response is what was committed.
pub(super) async fn view(
    state: &AppState,
    conn: &mut sqlx::PgConnection,
    trial: &TrialRow,
) -> Result<serde_json::Value, ApiError> {
    let timeline = Timeline::from_settings(&state.settings.trial);
    let members = trials::members(&mut *conn, trial.id).await?;
    let numbers = trials::numbers(&mut *conn, trial.id).await?;
    let notices = trials::notices(&mut *conn, trial.id).await?;
    let holdings = trials::holdings(&mut *conn, trial.id).await?;
    let history = audit::list(&mut *conn, Some(trial.id), None, 1000).await?;
    let purchase_requests = trial_changes::purchase_requests(&mut *conn, trial.id).await?;
    let open = trial.status.is_open();
    Ok(json!({
        "id": trial.id,
        "status": trial.status,
        "customer_id": trial.customer_id,
        "partner_id": trial.partner_id,
        "services": trial.services,
        "ends_at": trial.ends_at,
        "grace_ends_at": trial.grace_ends_at,
        "purge_due_at": open.then(|| timeline.grace_ends(trial.ends_at)),
        "extensions": trial.extensions,
        "extensions_left": (timeline.max_extensions - trial.extensions).max(0),
        "customer_admin": trial.customer_admin.0,
        "partner_admin": trial.partner_admin.0,
        "users": members.iter().map(|u| json!({ "id": u.id, "status": u.status })).collect::<Vec<_>>(),
        "calling_numbers": numbers,
        "organisation": holdings,
        "notices": notices,
        "purchase_requests": purchase_requests,
        "created_at": trial.created_at,
        "converted_at": trial.converted_at,
        "purged_at": trial.purged_at,
        "status_url": format!("/v1/trials/{}", trial.id),
        "history": history.iter().map(|e| json!({
            "at": e.at, "action": e.action, "from": e.from_state, "to": e.to_state,
            "token_id": e.token_id, "job_id": e.job_id, "detail": e.detail,
        })).collect::<Vec<_>>(),
    }))
}

#[utoipa::path(get, path = "/v1/trials/{id}", tag = "trials", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the trial, its organisation, notices and history"), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let not_found = || ApiError::NotFound(format!("no trial {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let mut snapshot = store::snapshot(&state.pool).await?;
    let trial = trials::find_trial(&mut *snapshot, uuid)
        .await?
        .filter(|t| may_see(&caller, t))
        .ok_or_else(not_found)?;
    let view = view(&state, &mut snapshot, &trial).await?;
    snapshot.commit().await?;
    Ok(Json(view))
}

/// Extensions and conversions take no fields; an empty body is fine.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrialAction {}

/// The start of an action on a trial: the body (empty or `{}`), the
/// idempotency check, then the trial locked in the action's transaction.
async fn begin_action(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    action: &str,
    body: &axum::body::Bytes,
) -> Result<Box<(Fresh, TrialRow)>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    if !body.is_empty() {
        parse_json::<TrialAction>(body)?;
    }
    lock_for_action(state, caller, headers, id, action, body).await
}

/// The idempotency check, then the trial locked in the action's
/// transaction; a trial the caller may not see answers 404 like an
/// unknown one. The caller checked the role and parsed the body.
pub(super) async fn lock_for_action(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    action: &str,
    body: &axum::body::Bytes,
) -> Result<Box<(Fresh, TrialRow)>, ApiError> {
    let route = format!("POST /v1/trials/{id}/{action}");
    let mut fresh = idempotency::begin(state, caller, headers, &route, body).await?;
    let not_found = || ApiError::NotFound(format!("no trial {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let trial = trials::lock_trial(&mut fresh.tx, uuid)
        .await?
        .filter(|t| may_see(caller, t))
        .ok_or_else(not_found)?;
    Ok(Box::new((fresh, trial)))
}

#[utoipa::path(post, path = "/v1/trials/{id}/extensions", tag = "trials", params(("id" = Uuid, Path),
        ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "extended: the trial with its new end"), (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
/// One more step (`trial.extension_step`) past the later of now and the
/// current end, while active or in grace; in grace it reactivates.
pub async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (mut fresh, trial) =
        *begin_action(&state, &caller, &headers, &id, "extensions", &body).await?;
    let now = state.clock.now();
    let timeline = Timeline::from_settings(&state.settings.trial);
    if !trial.status.is_open() {
        return Err(ApiError::Conflict {
            slug: "trial-not-extendable",
            detail: format!("a {} trial cannot be extended", trial.status),
        });
    }
    if timeline.purge_due(trial.status, trial.ends_at, now) {
        return Err(ApiError::Conflict {
            slug: "trial-grace-over",
            detail: format!(
                "the grace period ended at {}; the trial can only be converted until it is purged",
                timeline.grace_ends(trial.ends_at)
            ),
        });
    }
    if trial.extensions >= timeline.max_extensions {
        return Err(ApiError::Conflict {
            slug: "trial-extension-limit",
            detail: format!(
                "the trial was extended {} times, the most allowed (trial.max_extensions)",
                trial.extensions
            ),
        });
    }
    let ends_at = timeline.extended_end(trial.ends_at, now);
    let extended = trials::extend(&mut fresh.tx, trial.id, ends_at, now).await?;
    let change = TrialChange {
        action: "trial.extended",
        from: Some(trial.status.as_str()),
        to: Some("active"),
        token_id: Some(caller.0.id),
        job_id: None,
        detail: json!({ "from_ends_at": trial.ends_at, "ends_at": ends_at,
                        "extensions": extended.extensions }),
    };
    audit_change(&mut fresh.tx, &trial, change, now).await?;
    let view = view(&state, &mut fresh.tx, &extended).await?;
    fresh.finish(StatusCode::OK, view).await
}

#[utoipa::path(post, path = "/v1/trials/{id}/conversions", tag = "trials", params(("id" = Uuid, Path),
        ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "converted: never purged"), (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
/// Converts the trial to a paid contract, until the moment it is purged.
pub async fn convert(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let (mut fresh, trial) =
        *begin_action(&state, &caller, &headers, &id, "conversions", &body).await?;
    if !trial.status.is_open() {
        return Err(ApiError::Conflict {
            slug: "trial-not-convertible",
            detail: format!("a {} trial cannot be converted", trial.status),
        });
    }
    let now = state.clock.now();
    trials::set_status(&mut fresh.tx, trial.id, TrialStatus::Converted, None, now).await?;
    // What the customer now pays for: no new trial of these kinds.
    customer_services::lock_customer(&mut fresh.tx, &trial.customer_id).await?;
    let paid = customer_services::record(
        &mut fresh.tx,
        &trial.customer_id,
        &trial.services,
        Some(trial.id),
        Some(caller.0.id),
        now,
    )
    .await?;
    let change = TrialChange {
        action: "trial.status",
        from: Some(trial.status.as_str()),
        to: Some("converted"),
        token_id: Some(caller.0.id),
        job_id: None,
        detail: json!({ "paid_services": paid.iter().map(|p| &p.kind).collect::<Vec<_>>() }),
    };
    audit_change(&mut fresh.tx, &trial, change, now).await?;
    let converted = trials::lock_trial(&mut fresh.tx, trial.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("trial {} vanished", trial.id)))?;
    let view = view(&state, &mut fresh.tx, &converted).await?;
    fresh.finish(StatusCode::OK, view).await
}
