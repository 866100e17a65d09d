//! The operator's review of a sign-up application (SPEC §1.4), over HTTP:
//! `POST /v1/registrations/{id}/approval` starts the service;
//! `POST /v1/registrations/{id}/rejection` mails the reason. Both are for
//! operators only; what each does is `registrations::review`'s, which the
//! dashboard's buttons call too.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{RawBody, parse_json};
use super::idempotency;
use super::problem::ApiError;
use super::registrations::view;
use crate::registrations::review;
use crate::store::tokens::Role;

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// The new customer's reseller of record: required when the
    /// registration has no partner (an operator's own sign-up), and when
    /// given otherwise it must be the registration's.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub partner_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectionRequest {
    /// Why, in words the applicant reads in the rejection mail.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no registration {id}")))
}

#[utoipa::path(post, path = "/v1/registrations/{id}/approval", tag = "registrations",
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "unique per request")),
    request_body(content = ApprovalRequest, description = "optional: `{}` or no body when the registration has a partner"),
    responses((status = 200, body = super::registrations::RegistrationView, description = "`approved`: the service started; the customer and its contractor are in the directory; the start mail is on its way"),
              (status = 400, body = super::problem::Problem, description = "`partner_id` missing, unknown or another partner's"),
              (status = 403, body = super::problem::Problem, description = "not an operator token"),
              (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "not awaiting review (`registration-not-reviewable`)")),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let request: ApprovalRequest = if body.is_empty() {
        ApprovalRequest::default()
    } else {
        parse_json(&body)?
    };
    let uuid = parse_id(&id)?;
    let route = format!("POST /v1/registrations/{uuid}/approval");
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let partner_id = request.partner_id.as_deref();
    let approved = review::approve(
        &state.mailer,
        &state.clock,
        &mut fresh.tx,
        caller.0.id,
        uuid,
        partner_id,
    )
    .await?;
    fresh.finish(StatusCode::OK, view(&approved)).await
}

#[utoipa::path(post, path = "/v1/registrations/{id}/rejection", tag = "registrations",
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "unique per request")),
    request_body = RejectionRequest,
    responses((status = 200, body = super::registrations::RegistrationView, description = "`rejected`: the reason is mailed to the applicant"),
              (status = 400, body = super::problem::Problem, description = "`reason` missing, blank or too long"),
              (status = 403, body = super::problem::Problem, description = "not an operator token"),
              (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "not awaiting review (`registration-not-reviewable`)")),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let request: RejectionRequest = parse_json(&body)?;
    review::check_reason(&request.reason)?;
    let uuid = parse_id(&id)?;
    let route = format!("POST /v1/registrations/{uuid}/rejection");
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let rejected = review::reject(
        &state.mailer,
        &state.clock,
        &mut fresh.tx,
        caller.0.id,
        uuid,
        &request.reason,
    )
    .await?;
    fresh.finish(StatusCode::OK, view(&rejected)).await
}
