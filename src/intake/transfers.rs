//! Transfer tickets: `POST /v1/transfers` (an operator enters a complete
//! paper form; portals use `transfer_forms`), `GET /v1/transfers/{id}`, `POST /v1/transfers/{id}/cancellation`
//! (the destination, while `submitted`), and `POST /v1/role-cleanups` (a
//! role cleanup on its own).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, is_identifier, is_plausible_email, parse_json};
use super::idempotency;
use super::problem::ApiError;
use crate::enqueue::{Opts, enqueue};
use crate::store::tokens::Role;
use crate::store::transfers::TransferStatus;
use crate::store::transfers::{self, NewTransfer, TransferRow};
use crate::store::{self, audit, directory};
use crate::transfers::{Contact, Form, TransferMail, audit_transition, queue_mails};
use crate::workers::role_cleanup::RoleCleanupArgs;
use crate::workers::transfer_process::TransferProcessArgs;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub source_partner_id: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub destination_partner_id: String,
    #[schema(min_items = 1, max_items = 100)]
    pub subscription_ids: Vec<String>,
    pub customer_contact: Contact,
    pub source_contact: Contact,
    pub destination_contact: Contact,
}

/// The subscriptions a ticket or form moves: 1 to 100 ids.
pub(super) fn check_subscriptions(checks: &mut Checks, ids: &[String]) {
    checks.check(
        (1..=100).contains(&ids.len()),
        "subscription_ids",
        "1 to 100 subscriptions",
    );
    for (i, id) in ids.iter().enumerate() {
        checks.check(
            is_identifier(id),
            &format!("subscription_ids[{i}]"),
            "an id",
        );
    }
}

pub(super) fn check_contact(checks: &mut Checks, field: &str, contact: &Contact) {
    let name = contact.name.trim();
    checks.check(
        !name.is_empty() && name.chars().count() <= 200,
        &format!("{field}.name"),
        "1 to 200 characters",
    );
    checks.check(
        is_plausible_email(&contact.email),
        &format!("{field}.email"),
        "must be a mail address",
    );
    checks.locale(&format!("{field}.locale"), contact.locale.as_deref());
}

fn validate(request: &TransferRequest, destination: &str) -> Result<(), ApiError> {
    let mut checks = Checks::default();
    checks.check(is_identifier(&request.customer_id), "customer_id", "an id");
    checks.check(
        is_identifier(&request.source_partner_id),
        "source_partner_id",
        "an id",
    );
    checks.check(
        is_identifier(destination),
        "destination_partner_id",
        "an id",
    );
    checks.check(
        request.source_partner_id != destination,
        "source_partner_id",
        "must differ from the destination partner",
    );
    check_subscriptions(&mut checks, &request.subscription_ids);
    check_contact(&mut checks, "customer_contact", &request.customer_contact);
    check_contact(&mut checks, "source_contact", &request.source_contact);
    check_contact(
        &mut checks,
        "destination_contact",
        &request.destination_contact,
    );
    Ok(checks.finish()?)
}

#[utoipa::path(post, path = "/v1/transfers", tag = "transfers", request_body = TransferRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, description = "accepted: transfer_id, job_id, status_url"), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem, description = "operators only: portals fill in a transfer form (POST /v1/transfer-forms)"),
              (status = 422, body = super::problem::Problem, description = "an unknown customer, partner or subscription")),
    security(("bearer" = [])))]
/// The one-shot ticket: an operator enters a paper form already complete.
/// Portals go through the three-party form (`POST /v1/transfer-forms`), so
/// that the customer fills in its own part.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let request: TransferRequest = parse_json(&body)?;
    let destination = request.destination_partner_id.clone();
    validate(&request, &destination)?;

    let mut fresh =
        idempotency::begin(&state, &caller, &headers, "POST /v1/transfers", &body).await?;
    // Unknown names are refused now; ownership is the worker's precondition
    // check, whose rejection is mailed to everyone.
    let mut unknown = Vec::new();
    if directory::find_customer(&mut *fresh.tx, &request.customer_id)
        .await?
        .is_none()
    {
        unknown.push(format!("customer {}", request.customer_id));
    }
    for partner in [&request.source_partner_id, &destination] {
        if directory::find_partner(&mut *fresh.tx, partner)
            .await?
            .is_none()
        {
            unknown.push(format!("partner {partner}"));
        }
    }
    for id in directory::missing_subscriptions(&mut *fresh.tx, &request.subscription_ids).await? {
        unknown.push(format!("subscription {id}"));
    }
    if !unknown.is_empty() {
        return Err(ApiError::Unprocessable {
            slug: "unknown-reference",
            detail: format!("unknown: {}", unknown.join(", ")),
        });
    }

    let ticket = Ticket {
        customer_id: &request.customer_id,
        source_partner_id: &request.source_partner_id,
        destination_partner_id: &destination,
        subscription_ids: request.subscription_ids.clone(),
        form: Form {
            customer_contact: request.customer_contact,
            source_contact: request.source_contact,
            destination_contact: request.destination_contact,
        },
        form_id: None,
    };
    let opened = open_ticket(&state, &mut fresh.tx, &caller, ticket).await?;
    fresh.finish(StatusCode::ACCEPTED, opened.body()).await
}

/// What a ticket is made of, however it was filled in: an operator's
/// one-shot request or a three-party form's submission.
pub(super) struct Ticket<'a> {
    pub customer_id: &'a str,
    pub source_partner_id: &'a str,
    pub destination_partner_id: &'a str,
    pub subscription_ids: Vec<String>,
    pub form: Form,
    /// The transfer form it was submitted from, if any.
    pub form_id: Option<Uuid>,
}

/// A ticket just created and its job.
pub(super) struct Opened {
    pub transfer_id: Uuid,
    pub job_id: Uuid,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl Opened {
    pub(super) fn body(&self) -> serde_json::Value {
        json!({
            "transfer_id": self.transfer_id,
            "job_id": self.job_id,
            "status": "submitted",
            "status_url": format!("/v1/transfers/{}", self.transfer_id),
            "job_url": format!("/v1/jobs/{}", self.job_id),
            "expires_at": self.expires_at,
        })
    }
}

/// Creates a `submitted` ticket in `tx`: the row, its audit, the
/// `transfer.process` job and the submission mails to the three contacts.
pub(super) async fn open_ticket(
    state: &AppState,
    tx: &mut store::Tx<'_>,
    caller: &Caller,
    ticket: Ticket<'_>,
) -> Result<Opened, ApiError> {
    let now = state.clock.now();
    let transfer_id = Uuid::now_v7();
    let expire_after = chrono::Duration::from_std(state.settings.transfers.expire_after)
        .unwrap_or(chrono::Duration::MAX);
    let mut subscription_ids = ticket.subscription_ids;
    subscription_ids.sort();
    subscription_ids.dedup();
    let new = NewTransfer {
        id: transfer_id,
        customer_id: ticket.customer_id,
        source_partner_id: ticket.source_partner_id,
        destination_partner_id: ticket.destination_partner_id,
        subscription_ids: &subscription_ids,
        form: serde_json::to_value(&ticket.form).expect("serialisable"),
        token_id: Some(caller.0.id),
        now,
        expires_at: now + expire_after,
    };
    let transfer = transfers::insert_transfer(tx, &new).await?;
    let mut detail = json!({ "subscription_ids": subscription_ids });
    if let Some(form_id) = ticket.form_id {
        detail["form_id"] = json!(form_id);
    }
    audit_transition(
        tx,
        &transfer,
        (None, TransferStatus::Submitted),
        None,
        detail,
        now,
    )
    .await?;
    let opts = Opts {
        partner_id: Some(ticket.destination_partner_id),
        token_id: Some(caller.0.id),
        resource_type: "transfer",
        resource_id: transfer_id,
        sla_deadline: None,
        max_attempts: state.settings.jobs.max_attempts,
        now,
    };
    let job_id = enqueue(tx, &TransferProcessArgs { transfer_id }, opts).await?;
    queue_mails(
        &state.mailer,
        tx,
        &transfer,
        &subscription_ids,
        TransferMail::Submitted,
        now,
    )
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    Ok(Opened {
        transfer_id,
        job_id,
        expires_at: new.expires_at,
    })
}

fn may_see(caller: &Caller, transfer: &TransferRow) -> bool {
    match caller.partner_scope() {
        None => caller.0.role == Role::Operator,
        Some(own) => own == transfer.destination_partner_id || own == transfer.source_partner_id,
    }
}

#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the ticket, its subscriptions and history"), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let not_found = || ApiError::NotFound(format!("no transfer {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let mut snapshot = store::snapshot(&state.pool).await?;
    let transfer = transfers::find_transfer(&mut *snapshot, uuid)
        .await?
        .filter(|t| may_see(&caller, t))
        .ok_or_else(not_found)?;
    let subscription_ids = transfers::subscription_ids(&mut *snapshot, uuid).await?;
    let history = audit::list(&mut *snapshot, Some(uuid), None, 1000).await?;
    snapshot.commit().await?;
    Ok(Json(json!({
        "id": transfer.id,
        "status": transfer.status,
        "reason": transfer.reason,
        "customer_id": transfer.customer_id,
        "source_partner_id": transfer.source_partner_id,
        "destination_partner_id": transfer.destination_partner_id,
        "subscription_ids": subscription_ids,
        "form": transfer.form,
        "created_at": transfer.created_at,
        "updated_at": transfer.updated_at,
        "expires_at": transfer.expires_at,
        "completed_at": transfer.completed_at,
        "history": history.iter().map(|e| json!({
            "at": e.at, "from": e.from_state, "to": e.to_state, "job_id": e.job_id, "detail": e.detail,
        })).collect::<Vec<_>>(),
    })))
}

/// The start of an action on a ticket: the idempotency check, then the
/// ticket (one the caller may see) locked in the action's transaction.
/// `Err` carries a replayed response.
async fn begin_action(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    action: &str,
    body: &[u8],
) -> Result<Box<(idempotency::Fresh, TransferRow)>, ApiError> {
    let route = format!("POST /v1/transfers/{id}/{action}");
    let mut fresh = idempotency::begin(state, caller, headers, &route, body).await?;
    let not_found = || ApiError::NotFound(format!("no transfer {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let transfer = transfers::lock_transfer(&mut fresh.tx, uuid)
        .await?
        .filter(|t| may_see(caller, t))
        .ok_or_else(not_found)?;
    Ok(Box::new((fresh, transfer)))
}

#[utoipa::path(post, path = "/v1/transfers/{id}/cancellation", tag = "transfers", params(("id" = Uuid, Path)),
    responses((status = 200, description = "cancelled"), (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal])?;
    let (mut fresh, transfer) =
        *begin_action(&state, &caller, &headers, &id, "cancellation", &body).await?;
    let uuid = transfer.id;
    if caller.partner_scope() != Some(transfer.destination_partner_id.as_str()) {
        return Err(ApiError::Forbidden(
            "only the destination partner may cancel a transfer".into(),
        ));
    }
    if transfer.status != TransferStatus::Submitted {
        return Err(ApiError::Conflict {
            slug: "transfer-not-submitted",
            detail: format!(
                "only a submitted transfer can be cancelled; this one is {}",
                transfer.status
            ),
        });
    }
    let now = state.clock.now();
    transfers::set_status(&mut fresh.tx, uuid, TransferStatus::Cancelled, None, now).await?;
    let mut actor = transfer.clone();
    actor.token_id = Some(caller.0.id);
    audit_transition(
        &mut fresh.tx,
        &actor,
        (Some(TransferStatus::Submitted), TransferStatus::Cancelled),
        None,
        json!({}),
        now,
    )
    .await?;
    fresh
        .finish(
            StatusCode::OK,
            json!({ "transfer_id": uuid, "status": "cancelled" }),
        )
        .await
}

#[utoipa::path(post, path = "/v1/transfers/{id}/retry", tag = "transfers", params(("id" = Uuid, Path)),
    responses((status = 202, description = "resumed: job_id"), (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
/// Operators resume a failed ticket where it stopped: the switch if it
/// never committed, otherwise the role cleanup.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let (mut fresh, transfer) =
        *begin_action(&state, &caller, &headers, &id, "retry", &body).await?;
    let uuid = transfer.id;
    if transfer.status != TransferStatus::Failed {
        return Err(ApiError::Conflict {
            slug: "transfer-not-failed",
            detail: format!(
                "only a failed transfer can be retried; this one is {}",
                transfer.status
            ),
        });
    }
    let now = state.clock.now();
    let subscription_ids = transfers::subscription_ids(&mut *fresh.tx, uuid).await?;
    // Resume at the step that failed: the switch is done once.
    let cleanup = transfers::switched(&mut *fresh.tx, uuid)
        .await?
        .then(|| RoleCleanupArgs {
            customer_id: transfer.customer_id.clone(),
            partner_id: transfer.source_partner_id.clone(),
            subscription_ids,
            transfer_id: Some(uuid),
        });
    let status = if cleanup.is_some() {
        TransferStatus::CleaningRoles
    } else {
        TransferStatus::Submitted
    };
    transfers::set_status(&mut fresh.tx, uuid, status, None, now).await?;
    let mut actor = transfer.clone();
    actor.token_id = Some(caller.0.id);
    audit_transition(
        &mut fresh.tx,
        &actor,
        (Some(TransferStatus::Failed), status),
        None,
        json!({ "retried_by": "operator" }),
        now,
    )
    .await?;
    let opts = Opts {
        partner_id: Some(&transfer.destination_partner_id),
        token_id: Some(caller.0.id),
        resource_type: "transfer",
        resource_id: uuid,
        sla_deadline: None,
        max_attempts: state.settings.jobs.max_attempts,
        now,
    };
    let job_id = match &cleanup {
        Some(cleanup) => enqueue(&mut fresh.tx, cleanup, opts).await?,
        None => {
            let process = TransferProcessArgs { transfer_id: uuid };
            enqueue(&mut fresh.tx, &process, opts).await?
        }
    };
    fresh
        .finish(
            StatusCode::ACCEPTED,
            json!({ "transfer_id": uuid, "status": status, "job_id": job_id }),
        )
        .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleCleanupRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    /// The partner whose roles go.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub partner_id: String,
    #[schema(max_items = 100)]
    pub subscription_ids: Vec<String>,
}

#[utoipa::path(post, path = "/v1/role-cleanups", tag = "transfers", request_body = RoleCleanupRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, description = "accepted: job_id"), (status = 400, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn role_cleanup(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let request: RoleCleanupRequest = parse_json(&body)?;
    let mut checks = Checks::default();
    checks.check(is_identifier(&request.customer_id), "customer_id", "an id");
    checks.check(is_identifier(&request.partner_id), "partner_id", "an id");
    checks.check(
        request.subscription_ids.len() <= 100,
        "subscription_ids",
        "at most 100",
    );
    checks.finish()?;
    idempotency::key(&headers)?;
    if let Some(own) = caller.partner_scope()
        && !directory::customer_visible_to(&state.pool, &request.customer_id, own).await?
    {
        return Err(ApiError::NotFound(format!(
            "no customer {}",
            request.customer_id
        )));
    }
    let mut fresh =
        idempotency::begin(&state, &caller, &headers, "POST /v1/role-cleanups", &body).await?;
    let now = state.clock.now();
    let cleanup = RoleCleanupArgs {
        customer_id: request.customer_id,
        partner_id: request.partner_id,
        subscription_ids: request.subscription_ids,
        transfer_id: None,
    };
    let opts = Opts {
        partner_id: caller.partner_scope(),
        token_id: Some(caller.0.id),
        resource_type: "role_cleanup",
        resource_id: Uuid::now_v7(),
        sla_deadline: None,
        max_attempts: state.settings.jobs.max_attempts,
        now,
    };
    let job_id = enqueue(&mut fresh.tx, &cleanup, opts).await?;
    fresh
        .finish(
            StatusCode::ACCEPTED,
            json!({ "job_id": job_id, "job_url": format!("/v1/jobs/{job_id}") }),
        )
        .await
}
