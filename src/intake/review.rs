//! The operator's review of a sign-up application (SPEC §1.4):
//! `POST /v1/registrations/{id}/approval` starts the service (the customer
//! and its contractor go into the directory, the start mail goes out);
//! `POST /v1/registrations/{id}/rejection` mails the reason. Both are for
//! operators only, and the dashboard's buttons do the same through
//! [`approve_as`] and [`reject_as`], audited with the operator's token.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{RawBody, is_identifier, parse_json};
use super::idempotency;
use super::problem::ApiError;
use super::registrations::{Addressee, audit_registration, queue, view};
use crate::mail::contexts::{RegistrationRejected, ServiceStarted};
use crate::registrations::application::Application;
use crate::store::directory::UserStatus;
use crate::store::registrations::RegistrationStatus;
use crate::store::registrations::{self, Approval, RegistrationRow};
use crate::store::tokens::{Role, TokenIdentity};
use crate::store::{Tx, directory};

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

const REASON_MAX: usize = 1000;

fn check_reason(reason: &str) -> Result<(), ApiError> {
    let length = reason.trim().chars().count();
    if length == 0 || length > REASON_MAX {
        return Err(ApiError::field("reason", "must be 1 to 1000 characters"));
    }
    Ok(())
}

/// The registration, locked, if it awaits review; its application is
/// `None` only for a first-round completion, which can be rejected but
/// not approved.
async fn applied(
    tx: &mut Tx<'_>,
    id: Uuid,
) -> Result<(RegistrationRow, Option<Application>), ApiError> {
    let registration = registrations::lock(tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no registration {id}")))?;
    if registration.status != RegistrationStatus::Applied {
        return Err(not_reviewable(format!(
            "a {} registration cannot be reviewed; only an applied one can",
            registration.status
        )));
    }
    let application = registration
        .application
        .clone()
        .and_then(|a| serde_json::from_value::<Application>(a).ok());
    Ok((registration, application))
}

fn not_reviewable(detail: String) -> ApiError {
    ApiError::Conflict {
        slug: "registration-not-reviewable",
        detail,
    }
}

/// The reseller of record for the approved customer.
async fn partner_for(
    tx: &mut Tx<'_>,
    registration: &RegistrationRow,
    request: &ApprovalRequest,
) -> Result<String, ApiError> {
    match (
        registration.partner_id.as_deref(),
        request.partner_id.as_deref(),
    ) {
        (Some(own), None) => Ok(own.to_owned()),
        (Some(own), Some(named)) if own == named => Ok(own.to_owned()),
        (Some(own), Some(_)) => Err(ApiError::field(
            "partner_id",
            format!("must be absent or {own}: the registration belongs to that partner"),
        )),
        (None, None) => Err(ApiError::field(
            "partner_id",
            "is required: this registration has no partner to be the customer's reseller",
        )),
        (None, Some(named)) => {
            let known =
                is_identifier(named) && directory::find_partner(&mut **tx, named).await?.is_some();
            if known {
                Ok(named.to_owned())
            } else {
                Err(ApiError::field("partner_id", "is not a known partner"))
            }
        }
    }
}

/// Approves an applied registration in `tx`: the customer (named for the
/// registration, so approval creates it once) with its first user, the
/// contact person under the registration's address, holding the role
/// `contractor`. An address that is already a user keeps that user: it
/// gets the role, and no second user is made. Then the start mail.
pub async fn approve_as(
    state: &AppState,
    tx: &mut Tx<'_>,
    operator: &TokenIdentity,
    id: Uuid,
    request: &ApprovalRequest,
) -> Result<RegistrationRow, ApiError> {
    let (registration, application) = applied(tx, id).await?;
    let application = application.ok_or_else(|| {
        not_reviewable(
            "this registration was completed without an application; reject it and ask for a new sign-up"
                .into(),
        )
    })?;
    let partner_id = partner_for(tx, &registration, request).await?;
    let now = state.clock.now();
    let customer_id = format!("reg-{id}");
    let customer = directory::Customer {
        id: customer_id.clone(),
        partner_id: partner_id.clone(),
        name: application.organisation.name.clone(),
    };
    directory::upsert_customer(tx, &customer).await?;
    let existing = directory::user_by_email(&mut **tx, &registration.email).await?;
    let user_created = existing.is_none();
    let user_id = match existing {
        Some(user) => user.id,
        None => {
            let user = directory::User {
                id: customer_id.clone(),
                customer_id: customer_id.clone(),
                email: registration.email.clone(),
                locale: registration.locale.clone(),
                name: application.contact.name.clone(),
                status: UserStatus::Active,
            };
            directory::upsert_user(tx, &user).await?;
            user.id
        }
    };
    let role = directory::RoleAssignment {
        id: format!("{customer_id}-contractor"),
        principal_type: "user".into(),
        principal_id: user_id.clone(),
        role: "contractor".into(),
        scope_type: "customer".into(),
        scope_id: customer_id.clone(),
        status: "present".into(),
    };
    directory::upsert_role(tx, &role).await?;
    let approval = Approval {
        customer_id: &customer_id,
        user_id: &user_id,
        reviewed_by: operator.id,
        now,
    };
    registrations::approve(tx, id, &approval).await?;
    let detail = json!({ "partner_id": partner_id, "customer_id": customer_id,
                         "user_id": user_id, "user_created": user_created });
    let states = (Some("applied"), Some("approved"));
    audit_registration(tx, &registration, states, Some(operator.id), detail, now).await?;
    let context = ServiceStarted {
        email: &registration.email,
        services: &application.service_names(),
    };
    let to = Addressee::from(&registration);
    queue(state, tx, to, &context, now).await?;
    reread(tx, id).await
}

/// Rejects an applied registration in `tx` and mails the reason.
pub async fn reject_as(
    state: &AppState,
    tx: &mut Tx<'_>,
    operator: &TokenIdentity,
    id: Uuid,
    reason: &str,
) -> Result<RegistrationRow, ApiError> {
    check_reason(reason)?;
    let reason = reason.trim();
    let (registration, _) = applied(tx, id).await?;
    let now = state.clock.now();
    registrations::reject(tx, id, reason, operator.id, now).await?;
    let states = (Some("applied"), Some("rejected"));
    let detail = json!({ "reason": reason });
    audit_registration(tx, &registration, states, Some(operator.id), detail, now).await?;
    let context = RegistrationRejected {
        email: &registration.email,
        reason,
    };
    let to = Addressee::from(&registration);
    queue(state, tx, to, &context, now).await?;
    reread(tx, id).await
}

async fn reread(tx: &mut Tx<'_>, id: Uuid) -> Result<RegistrationRow, ApiError> {
    registrations::lock(tx, id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("registration vanished")))
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
    let approved = approve_as(&state, &mut fresh.tx, &caller.0, uuid, &request).await?;
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
    check_reason(&request.reason)?;
    let uuid = parse_id(&id)?;
    let route = format!("POST /v1/registrations/{uuid}/rejection");
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let rejected = reject_as(&state, &mut fresh.tx, &caller.0, uuid, &request.reason).await?;
    fresh.finish(StatusCode::OK, view(&rejected)).await
}
