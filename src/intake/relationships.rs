//! Reseller relationships (SPEC §1.5): access to a customer is granted by
//! the party that gives it, never taken by the party that gains it.
//!
//! - A partner asks: `POST /v1/relationship-requests` mails the customer
//!   admin a one-time link (only its hash is stored; no response carries
//!   it). Accepting it (`…/{token}/acceptance`) makes the relationship
//!   active (and the provider's too, for a two-tier request); declining or
//!   letting it expire ends the request.
//! - The link is posted by the portal that hosts the customer's page: a
//!   partner that already acts for the customer, never the requester or its
//!   provider, or by an operator. So a requester that sends the link to a
//!   mailbox of its own still cannot accept it.
//! - Directly, `PUT /v1/reseller-relationships/{partner}/{customer}` is the
//!   customer's partner of record's or an operator's act; anyone else gets
//!   403. The partner of record, the related partner or an operator ends
//!   one with `DELETE`. Every grant, acceptance, decline and end is audited.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody, is_identifier, is_plausible_email, parse_json};
pub(super) use super::directory::not_found;
use super::directory::owns;
use super::idempotency::{self, Fresh};
use super::problem::ApiError;
use crate::mail::Locale;
use crate::mail::contexts::{Content, RelationshipInvitation, mail_time};
use crate::mail::queue::{MailRequest, queue_mail};
use crate::store::directory::{self, Customer};
use crate::store::relationships::InvitationStatus;
use crate::store::relationships::{self, Grant, Relationship, RequestRow};
use crate::store::tokens::{Role, hash_secret, random_secret};
use crate::store::{Tx, audit};

const LINK_TOKEN_PREFIX: &str = "rel_";

/// The invitation's life, as configured, in whole days for the mail.
pub(super) fn invite_valid(state: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(state.settings.relationships.invite_valid)
        .unwrap_or(chrono::Duration::MAX)
}

async fn audit_event(
    tx: &mut Tx<'_>,
    (entity_type, entity_id): (&'static str, Uuid),
    action: &'static str,
    (from, to): (Option<&str>, Option<&str>),
    caller: &Caller,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at: now,
        entity_type,
        entity_id,
        action,
        from_state: from,
        to_state: to,
        token_id: Some(caller.0.id),
        job_id: None,
        detail,
    };
    audit::record(tx, event).await
}

/// Audits an invitation's change of state (`invited` → `active`, …).
pub(super) async fn audit_status(
    tx: &mut Tx<'_>,
    (kind, id): (Invitation, Uuid),
    (from, to): (Option<InvitationStatus>, InvitationStatus),
    caller: &Caller,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let entity = (kind.entity_type(), id);
    audit_event(
        tx,
        entity,
        kind.status_action(),
        (from.map(InvitationStatus::as_str), Some(to.as_str())),
        caller,
        detail,
        now,
    )
    .await
}

/// What a mail calls a partner or customer: its name, else its id.
pub(super) fn shown_name(name: &str, id: &str) -> String {
    if name.trim().is_empty() {
        id.to_owned()
    } else {
        name.to_owned()
    }
}

pub(super) async fn audit_relationship(
    tx: &mut Tx<'_>,
    relationship: &Relationship,
    action: &'static str,
    (from, to): (Option<&str>, &str),
    caller: &Caller,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let detail = json!({
        "partner_id": relationship.partner_id,
        "customer_id": relationship.customer_id,
        "granted_by": relationship.granted_by,
        "request_id": relationship.request_id,
        "partnership_id": relationship.partnership_id,
    });
    let entity = ("reseller_relationship", relationship.id);
    audit_event(tx, entity, action, (from, Some(to)), caller, detail, now).await
}

// The relationship itself

#[utoipa::path(put, path = "/v1/reseller-relationships/{partner_id}/{customer_id}", tag = "relationships",
    params(("partner_id" = String, Path), ("customer_id" = String, Path)),
    responses((status = 200, body = Relationship, description = "already active"),
              (status = 201, body = Relationship, description = "granted"),
              (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem, description = "only the customer's partner of record or an operator grants directly"),
              (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "the partner is the customer's partner of record")),
    security(("bearer" = [])))]
pub async fn put_relationship(
    State(state): State<AppState>,
    caller: Caller,
    Path((partner_id, customer_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let refused = || {
        ApiError::Forbidden(
            "only the customer's partner of record or an operator grants a reseller relationship; \
             ask the customer with POST /v1/relationship-requests"
                .into(),
        )
    };
    let mut tx = state.pool.begin().await?;
    let customer = match directory::lock_customer(&mut tx, &customer_id).await? {
        Some(customer) if owns(&caller, &customer) => customer,
        // A portal learns nothing of customers it does not hold.
        _ if caller.partner_scope().is_some() => return Err(refused()),
        _ => return Err(not_found("customer", &customer_id)),
    };
    if directory::find_partner(&mut *tx, &partner_id)
        .await?
        .is_none()
    {
        return Err(not_found("partner", &partner_id));
    }
    if partner_id == customer.partner_id {
        // The stored customer decides, not the request's shape: a 409.
        return Err(ApiError::Conflict {
            slug: "partner-of-record",
            detail: "the customer's partner of record needs no reseller relationship".into(),
        });
    }
    let now = state.clock.now();
    let grant = Grant {
        partner_id: &partner_id,
        customer_id: &customer.id,
        granted_by: "directory",
        request_id: None,
        partnership_id: None,
        now,
    };
    let (relationship, changed) = relationships::grant(&mut tx, &grant).await?;
    if changed {
        let action = "relationship.granted";
        audit_relationship(
            &mut tx,
            &relationship,
            action,
            (None, "active"),
            &caller,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(relationship)).into_response())
}

#[utoipa::path(get, path = "/v1/reseller-relationships/{partner_id}/{customer_id}", tag = "relationships",
    params(("partner_id" = String, Path), ("customer_id" = String, Path)),
    responses((status = 200, body = Relationship), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_relationship(
    State(state): State<AppState>,
    caller: Caller,
    Path((partner_id, customer_id)): Path<(String, String)>,
) -> Result<Json<Relationship>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let missing = || {
        not_found(
            "reseller relationship",
            &format!("{partner_id}/{customer_id}"),
        )
    };
    let relationship = relationships::find_relationship(&state.pool, &partner_id, &customer_id)
        .await?
        .ok_or_else(missing)?;
    let may_see = match caller.partner_scope() {
        None => true,
        Some(own) if own == partner_id => true,
        Some(own) => directory::find_customer(&state.pool, &customer_id)
            .await?
            .is_some_and(|c| c.partner_id == own),
    };
    if !may_see {
        return Err(missing());
    }
    Ok(Json(relationship))
}

#[utoipa::path(delete, path = "/v1/reseller-relationships/{partner_id}/{customer_id}", tag = "relationships",
    params(("partner_id" = String, Path), ("customer_id" = String, Path)),
    responses((status = 200, body = Relationship, description = "ended"), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem, description = "only the partner of record, the related partner or an operator ends it"),
              (status = 404, body = super::problem::Problem, description = "no active relationship")),
    security(("bearer" = [])))]
pub async fn end_relationship(
    State(state): State<AppState>,
    caller: Caller,
    Path((partner_id, customer_id)): Path<(String, String)>,
) -> Result<Json<Relationship>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let mut tx = state.pool.begin().await?;
    let customer = directory::lock_customer(&mut tx, &customer_id).await?;
    let allowed = match (caller.partner_scope(), &customer) {
        (None, _) => true,
        (Some(own), _) if own == partner_id => true,
        (Some(own), Some(customer)) => own == customer.partner_id,
        (Some(_), None) => false,
    };
    if !allowed {
        return Err(ApiError::Forbidden(
            "only the customer's partner of record, the related partner or an operator ends a reseller relationship".into(),
        ));
    }
    let now = state.clock.now();
    let ended = relationships::end(&mut tx, &partner_id, &customer_id, now)
        .await?
        .ok_or_else(|| {
            not_found(
                "active reseller relationship",
                &format!("{partner_id}/{customer_id}"),
            )
        })?;
    let action = "relationship.ended";
    audit_relationship(
        &mut tx,
        &ended,
        action,
        (Some("active"), "ended"),
        &caller,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ended))
}

// Requests: the customer's invitation

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationshipRequestBody {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    /// Where the one-time link goes: the customer's administrator.
    #[schema(format = Email, max_length = 254)]
    pub customer_admin_email: String,
    /// The mail's language when the directory does not know the address:
    /// `ja` or `en`.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
    /// Two-tier: the indirect provider (with an active partnership with
    /// the requester) that the customer's acceptance grants access too.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub with_provider: Option<String>,
}

fn request_view(request: &RequestRow) -> serde_json::Value {
    json!({
        "request_id": request.id,
        "status": request.status,
        "partner_id": request.partner_id,
        "customer_id": request.customer_id,
        "with_provider": request.provider_id,
        "customer_admin_email": request.admin_email,
        "expires_at": request.expires_at,
        "created_at": request.created_at,
        "decided_at": request.decided_at,
        "status_url": format!("/v1/relationship-requests/{}", request.id),
    })
}

fn already_active(partner_id: &str, customer_id: &str) -> ApiError {
    ApiError::Conflict {
        slug: "relationship-active",
        detail: format!("partner {partner_id} already acts for customer {customer_id}"),
    }
}

#[utoipa::path(post, path = "/v1/relationship-requests", tag = "relationships",
    request_body = RelationshipRequestBody,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, description = "invited: the customer admin is mailed a one-time link"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem, description = "no such customer"),
              (status = 409, body = super::problem::Problem, description = "already active, or a request is open"),
              (status = 422, body = super::problem::Problem, description = "no active partnership with the provider")),
    security(("bearer" = [])))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let own = caller.portal_partner()?;
    let body_value: RelationshipRequestBody = parse_json(&body)?;
    let mut checks = Checks::default();
    checks.check(
        is_identifier(&body_value.customer_id),
        "customer_id",
        "an id",
    );
    checks.check(
        is_plausible_email(&body_value.customer_admin_email),
        "customer_admin_email",
        "must be a mail address",
    );
    checks.locale("locale", body_value.locale.as_deref());
    if let Some(provider) = &body_value.with_provider {
        checks.check(is_identifier(provider), "with_provider", "a partner id");
        checks.check(
            provider != &own,
            "with_provider",
            "a provider other than the requesting partner",
        );
    }
    checks.finish()?;
    let request = body_value;
    let mut fresh = idempotency::begin(
        &state,
        &caller,
        &headers,
        "POST /v1/relationship-requests",
        &body,
    )
    .await?;
    let tx = &mut fresh.tx;
    let customer = directory::lock_customer(tx, &request.customer_id)
        .await?
        .ok_or_else(|| not_found("customer", &request.customer_id))?;
    let provider_id = request.with_provider.as_deref();
    let requester_active = customer.partner_id == own
        || relationships::is_active(&mut **tx, &own, &customer.id).await?;
    let provider_active = match provider_id {
        Some(provider) => relationships::is_active(&mut **tx, provider, &customer.id).await?,
        None => true,
    };
    if requester_active && provider_active {
        return Err(already_active(provider_id.unwrap_or(&own), &customer.id));
    }
    let partnership = match provider_id {
        None => None,
        Some(provider) => Some(
            relationships::lock_active_partnership(tx, provider, &own)
                .await?
                .ok_or_else(|| {
                    ApiError::UnprocessableFields {
                        slug: "no-active-partnership",
                        detail: format!("partner {own} has no active partnership with provider {provider}"),
                        errors: vec![super::problem::FieldError {
                            field: "with_provider".into(),
                            message: "must be an indirect provider with an active partnership with the requesting partner".into(),
                        }],
                    }
                })?,
        ),
    };

    let now = state.clock.now();
    let stale = relationships::expire_open_request(tx, &own, &customer.id, now).await?;
    if let Some(stale) = &stale {
        let states = (Some(InvitationStatus::Invited), InvitationStatus::Expired);
        let invitation = (Invitation::RelationshipRequest, stale.id);
        audit_status(tx, invitation, states, &caller, json!({}), now).await?;
    }
    let link_token = random_secret(LINK_TOKEN_PREFIX);
    let asked = (
        request.customer_admin_email.as_str(),
        request.locale.as_deref(),
    );
    let locale = recipient_locale(&state, tx, &customer.id, asked).await?;
    let new = relationships::NewRequest {
        id: Uuid::now_v7(),
        partner_id: &own,
        customer_id: &customer.id,
        provider: provider_id.zip(partnership.as_ref().map(|p| p.id)),
        admin_email: &request.customer_admin_email,
        locale: locale.as_str(),
        token_hash: &hash_secret(&link_token),
        expires_at: now + invite_valid(&state),
        token_id: caller.0.id,
        now,
    };
    let invitation = relationships::insert_request(tx, &new)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            slug: "relationship-request-open",
            detail: format!(
                "partner {own} has an open request for customer {}; wait for the customer's answer or its expiry",
                customer.id
            ),
        })?;
    let detail =
        json!({ "partner_id": own, "customer_id": customer.id, "with_provider": provider_id });
    let invitation_id = (Invitation::RelationshipRequest, invitation.id);
    audit_status(
        tx,
        invitation_id,
        (None, InvitationStatus::Invited),
        &caller,
        detail,
        now,
    )
    .await?;
    queue_invitation(&state, tx, &invitation, &customer, &link_token, now).await?;
    let view = request_view(&invitation);
    // The response never carries the link: it reaches the customer only
    // through their mailbox.
    fresh.finish(StatusCode::ACCEPTED, view).await
}

/// The admin's own locale when the directory knows the address as one of
/// the customer's users, else the one asked for, else the default.
pub(super) async fn recipient_locale(
    state: &AppState,
    tx: &mut Tx<'_>,
    customer_id: &str,
    (email, asked): (&str, Option<&str>),
) -> sqlx::Result<Locale> {
    let known: Option<String> = sqlx::query_scalar!(
        "select locale from users where customer_id = $1 and lower(email) = lower($2) limit 1",
        customer_id,
        email,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let default = state.settings.mail.default_locale;
    Ok(known
        .as_deref()
        .and_then(Locale::parse)
        .or_else(|| asked.and_then(Locale::parse))
        .unwrap_or(default))
}

pub(super) async fn partner_name(tx: &mut Tx<'_>, id: &str) -> sqlx::Result<String> {
    Ok(directory::find_partner(&mut **tx, id)
        .await?
        .map_or_else(|| id.to_owned(), |p| shown_name(&p.name, id)))
}

async fn queue_invitation(
    state: &AppState,
    tx: &mut Tx<'_>,
    invitation: &RequestRow,
    customer: &Customer,
    link_token: &str,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let provider_name = match &invitation.provider_id {
        Some(provider) => Some(partner_name(tx, provider).await?),
        None => None,
    };
    let context = RelationshipInvitation {
        partner_name: &partner_name(tx, &invitation.partner_id).await?,
        customer_name: &shown_name(&customer.name, &customer.id),
        provider_name: provider_name.as_deref(),
        link: &format!("{}{link_token}", state.settings.relationships.link_base),
        expires_at: invitation.expires_at,
        valid_days: invite_valid(state).num_days(),
    };
    let request = MailRequest {
        cause: format!("relationship_invitation:{}", invitation.id),
        content: Content::of(&context),
        locale: Locale::parse(&invitation.locale),
        to: &invitation.admin_email,
        to_name: None,
        attachments: Vec::new(),
        partner_id: Some(&invitation.partner_id),
    };
    queue_mail(&state.mailer, tx, request, now)
        .await
        .map(drop)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
}

#[utoipa::path(get, path = "/v1/relationship-requests/{id}", tag = "relationships",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "the request and its state"), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let missing = || not_found("relationship request", &id);
    let uuid: Uuid = id.parse().map_err(|_| missing())?;
    let request = relationships::find_request(&state.pool, uuid)
        .await?
        .ok_or_else(missing)?;
    let may_see = match caller.partner_scope() {
        None => true,
        Some(own) if own == request.partner_id => true,
        Some(own) if request.provider_id.as_deref() == Some(own) => true,
        Some(own) => directory::find_customer(&state.pool, &request.customer_id)
            .await?
            .is_some_and(|c| c.partner_id == own),
    };
    if !may_see {
        return Err(missing());
    }
    let mut view = request_view(&request);
    if request.status == InvitationStatus::Invited && state.clock.now() > request.expires_at {
        view["status"] = json!("expired");
    }
    Ok(Json(view))
}

/// How the customer answers the invitation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accept,
    Decline,
}

impl Answer {
    fn path(self) -> &'static str {
        match self {
            Answer::Accept => "acceptance",
            Answer::Decline => "decline",
        }
    }
}

#[utoipa::path(post, path = "/v1/relationship-requests/{token}/acceptance", tag = "relationships",
    params(("token" = String, Path, description = "the one-time token from the invitation mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "active: the relationship (and the provider's) is granted"),
              (status = 403, body = super::problem::Problem, description = "the requester (or its provider) cannot accept its own request"),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem, description = "already answered"),
              (status = 410, body = super::problem::Problem, description = "the link expired")),
    security(("bearer" = [])))]
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    answer(state, caller, token, headers, body, Answer::Accept).await
}

#[utoipa::path(post, path = "/v1/relationship-requests/{token}/decline", tag = "relationships",
    params(("token" = String, Path, description = "the one-time token from the invitation mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "declined: nothing is granted"),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "already answered"),
              (status = 410, body = super::problem::Problem, description = "the link expired")),
    security(("bearer" = [])))]
pub async fn decline(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    answer(state, caller, token, headers, body, Answer::Decline).await
}

/// The two kinds of invitation a one-time link answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Invitation {
    RelationshipRequest,
    Partnership,
}

impl Invitation {
    fn entity_type(self) -> &'static str {
        match self {
            Invitation::RelationshipRequest => "relationship_request",
            Invitation::Partnership => "partnership",
        }
    }

    pub(super) fn status_action(self) -> &'static str {
        match self {
            Invitation::RelationshipRequest => "relationship_request.status",
            Invitation::Partnership => "partnership.status",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Invitation::RelationshipRequest => "relationship request",
            Invitation::Partnership => "partnership",
        }
    }
}

/// What a link token found: its invitation's id, state and expiry.
pub(super) struct Found {
    pub id: Uuid,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
}

/// Refuses an invitation that cannot be answered any more. An expiry found
/// here is recorded (and committed) even though the answer is an error.
pub(super) async fn refuse_unanswerable(
    fresh: Fresh,
    kind: Invitation,
    found: Option<Found>,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Fresh, ApiError> {
    let what = kind.what();
    let found =
        found.ok_or_else(|| ApiError::NotFound(format!("no {what} has this link token")))?;
    let expired = || ApiError::Gone {
        slug: "invitation-expired",
        detail: format!(
            "this {what} link expired at {}; ask for a new one",
            mail_time(found.expires_at)
        ),
    };
    match found.status {
        InvitationStatus::Invited if now <= found.expires_at => Ok(fresh),
        InvitationStatus::Invited => {
            let mut fresh = fresh;
            match kind {
                Invitation::RelationshipRequest => {
                    relationships::decide_request(
                        &mut fresh.tx,
                        found.id,
                        InvitationStatus::Expired,
                        now,
                    )
                    .await?;
                }
                Invitation::Partnership => {
                    relationships::set_partnership_status(
                        &mut fresh.tx,
                        found.id,
                        InvitationStatus::Expired,
                        now,
                    )
                    .await?;
                }
            }
            let states = (Some(InvitationStatus::Invited), InvitationStatus::Expired);
            audit_status(
                &mut fresh.tx,
                (kind, found.id),
                states,
                caller,
                json!({}),
                now,
            )
            .await?;
            fresh.tx.commit().await?;
            Err(expired())
        }
        InvitationStatus::Expired => Err(expired()),
        answered => Err(ApiError::Conflict {
            slug: "invitation-answered",
            detail: format!("this {what} link was already used: it is {answered}"),
        }),
    }
}

async fn answer(
    state: AppState,
    caller: Caller,
    token: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    answer: Answer,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    // The idempotency scope names the token's hash, never the token.
    let token_hash = hash_secret(&token);
    let route = format!(
        "POST /v1/relationship-requests/{}/{}",
        hex::encode(&token_hash),
        answer.path()
    );
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let row = relationships::lock_request_by_token(&mut fresh.tx, &token_hash).await?;
    if let Some(request) = &row {
        authorize_answer(&mut fresh.tx, &caller, request).await?;
    }
    let now = state.clock.now();
    let found = row.as_ref().map(|r| Found {
        id: r.id,
        status: r.status,
        expires_at: r.expires_at,
    });
    let kind = Invitation::RelationshipRequest;
    let mut fresh = refuse_unanswerable(fresh, kind, found, &caller, now).await?;
    let request = row.expect("refuse_unanswerable refuses a missing invitation");
    let tx = &mut fresh.tx;
    let to = match answer {
        Answer::Decline => InvitationStatus::Declined,
        Answer::Accept => {
            grant_requested(tx, &request, &caller, now).await?;
            InvitationStatus::Active
        }
    };
    relationships::decide_request(tx, request.id, to, now).await?;
    let states = (Some(InvitationStatus::Invited), to);
    let invitation = (Invitation::RelationshipRequest, request.id);
    audit_status(tx, invitation, states, &caller, json!({}), now).await?;
    let decided = RequestRow {
        status: to,
        decided_at: Some(now),
        ..request
    };
    fresh.finish(StatusCode::OK, request_view(&decided)).await
}

/// Who may post the customer's answer: an operator, or the portal that
/// hosts the customer's page — a partner that already acts for the
/// customer — but never the requester or its provider.
async fn authorize_answer(
    tx: &mut Tx<'_>,
    caller: &Caller,
    request: &RequestRow,
) -> Result<(), ApiError> {
    let Some(own) = caller.partner_scope() else {
        return Ok(());
    };
    let interested = own == request.partner_id || request.provider_id.as_deref() == Some(own);
    if interested || !directory::customer_visible_to(&mut **tx, &request.customer_id, own).await? {
        return Err(ApiError::Forbidden(
            "the customer answers a relationship request, through the portal that hosts its page (a partner that already acts for it) or an operator; the requesting partner cannot".into(),
        ));
    }
    Ok(())
}

/// Grants what the customer accepted: the requester's relationship, and
/// the provider's for a two-tier request while their partnership lasts.
async fn grant_requested(
    tx: &mut Tx<'_>,
    request: &RequestRow,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let mut grants = vec![(request.partner_id.as_str(), None)];
    if let Some(provider) = &request.provider_id {
        let live = relationships::lock_active_partnership(tx, provider, &request.partner_id)
            .await?
            .filter(|p| Some(p.id) == request.partnership_id);
        if live.is_none() {
            return Err(ApiError::Conflict {
                slug: "partnership-ended",
                detail: format!(
                    "the partnership between {} and provider {provider} ended; nothing was granted",
                    request.partner_id
                ),
            });
        }
        grants.push((provider.as_str(), request.partnership_id));
    }
    for (partner_id, partnership_id) in grants {
        let grant = Grant {
            partner_id,
            customer_id: &request.customer_id,
            granted_by: "invitation",
            request_id: Some(request.id),
            partnership_id,
            now,
        };
        let (relationship, changed) = relationships::grant(tx, &grant).await?;
        if changed {
            let action = "relationship.granted";
            audit_relationship(tx, &relationship, action, (None, "active"), caller, now).await?;
        }
    }
    Ok(())
}
