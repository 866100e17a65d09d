//! License-order intake: new orders, additions, VM-count increases, and
//! the order view. Each change is parsed and authorised here, then
//! checked and stored with its job by `licensing::changes` in the
//! request's transaction, and answered 202; the workers do the rest.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, is_identifier, is_plausible_email, parse_json};
use super::idempotency;
use super::problem::ApiError;
use crate::enqueue::new_job;
use crate::licensing::changes::{
    self, Change, ChangeError, ChangeJob, change_accepted_detail, keys,
};
use crate::licensing::orders::LicenseJob;
use crate::mail::Locale;
use crate::store::licenses::{self, NewKeys, OrderRow, PlaceOrder, RequestKind};
use crate::store::tokens::Role;
use crate::store::{self, audit};
use crate::workers::license_additional::LicenseAdditionalArgs;
use crate::workers::license_new::LicenseNewArgs;
use crate::workers::license_vm_count::LicenseVmCountArgs;

const USAGES: [&str; 3] = ["virtual", "bare_metal", "hypervisor"];

/// Field names a caller might use to ask for a start or cancellation date;
/// none can be asked for (SPEC §1.1), so they answer 400, not "unknown field".
const DATE_FIELDS: [&str; 8] = [
    "start_date",
    "starts_at",
    "start_at",
    "effective_date",
    "cancel_date",
    "cancellation_date",
    "cancel_at",
    "end_date",
];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Not only whitespace, as `str::trim` counts it (Unicode White_Space,
    /// spelled out: a pattern's `\s` lacks U+0085 and has U+FEFF).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `ja` or `en`; the default locale when absent.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    /// `virtual`, `bare_metal` or `hypervisor`.
    #[schema(pattern = "^(virtual|bare_metal|hypervisor)$")]
    pub usage: String,
    /// Number of license keys, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "super::body::whole_number::deserialize")]
    pub quantity: i32,
    /// VM count of each key; required for (and only for) hypervisor usage.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(default, deserialize_with = "super::body::whole_number::option")]
    pub vm_count: Option<i32>,
    pub contact: Contact,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdditionRequest {
    /// Number of keys to add, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "super::body::whole_number::deserialize")]
    pub quantity: i32,
    /// VM count of each new key, for hypervisor orders; defaults to the
    /// order's first key's count.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(default, deserialize_with = "super::body::whole_number::option")]
    pub vm_count: Option<i32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmCountRequest {
    /// The new VM count; must be higher than the current one.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(deserialize_with = "super::body::whole_number::deserialize")]
    pub vm_count: i32,
    /// Which hypervisor key; may be left out when the order has one.
    pub license_id: Option<Uuid>,
}

/// The answer to accepted work.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub job_id: Uuid,
    pub order_id: Uuid,
    pub request_id: Uuid,
    pub status_url: String,
    pub job_url: String,
    pub sla_deadline: DateTime<Utc>,
}

fn refuse_date_fields(body: &Bytes) -> Result<(), ApiError> {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(field) = DATE_FIELDS.iter().find(|f| fields.contains_key(**f))
    {
        {
            return Err(ApiError::BadRequest {
                slug: "date-not-allowed",
                detail: format!(
                    "{field}: no start or cancellation date can be requested; licenses start when issued and cancellations take effect at once"
                ),
            });
        }
    }
    Ok(())
}

fn check_vm_count(checks: &mut Checks, usage: &str, vm_count: Option<i32>) {
    match vm_count {
        Some(count) => {
            checks.check(
                usage == "hypervisor",
                "vm_count",
                "only hypervisor licenses carry a VM count",
            );
            checks.check(
                (1..=100_000).contains(&count),
                "vm_count",
                "must be between 1 and 100000",
            );
        }
        None => checks.check(
            usage != "hypervisor",
            "vm_count",
            "hypervisor licenses need a VM count",
        ),
    }
}

fn validate_new(order: &NewOrderRequest, default_locale: Locale) -> Result<String, ApiError> {
    let mut checks = Checks::default();
    checks.check(
        is_identifier(&order.customer_id),
        "customer_id",
        "1 to 64 letters, digits, '.', '_' or '-'",
    );
    checks.check(
        USAGES.contains(&order.usage.as_str()),
        "usage",
        "must be one of virtual, bare_metal, hypervisor",
    );
    checks.check(
        (1..=1000).contains(&order.quantity),
        "quantity",
        "must be between 1 and 1000",
    );
    check_vm_count(&mut checks, &order.usage, order.vm_count);
    let name = order.contact.name.trim();
    checks.check(
        !name.is_empty() && name.chars().count() <= 200,
        "contact.name",
        "1 to 200 characters",
    );
    checks.check(
        is_plausible_email(&order.contact.email),
        "contact.email",
        "must be a mail address",
    );
    let locale = match order.contact.locale.as_deref() {
        Some(tag) => Locale::parse(tag),
        None => Some(default_locale),
    };
    checks.check(locale.is_some(), "contact.locale", "must be ja or en");
    checks.finish()?;
    Ok(locale.unwrap_or(default_locale).as_str().to_owned())
}

pub(super) fn accepted(
    order_id: Uuid,
    request_id: Uuid,
    job_id: Uuid,
    sla_deadline: DateTime<Utc>,
) -> serde_json::Value {
    serde_json::to_value(Accepted {
        job_id,
        order_id,
        request_id,
        status_url: format!("/v1/license-orders/{order_id}"),
        job_url: format!("/v1/jobs/{job_id}"),
        sla_deadline,
    })
    .expect("serialisable")
}

/// The problem each refused change answers.
impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> ApiError {
        let detail = error.to_string();
        match error {
            ChangeError::Preparing => ApiError::Conflict {
                slug: "order-preparing",
                detail,
            },
            ChangeError::Revoked => ApiError::Conflict {
                slug: "order-revoked",
                detail,
            },
            ChangeError::InProgress => ApiError::Conflict {
                slug: "order-change-in-progress",
                detail,
            },
            ChangeError::NotHypervisor { .. } => ApiError::Unprocessable {
                slug: "not-hypervisor",
                detail,
            },
            ChangeError::UnknownLicense(_) => ApiError::Unprocessable {
                slug: "unknown-license",
                detail,
            },
            ChangeError::VmCountNotHigher { .. } => ApiError::Unprocessable {
                slug: "vm-count-not-higher",
                detail,
            },
            ChangeError::NotCancellable(errors) => ApiError::UnprocessableFields {
                slug: "license-not-cancellable",
                detail,
                errors,
            },
            ChangeError::NoIssuedKey => ApiError::Unprocessable {
                slug: "no-issued-key",
                detail,
            },
            ChangeError::Invalid(invalid) => invalid.into(),
            ChangeError::Database(error) => error.into(),
        }
    }
}

#[utoipa::path(post, path = "/v1/license-orders", tag = "license orders",
    request_body = NewOrderRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, body = Accepted), (status = 400, body = super::problem::Problem),
              (status = 401, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem, description = "no customer the partner holds or acts for")),
    security(("bearer" = [])))]
pub async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let partner_id = caller.portal_partner()?;
    refuse_date_fields(&body)?;
    let request: NewOrderRequest = parse_json(&body)?;
    let locale = validate_new(&request, state.settings.mail.default_locale)?;

    let idempotent = idempotency::Request::new(&headers, "POST /v1/license-orders", &body)?;
    let now = state.clock.now();
    let order_id = Uuid::now_v7();
    let request_id = Uuid::now_v7();
    let job_id = Uuid::now_v7();
    let deadline = changes::sla_deadline(&state.settings.license.sla, RequestKind::New, now);
    let opts = changes::job_opts(
        &state.settings,
        &partner_id,
        caller.0.id,
        order_id,
        deadline,
        now,
    );
    let job = new_job(
        &LicenseNewArgs(LicenseJob {
            order_id,
            request_id,
        }),
        &opts,
    )?;
    let response = accepted(order_id, request_id, job_id, deadline);
    let placement = state
        .orders
        .place(PlaceOrder {
            id: order_id,
            partner_id: partner_id.clone(),
            audit_details: [
                json!({ "customer_id": request.customer_id, "usage": request.usage }),
                change_accepted_detail(
                    request_id,
                    RequestKind::New,
                    Some(request.quantity),
                    None,
                    None,
                ),
            ],
            customer_id: request.customer_id.clone(),
            usage: request.usage,
            vm_count: request.vm_count,
            quantity: request.quantity,
            contact_name: request.contact.name.trim().to_owned(),
            contact_email: request.contact.email,
            contact_locale: locale,
            request_id,
            sla_deadline: deadline,
            job_id,
            job_kind: job.kind,
            job_payload: job.payload,
            max_attempts: opts.max_attempts,
            token_id: caller.0.id,
            idempotency_key: idempotent.key.clone(),
            fingerprint: idempotent.fingerprint.clone(),
            response_status: StatusCode::ACCEPTED.as_u16(),
            response_body: response.clone(),
            now,
        })
        .await
        .map_err(idempotency::twin_saved_first)?;
    idempotent.answer(placement.key)?;
    // An order names a customer the partner holds or acts for; any other
    // (unknown included) answers 404, and nothing was written.
    if !placement.customer_found {
        return Err(super::directory::not_found(
            "customer",
            &request.customer_id,
        ));
    }
    Ok((StatusCode::ACCEPTED, axum::Json(response)).into_response())
}

/// Reads the body of a change to an existing order (portal tokens only).
pub(super) fn read_change<T: serde::de::DeserializeOwned>(
    caller: &Caller,
    body: &Bytes,
) -> Result<T, ApiError> {
    caller.require(&[Role::Portal])?;
    refuse_date_fields(body)?;
    parse_json(body)
}

/// The start of every change to an existing order: the idempotency check,
/// then the order locked in the same transaction as the change.
pub(super) async fn begin_change(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    action: &str,
    body: &Bytes,
) -> Result<Box<(idempotency::Fresh, OrderRow)>, ApiError> {
    let route = format!("POST /v1/license-orders/{id}/{action}");
    let mut fresh = idempotency::begin(state, caller, headers, &route, body).await?;
    let not_found = || ApiError::NotFound(format!("no license order {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let visible = |partner_id: &str| caller.can_see(Some(partner_id));
    let order = changes::lock_changeable(&mut fresh.tx, uuid, visible)
        .await?
        .ok_or_else(not_found)?;
    Ok(Box::new((fresh, order)))
}

/// The end of every change to an existing order: accepted in the
/// request's transaction (`licensing::changes::accept`), by the job of
/// kind `J`, and answered 202 under the request's Idempotency-Key.
pub(super) async fn accept_change<J: ChangeJob>(
    state: &AppState,
    caller: &Caller,
    mut fresh: idempotency::Fresh,
    order: &OrderRow,
    change: Change,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let receipt = changes::accept::<J>(
        &mut fresh.tx,
        &state.settings,
        order,
        change,
        caller.0.id,
        now,
    )
    .await?;
    let body = accepted(
        order.id,
        receipt.request_id,
        receipt.job_id,
        receipt.sla_deadline,
    );
    fresh.finish(StatusCode::ACCEPTED, body).await
}

#[utoipa::path(post, path = "/v1/license-orders/{id}/additions", tag = "license orders",
    request_body = AdditionRequest,
    params(("id" = Uuid, Path, description = "order id"), ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, body = Accepted), (status = 409, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn add_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: AdditionRequest = read_change(&caller, &body)?;
    let mut checks = Checks::default();
    checks.check(
        (1..=1000).contains(&request.quantity),
        "quantity",
        "must be between 1 and 1000",
    );
    checks.finish()?;

    let (mut fresh, order) =
        *begin_change(&state, &caller, &headers, &id, "additions", &body).await?;
    let vm_count = keys::added_vm_count(&mut fresh.tx, &order, request.vm_count).await?;
    let change = Change {
        quantity: Some(request.quantity),
        license: None,
        license_ids: None,
        new_keys: Some(NewKeys {
            usage: order.usage.clone(),
            vm_count,
            count: request.quantity,
        }),
    };
    accept_change::<LicenseAdditionalArgs>(&state, &caller, fresh, &order, change).await
}

#[utoipa::path(post, path = "/v1/license-orders/{id}/vm-count", tag = "license orders",
    request_body = VmCountRequest,
    params(("id" = Uuid, Path, description = "order id"), ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, body = Accepted), (status = 409, body = super::problem::Problem), (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn raise_vm_count(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let request: VmCountRequest = read_change(&caller, &body)?;
    let mut checks = Checks::default();
    checks.check(
        (1..=100_000).contains(&request.vm_count),
        "vm_count",
        "must be between 1 and 100000",
    );
    checks.finish()?;

    let (mut fresh, order) =
        *begin_change(&state, &caller, &headers, &id, "vm-count", &body).await?;
    let license_id =
        keys::raised_key(&mut fresh.tx, &order, request.license_id, request.vm_count).await?;
    let change = Change {
        quantity: None,
        license: Some((license_id, request.vm_count)),
        license_ids: None,
        new_keys: None,
    };
    accept_change::<LicenseVmCountArgs>(&state, &caller, fresh, &order, change).await
}

#[utoipa::path(get, path = "/v1/license-orders/{id}", tag = "license orders",
    params(("id" = Uuid, Path, description = "order id")),
    responses((status = 200, description = "the order, its keys and its change requests"), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let not_found = || ApiError::NotFound(format!("no license order {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let mut snapshot = store::snapshot(&state.pool).await?;
    let order = licenses::find_order(&mut *snapshot, uuid)
        .await?
        .ok_or_else(not_found)?;
    if !caller.can_see(Some(&order.partner_id)) {
        return Err(not_found());
    }
    let keys = licenses::list_licenses(&mut *snapshot, uuid).await?;
    let requests = licenses::list_requests(&mut *snapshot, uuid).await?;
    let history = audit::list(&mut *snapshot, Some(uuid), None, 10_000).await?;
    snapshot.commit().await?;
    Ok(Json(json!({
        "id": order.id,
        "customer_id": order.customer_id,
        "usage": order.usage,
        "status": order.status,
        "vendor_order_id": order.vendor_order_id,
        "contact": { "name": order.contact_name, "email": order.contact_email, "locale": order.contact_locale },
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "revoked_at": order.revoked_at,
        "history": history.iter().map(|e| json!({
            "at": e.at, "action": e.action, "from": e.from_state, "to": e.to_state,
            "job_id": e.job_id, "token_id": e.token_id, "detail": e.detail,
        })).collect::<Vec<_>>(),
        "licenses": keys.iter().map(|l| json!({
            "id": l.id, "request_id": l.request_id, "status": l.status, "usage": l.usage,
            "vm_count": l.vm_count, "key": l.key, "certificate": l.certificate, "issued_at": l.issued_at,
            "revoked_at": l.revoked_at,
        })).collect::<Vec<_>>(),
        "requests": requests.iter().map(|r| json!({
            "id": r.id, "kind": r.kind, "status": r.status, "quantity": r.quantity,
            "license_id": r.license_id, "vm_count": r.vm_count, "license_ids": r.license_ids, "job_id": r.job_id,
            "accepted_at": r.accepted_at, "sla_deadline": r.sla_deadline, "completed_at": r.completed_at,
            "sla_met": r.completed_at.map(|done| done <= r.sla_deadline),
        })).collect::<Vec<_>>(),
    })))
}
