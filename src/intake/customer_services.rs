//! A customer's paid services in the directory: `PUT
//! /v1/customers/{id}/services/{service}` records a direct sale (the
//! customer's partner of record or an operator; idempotent, 201 then 200),
//! `GET /v1/customers/{id}/services` lists them with those a converted
//! trial recorded. A kind listed here cannot be trialled again (409).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, parse_json};
use super::directory::{customer_acted_for, owns};
use super::problem::ApiError;
use super::trials::is_service_name;
use crate::store::audit;
use crate::store::customer_services::{self, CustomerService};
use crate::store::tokens::Role;

/// A direct sale takes no fields; an empty body is fine.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectSale {}

#[utoipa::path(put, path = "/v1/customers/{id}/services/{service}", tag = "directory",
    request_body(content = Option<DirectSale>, description = "empty, or `{}`"),
    params(("id" = String, Path), ("service" = String, Path, description = "the service kind, e.g. `chat`")),
    responses((status = 201, description = "recorded as a direct sale", body = CustomerService),
              (status = 200, description = "already a paid service (the first record is kept)", body = CustomerService),
              (status = 400, body = super::problem::Problem),
              (status = 403, description = "a reseller relationship lets a partner see the customer, not record its sales", body = super::problem::Problem),
              (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn put_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((customer_id, service)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    // No body, JSON null (what the optional body allows) or `{}`.
    if !body.is_empty() && body.trim_ascii() != b"null" {
        parse_json::<DirectSale>(&body)?;
    }
    let mut checks = Checks::default();
    checks.check(
        is_service_name(&service),
        "service",
        "lower-case letters, digits, '.', '_' or '-', 1 to 64",
    );
    checks.finish()?;
    let mut tx = state.pool.begin().await?;
    let customer = customer_acted_for(&mut tx, &caller, &customer_id).await?;
    if !owns(&caller, &customer) {
        return Err(ApiError::Forbidden(
            "only the customer's partner of record or an operator records a direct sale".into(),
        ));
    }
    // The lock trials take before they check: a trial of this kind
    // starting now waits for this sale and then refuses.
    customer_services::lock_customer(&mut tx, &customer.id).await?;
    let now = state.clock.now();
    let kinds = [service.clone()];
    let created =
        customer_services::record(&mut tx, &customer.id, &kinds, None, Some(caller.0.id), now)
            .await?;
    let (status, row) = match created.into_iter().next() {
        Some(row) => {
            let event = audit::AuditEvent {
                at: now,
                entity_type: "customer_service",
                entity_id: row.id,
                action: "customer_service.recorded",
                from_state: None,
                to_state: Some("direct"),
                token_id: Some(caller.0.id),
                job_id: None,
                detail: json!({ "customer_id": customer.id, "kind": row.kind }),
            };
            audit::record(&mut tx, event).await?;
            (StatusCode::CREATED, row)
        }
        None => {
            let held = customer_services::list(&mut *tx, &customer.id).await?;
            let row = held
                .into_iter()
                .find(|s| s.kind == service)
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("paid service vanished")))?;
            (StatusCode::OK, row)
        }
    };
    tx.commit().await?;
    Ok((status, Json(row)).into_response())
}

/// A customer's paid services, by kind.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CustomerServices {
    pub customer_id: String,
    pub services: Vec<CustomerService>,
}

#[utoipa::path(get, path = "/v1/customers/{id}/services", tag = "directory",
    params(("id" = String, Path)),
    responses((status = 200, description = "the customer's paid services, converted and direct", body = CustomerServices),
              (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list_services(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<String>,
) -> Result<Json<CustomerServices>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let mut conn = state.pool.acquire().await?;
    let customer = customer_acted_for(&mut conn, &caller, &customer_id).await?;
    let services = customer_services::list(&mut *conn, &customer.id).await?;
    Ok(Json(CustomerServices {
        customer_id: customer.id,
        services,
    }))
}
