//! Transfer forms (SPEC §1.2, second round): the form is filled by three
//! parties, in the seed's order.
//!
//! - The **source** partner opens it (`POST /v1/transfer-forms`) → `draft`;
//!   the customer admin is mailed a one-time link (only its hash is
//!   stored; no response carries it).
//! - The **customer**, with the destination partner, completes it through
//!   that link (`…/{token}/completion`) → `returned`; the source contact is
//!   mailed. The link is posted by an operator or by a portal that acts for
//!   the customer, never by the source: the source cannot fill in the
//!   customer's part itself.
//! - The source checks and submits it (`…/{id}/submission`) → `submitted`:
//!   the transfer ticket is created and `transfer.process` runs it. The
//!   destination's reseller relationship is checked here (422) and again
//!   under lock by the worker.
//! - The source may withdraw it until then (`…/{id}/withdrawal`).
//! - A `draft` or `returned` form older than `transfers.form_valid` is
//!   `expired`. Expiry is lazy: a read shows it, and the first act on the
//!   form records it (audited) and answers 409. Nothing waits on a form, so
//!   no sweep is needed to release anything.
//!
//! `GET /v1/transfer-forms/{id}` shows the form to its source, to the
//! destination once named, and to operators; anyone else gets 404.

mod mails;
mod view;

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
use super::relationships::{recipient_locale, shown_name};
use super::transfers::{Ticket, check_contact, check_subscriptions, open_ticket};
use crate::store::directory;
use crate::store::tokens::{Role, hash_secret, random_secret};
use crate::store::transfer_forms::{self, Completion, FormRow, FormState, NewForm};
use crate::store::{Tx, audit, relationships};
use crate::transfers::{Contact, Form};
use mails::{Returned, queue_link, queue_returned};
pub use view::{FormEvent, FormStatus, TransferFormView};
use view::{contact, view, view_json};

const LINK_TOKEN_PREFIX: &str = "tform_";

/// The form's life, as configured.
pub(super) fn form_valid(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.settings.transfers.form_valid).unwrap_or(chrono::Duration::MAX)
}

async fn audit_status(
    tx: &mut Tx<'_>,
    form_id: Uuid,
    (from, to): (Option<FormState>, FormState),
    caller: &Caller,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at: now,
        entity_type: "transfer_form",
        entity_id: form_id,
        action: "transfer_form.status",
        from_state: from.map(FormState::as_str),
        to_state: Some(to.as_str()),
        token_id: Some(caller.0.id),
        job_id: None,
        detail,
    };
    audit::record(tx, event).await
}

/// Who sees a form: operators, its source, and its destination once named.
fn may_see(caller: &Caller, form: &FormRow) -> bool {
    match caller.partner_scope() {
        None => caller.0.role == Role::Operator,
        Some(own) => {
            own == form.source_partner_id || form.destination_partner_id.as_deref() == Some(own)
        }
    }
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("no transfer form {id}"))
}

/// Lets an act go ahead only in one of the `allowed` states. An open form
/// found past its expiry is expired here, and that is committed (and
/// audited) even though the answer is an error.
async fn require_state(
    mut fresh: Fresh,
    form: &FormRow,
    allowed: &[FormState],
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Fresh, ApiError> {
    let refused = |status: FormState| {
        let needed: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        ApiError::Conflict {
            slug: "transfer-form-state",
            detail: format!(
                "this transfer form is {status}; this needs it {}",
                needed.join(" or ")
            ),
        }
    };
    if FormStatus::of(form, now) == FormStatus::Expired && form.status != FormState::Expired {
        transfer_forms::end(&mut fresh.tx, form.id, FormState::Expired, now).await?;
        let detail = json!({ "expires_at": form.expires_at });
        let states = (Some(form.status), FormState::Expired);
        audit_status(&mut fresh.tx, form.id, states, caller, detail, now).await?;
        fresh.tx.commit().await?;
        return Err(refused(FormState::Expired));
    }
    if allowed.contains(&form.status) {
        Ok(fresh)
    } else {
        Err(refused(form.status))
    }
}

// Opening: the source's part

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferFormRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    /// The customer's subscriptions held by the source (the caller's partner).
    #[schema(min_items = 1, max_items = 100)]
    pub subscription_ids: Vec<String>,
    pub source_contact: Contact,
    /// Where the one-time link goes: the customer's administrator.
    #[schema(format = Email, max_length = 254)]
    pub customer_admin_email: String,
    /// The link mail's language when the directory does not know the
    /// address: `ja` or `en`.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
}

fn validate_opening(request: &TransferFormRequest) -> Result<(), ApiError> {
    let mut checks = Checks::default();
    checks.check(is_identifier(&request.customer_id), "customer_id", "an id");
    check_subscriptions(&mut checks, &request.subscription_ids);
    check_contact(&mut checks, "source_contact", &request.source_contact);
    checks.check(
        is_plausible_email(&request.customer_admin_email),
        "customer_admin_email",
        "must be a mail address",
    );
    checks.locale("locale", request.locale.as_deref());
    Ok(checks.finish()?)
}

#[utoipa::path(post, path = "/v1/transfer-forms", tag = "transfers", request_body = TransferFormRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, body = TransferFormView, description = "draft: the customer admin is mailed a one-time link"),
              (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem, description = "portals only: the source partner opens its form"),
              (status = 404, body = super::problem::Problem, description = "a customer the caller does not act for"),
              (status = 422, body = super::problem::Problem, description = "a subscription that is not the customer's or not held by the caller")),
    security(("bearer" = [])))]
pub async fn open(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let own = caller.portal_partner()?;
    let request: TransferFormRequest = parse_json(&body)?;
    validate_opening(&request)?;
    let mut fresh =
        idempotency::begin(&state, &caller, &headers, "POST /v1/transfer-forms", &body).await?;
    // A customer the source does not act for, unknown included, answers 404
    // and mails no one (SPEC §1.5).
    let customer =
        super::directory::customer_acted_for(&mut fresh.tx, &caller, &request.customer_id).await?;
    let mut subscription_ids = request.subscription_ids.clone();
    subscription_ids.sort();
    subscription_ids.dedup();
    let held =
        transfer_forms::held_subscriptions(&mut *fresh.tx, &customer.id, &own, &subscription_ids)
            .await?;
    let errors: Vec<FieldError> = request
        .subscription_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !held.contains(id))
        .map(|(i, _)| FieldError {
            field: format!("subscription_ids[{i}]"),
            message: "must be one of the customer's subscriptions held by your partner".into(),
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::UnprocessableFields {
            slug: "subscription-not-held",
            detail: "a form names only the customer's subscriptions that its source holds".into(),
            errors,
        });
    }

    let now = state.clock.now();
    let link_token = random_secret(LINK_TOKEN_PREFIX);
    let asked = (
        request.customer_admin_email.as_str(),
        request.locale.as_deref(),
    );
    let locale = recipient_locale(&state, &mut fresh.tx, &customer.id, asked).await?;
    let new = NewForm {
        id: Uuid::now_v7(),
        customer_id: &customer.id,
        source_partner_id: &own,
        subscription_ids: &subscription_ids,
        source_contact: serde_json::to_value(&request.source_contact).expect("serialisable"),
        admin_email: &request.customer_admin_email,
        locale: locale.as_str(),
        token_hash: &hash_secret(&link_token),
        token_id: caller.0.id,
        expires_at: now + form_valid(&state),
        now,
    };
    let form = transfer_forms::insert_form(&mut fresh.tx, &new).await?;
    let detail = json!({ "customer_id": customer.id, "subscription_ids": subscription_ids });
    audit_status(
        &mut fresh.tx,
        form.id,
        (None, FormState::Draft),
        &caller,
        detail,
        now,
    )
    .await?;
    queue_link(&state, &mut fresh.tx, &form, &customer, &link_token).await?;
    let view = view(&mut fresh.tx, &form, now).await?;
    // The response never carries the link: it reaches the customer only
    // through their mailbox.
    fresh.finish(StatusCode::ACCEPTED, view_json(&view)).await
}

#[utoipa::path(get, path = "/v1/transfer-forms/{id}", tag = "transfers", params(("id" = Uuid, Path)),
    responses((status = 200, body = TransferFormView),
              (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem, description = "no such form for this token: only its source, its named destination and operators see it")),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TransferFormView>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let uuid: Uuid = id.parse().map_err(|_| missing(&id))?;
    let mut snapshot = crate::store::snapshot(&state.pool).await?;
    let form = transfer_forms::find_form(&mut *snapshot, uuid)
        .await?
        .filter(|f| may_see(&caller, f))
        .ok_or_else(|| missing(&id))?;
    let view = view(&mut snapshot, &form, state.clock.now()).await?;
    snapshot.commit().await?;
    Ok(Json(view))
}

// Completion: the customer's part, through the link

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferFormCompletion {
    pub customer_contact: Contact,
    /// The partner taking the subscriptions over.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub destination_partner_id: String,
    pub destination_contact: Contact,
}

fn validate_completion(request: &TransferFormCompletion) -> Result<(), ApiError> {
    let mut checks = Checks::default();
    check_contact(&mut checks, "customer_contact", &request.customer_contact);
    checks.check(
        is_identifier(&request.destination_partner_id),
        "destination_partner_id",
        "an id",
    );
    check_contact(
        &mut checks,
        "destination_contact",
        &request.destination_contact,
    );
    Ok(checks.finish()?)
}

/// Who may post the customer's part: an operator, or a portal that acts
/// for the customer (the destination, typically), never the source.
async fn authorize_completion(
    tx: &mut Tx<'_>,
    caller: &Caller,
    form: &FormRow,
) -> Result<(), ApiError> {
    let Some(own) = caller.partner_scope() else {
        return Ok(());
    };
    if own == form.source_partner_id
        || !directory::customer_visible_to(&mut **tx, &form.customer_id, own).await?
    {
        return Err(ApiError::Forbidden(
            "the customer completes a transfer form through a portal that acts for it (the destination's, typically) or an operator; the source partner cannot".into(),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/v1/transfer-forms/{token}/completion", tag = "transfers",
    request_body = TransferFormCompletion,
    params(("token" = String, Path, description = "the one-time token from the form mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, body = TransferFormView, description = "returned: the source contact is mailed"),
              (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem, description = "the source partner, or a portal that does not act for the customer"),
              (status = 404, body = super::problem::Problem, description = "no form has this link token"),
              (status = 409, body = super::problem::Problem, description = "the form is not a draft (returned, submitted, withdrawn or expired); the detail names its state"),
              (status = 422, body = super::problem::Problem, description = "an unknown destination partner")),
    security(("bearer" = [])))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let request: TransferFormCompletion = parse_json(&body)?;
    validate_completion(&request)?;
    // The idempotency scope names the token's hash, never the token.
    let token_hash = hash_secret(&token);
    let route = format!(
        "POST /v1/transfer-forms/{}/completion",
        hex::encode(&token_hash)
    );
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let form = transfer_forms::lock_form_by_token(&mut fresh.tx, &token_hash)
        .await?
        .ok_or_else(|| ApiError::NotFound("no transfer form has this link token".into()))?;
    authorize_completion(&mut fresh.tx, &caller, &form).await?;
    let now = state.clock.now();
    let mut fresh = require_state(fresh, &form, &[FormState::Draft], &caller, now).await?;
    let destination = &request.destination_partner_id;
    if *destination == form.source_partner_id {
        return Err(ApiError::field(
            "destination_partner_id",
            "must differ from the source partner",
        ));
    }
    let Some(destination_partner) = directory::find_partner(&mut *fresh.tx, destination).await?
    else {
        return Err(ApiError::UnprocessableFields {
            slug: "unknown-reference",
            detail: format!("unknown: partner {destination}"),
            errors: vec![FieldError {
                field: "destination_partner_id".into(),
                message: "must be a partner in the directory".into(),
            }],
        });
    };
    let completion = Completion {
        customer_contact: serde_json::to_value(&request.customer_contact).expect("serialisable"),
        destination_partner_id: destination,
        destination_contact: serde_json::to_value(&request.destination_contact)
            .expect("serialisable"),
    };
    let form = transfer_forms::complete(&mut fresh.tx, form.id, &completion, now).await?;
    let detail = json!({ "destination_partner_id": destination });
    let states = (Some(FormState::Draft), FormState::Returned);
    audit_status(&mut fresh.tx, form.id, states, &caller, detail, now).await?;
    let returned = Returned {
        form: &form,
        customer_contact: &request.customer_contact,
        destination_name: shown_name(&destination_partner.name, destination),
        destination_contact: &request.destination_contact,
    };
    queue_returned(&state, &mut fresh.tx, &returned, now).await?;
    let view = view(&mut fresh.tx, &form, now).await?;
    fresh.finish(StatusCode::OK, view_json(&view)).await
}

// The source's acts: submission and withdrawal

/// The start of the source's act on its form: the idempotency check, then
/// the form (404 unless the caller sees it, 403 unless it is the source)
/// locked in the act's transaction. `Err` carries a replayed response.
async fn begin_source_act(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    (id, act): (&str, &str),
    body: &[u8],
) -> Result<Box<(Fresh, FormRow)>, ApiError> {
    caller.require(&[Role::Portal])?;
    let route = format!("POST /v1/transfer-forms/{id}/{act}");
    let mut fresh = idempotency::begin(state, caller, headers, &route, body).await?;
    let uuid: Uuid = id.parse().map_err(|_| missing(id))?;
    let form = transfer_forms::lock_form(&mut fresh.tx, uuid)
        .await?
        .filter(|f| may_see(caller, f))
        .ok_or_else(|| missing(id))?;
    if caller.partner_scope() != Some(form.source_partner_id.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "only the source partner may {act} a transfer form"
        )));
    }
    Ok(Box::new((fresh, form)))
}

#[utoipa::path(post, path = "/v1/transfer-forms/{id}/submission", tag = "transfers", params(("id" = Uuid, Path)),
    responses((status = 202, description = "submitted: transfer_id, job_id, status_url (the ticket), form_url"),
              (status = 403, body = super::problem::Problem, description = "only the source partner submits"),
              (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "the form is not returned (draft, submitted, withdrawn or expired); the detail names its state"),
              (status = 422, body = super::problem::Problem, description = "the destination has no active reseller relationship with the customer")),
    security(("bearer" = [])))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let act = (id.as_str(), "submission");
    let (fresh, form) = *begin_source_act(&state, &caller, &headers, act, &body).await?;
    let now = state.clock.now();
    let mut fresh = require_state(fresh, &form, &[FormState::Returned], &caller, now).await?;
    let (Some(destination), Some(customer_contact), Some(destination_contact)) = (
        &form.destination_partner_id,
        &form.customer_contact,
        &form.destination_contact,
    ) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "returned transfer form {} lacks the customer's part",
            form.id
        )));
    };
    // Checked here so the source hears it now; the worker checks again
    // under lock, since the relationship can still end before it runs.
    if !relationships::is_active(&mut *fresh.tx, destination, &form.customer_id).await? {
        return Err(ApiError::Unprocessable {
            slug: "destination-not-related",
            detail: format!(
                "partner {destination} has no active reseller relationship with customer {}; the customer grants one through POST /v1/relationship-requests",
                form.customer_id
            ),
        });
    }
    let ticket = Ticket {
        customer_id: &form.customer_id,
        source_partner_id: &form.source_partner_id,
        destination_partner_id: destination,
        subscription_ids: transfer_forms::subscription_ids(&mut *fresh.tx, form.id).await?,
        form: Form {
            customer_contact: contact(customer_contact)?,
            source_contact: contact(&form.source_contact)?,
            destination_contact: contact(destination_contact)?,
        },
        form_id: Some(form.id),
    };
    let opened = open_ticket(&state, &mut fresh.tx, &caller, ticket).await?;
    transfer_forms::mark_submitted(&mut fresh.tx, form.id, opened.transfer_id, now).await?;
    let detail = json!({ "transfer_id": opened.transfer_id });
    let states = (Some(FormState::Returned), FormState::Submitted);
    audit_status(&mut fresh.tx, form.id, states, &caller, detail, now).await?;
    let mut body = opened.body();
    body["form_id"] = json!(form.id);
    body["form_status"] = json!(FormStatus::Submitted);
    body["form_url"] = json!(format!("/v1/transfer-forms/{}", form.id));
    fresh.finish(StatusCode::ACCEPTED, body).await
}

#[utoipa::path(post, path = "/v1/transfer-forms/{id}/withdrawal", tag = "transfers", params(("id" = Uuid, Path)),
    responses((status = 200, body = TransferFormView, description = "withdrawn: the link no longer works"),
              (status = 403, body = super::problem::Problem, description = "only the source partner withdraws"),
              (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "the form is submitted, withdrawn or expired; the detail names its state")),
    security(("bearer" = [])))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let act = (id.as_str(), "withdrawal");
    let (fresh, form) = *begin_source_act(&state, &caller, &headers, act, &body).await?;
    let now = state.clock.now();
    let mut fresh = require_state(
        fresh,
        &form,
        &[FormState::Draft, FormState::Returned],
        &caller,
        now,
    )
    .await?;
    let withdrawn = transfer_forms::end(&mut fresh.tx, form.id, FormState::Withdrawn, now).await?;
    let states = (Some(form.status), FormState::Withdrawn);
    audit_status(&mut fresh.tx, form.id, states, &caller, json!({}), now).await?;
    let view = view(&mut fresh.tx, &withdrawn, now).await?;
    fresh.finish(StatusCode::OK, view_json(&view)).await
}
