//! Changes to a running trial (SPEC §1.3, second round): `POST
//! /v1/trials/{id}/services` adds services to an active trial, with one
//! license per added service and member in the same transaction; `POST
//! /v1/trials/{id}/purchase-requests` mails the partner admin that the
//! customer wants to buy. Both are audited; access is that of the other
//! trial routes (the trial's partner and operators; anyone else 404).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, parse_json};
use super::problem::ApiError;
use super::trials::{is_service_name, lock_for_action, refuse_paid_kinds, sorted_unique, view};
use crate::store::tokens::Role;
use crate::store::trial_changes::{self, PurchaseRequest};
use crate::store::trials::TrialStatus;
use crate::store::{directory, trials};
use crate::trials::{TrialChange, audit_change, queue_purchase_request_mail};

/// A trial has at most this many services, added ones included.
const MAX_SERVICES: usize = 20;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddServices {
    /// Services to add, none of them on the trial yet, e.g. `["phone"]`.
    #[schema(schema_with = services_to_add)]
    pub services: Vec<String>,
}

/// 1 to 20 service kinds, each as the trial's services are named.
fn service_list(min_items: usize) -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    let item = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9._-]{1,64}$"));
    ArrayBuilder::new()
        .items(item)
        .min_items(Some(min_items))
        .max_items(Some(MAX_SERVICES))
        .build()
}

fn services_to_add() -> utoipa::openapi::Array {
    service_list(1)
}

fn services_to_buy() -> utoipa::openapi::Array {
    service_list(0)
}

fn check_services(checks: &mut Checks, services: &[String], required: bool) {
    checks.check(
        services.len() <= MAX_SERVICES && (!required || !services.is_empty()),
        "services",
        "1 to 20 services",
    );
    for (i, service) in services.iter().enumerate() {
        checks.check(
            is_service_name(service),
            &format!("services[{i}]"),
            "lower-case letters, digits, '.', '_' or '-', 1 to 64",
        );
    }
}

#[utoipa::path(post, path = "/v1/trials/{id}/services", tag = "trials", request_body = AddServices,
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "added: the trial with its services and licenses"),
              (status = 400, body = super::problem::Problem), (status = 404, body = super::problem::Problem),
              (status = 409, description = "the trial is not active (`trial-not-active`), already has a service (`trial-service-present`), would exceed 20 services (`trial-service-limit`), or the customer already pays for one (`service-already-paid`)",
               body = super::problem::Problem)),
    security(("bearer" = [])))]
/// Adds services to an active trial: one license per added service and
/// member, written with the addition.
pub async fn add_services(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let request: AddServices = parse_json(&body)?;
    let mut checks = Checks::default();
    check_services(&mut checks, &request.services, true);
    checks.finish()?;
    let (mut fresh, trial) =
        *lock_for_action(&state, &caller, &headers, &id, "services", &body).await?;
    if trial.status != TrialStatus::Active {
        return Err(ApiError::Conflict {
            slug: "trial-not-active",
            detail: format!(
                "services are added to active trials; this one is {}",
                trial.status
            ),
        });
    }
    let services = sorted_unique(&request.services);
    let present: Vec<&str> = services
        .iter()
        .filter(|s| trial.services.contains(s))
        .map(String::as_str)
        .collect();
    if !present.is_empty() {
        return Err(ApiError::Conflict {
            slug: "trial-service-present",
            detail: format!("the trial already has: {}", present.join(", ")),
        });
    }
    if trial.services.len() + services.len() > MAX_SERVICES {
        return Err(ApiError::Conflict {
            slug: "trial-service-limit",
            detail: format!("a trial has at most {MAX_SERVICES} services"),
        });
    }
    // Adding a kind is starting a trial of it: the same rule holds.
    refuse_paid_kinds(&mut fresh.tx, &trial.customer_id, &services).await?;
    let now = state.clock.now();
    let licenses = trial_changes::add_services(&mut fresh.tx, trial.id, &services, now).await?;
    let change = TrialChange {
        action: "trial.services_added",
        from: None,
        to: None,
        token_id: Some(caller.0.id),
        job_id: None,
        detail: json!({ "services": services, "licenses": licenses }),
    };
    audit_change(&mut fresh.tx, &trial, change, now).await?;
    let changed = trials::lock_trial(&mut fresh.tx, trial.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("trial {} vanished", trial.id)))?;
    let view = view(&state, &mut fresh.tx, &changed).await?;
    fresh.finish(StatusCode::OK, view).await
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRequestBody {
    /// What the customer wants to buy, among the trial's services; all of
    /// them when left out.
    #[serde(default)]
    #[schema(schema_with = services_to_buy)]
    pub services: Vec<String>,
    /// A message from the customer to the partner, mailed with the request.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// A purchase request as sent: mailed to the trial's partner admin.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PurchaseRequestSent {
    pub request_id: Uuid,
    pub trial_id: Uuid,
    #[schema(schema_with = services_to_add)]
    pub services: Vec<String>,
    #[schema(max_length = 1000)]
    pub note: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Always `partner_admin`: who was mailed.
    #[schema(pattern = "^partner_admin$")]
    pub mailed_to: String,
    /// `GET` it for the trial, whose `purchase_requests` lists this one.
    pub status_url: String,
}

#[utoipa::path(post, path = "/v1/trials/{id}/purchase-requests", tag = "trials",
    request_body = PurchaseRequestBody,
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 201, description = "sent: the request, mailed to the partner admin once", body = PurchaseRequestSent),
              (status = 400, body = super::problem::Problem), (status = 404, body = super::problem::Problem),
              (status = 409, description = "the trial is converted or purged (`trial-not-purchasable`)",
               body = super::problem::Problem),
              (status = 422, description = "a service is not on the trial (`unknown-reference`), or the Idempotency-Key was used with another body",
               body = super::problem::Problem)),
    security(("bearer" = [])))]
/// A purchase request from the trial, while it is active or in grace: the
/// partner admin is mailed (in the admin's locale) with the purchase link.
pub async fn request_purchase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let request: PurchaseRequestBody = if body.is_empty() {
        PurchaseRequestBody::default()
    } else {
        parse_json(&body)?
    };
    let note = request.note.as_deref().map(str::trim).unwrap_or_default();
    let mut checks = Checks::default();
    check_services(&mut checks, &request.services, false);
    checks.check(
        note.chars().count() <= 1000,
        "note",
        "at most 1000 characters",
    );
    checks.finish()?;
    let (mut fresh, trial) =
        *lock_for_action(&state, &caller, &headers, &id, "purchase-requests", &body).await?;
    if !trial.status.is_open() {
        return Err(ApiError::Conflict {
            slug: "trial-not-purchasable",
            detail: format!("a {} trial takes no purchase request", trial.status),
        });
    }
    let mut services = sorted_unique(&request.services);
    if services.is_empty() {
        services = sorted_unique(&trial.services);
    }
    if let Some(unknown) = services.iter().find(|s| !trial.services.contains(s)) {
        return Err(ApiError::Unprocessable {
            slug: "unknown-reference",
            detail: format!("{unknown} is not a service of the trial"),
        });
    }
    let now = state.clock.now();
    let purchase = PurchaseRequest {
        id: Uuid::now_v7(),
        trial_id: trial.id,
        services,
        note: (!note.is_empty()).then(|| note.to_owned()),
        created_at: now,
    };
    trial_changes::insert_purchase_request(&mut fresh.tx, &purchase, caller.0.id).await?;
    let customer_name = directory::find_customer(&mut *fresh.tx, &trial.customer_id)
        .await?
        .map(|c| c.name)
        .unwrap_or_default();
    queue_purchase_request_mail(
        &state.mailer,
        &mut fresh.tx,
        &trial,
        &purchase,
        &customer_name,
        &state.settings.trial,
    )
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    let change = TrialChange {
        action: "trial.purchase_requested",
        from: None,
        to: None,
        token_id: Some(caller.0.id),
        job_id: None,
        detail: json!({ "request_id": purchase.id, "services": purchase.services }),
    };
    audit_change(&mut fresh.tx, &trial, change, now).await?;
    let answer = PurchaseRequestSent {
        request_id: purchase.id,
        trial_id: trial.id,
        services: purchase.services,
        note: purchase.note,
        created_at: purchase.created_at,
        mailed_to: "partner_admin".to_owned(),
        status_url: format!("/v1/trials/{}", trial.id),
    };
    let answer = serde_json::to_value(answer).map_err(anyhow::Error::from)?;
    fresh.finish(StatusCode::CREATED, answer).await
}
