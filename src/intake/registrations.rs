//! Provisional sign-ups (SPEC §1.4): `POST /v1/registrations` mails a
//! one-time link valid `registration.link_valid`; the portal's sign-up
//! page posts its token to `POST /v1/registrations/{token}/completion`,
//! which mails the completion; `POST /v1/registrations/{id}/service-start`
//! (the "service started" event) mails the start. The link token is a
//! secret: only its hash is stored, and it appears in no log or error.

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
use super::body::{Checks, RawBody, is_plausible_email, parse_json};
use super::idempotency::{self, Begun};
use super::problem::ApiError;
use crate::mail::Locale;
use crate::mail::queue::{MailRequest, queue_mail};
use crate::store::registrations::{self, NewRegistration, RegistrationRow};
use crate::store::tokens::{Role, hash_secret, random_secret};
use crate::store::{Tx, audit};
use crate::trials::mail_time;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `ja` or `en`; the default locale when absent.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceStart {
    /// The services now available, named in the start mail.
    #[serde(default)]
    pub services: Vec<String>,
}

const LINK_TOKEN_PREFIX: &str = "reg_";

async fn audit_registration(
    tx: &mut Tx<'_>,
    registration: &RegistrationRow,
    (from, to): (Option<&str>, Option<&str>),
    action: &'static str,
    token_id: Option<uuid::Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at: now,
        entity_type: "registration",
        entity_id: registration.id,
        action,
        from_state: from,
        to_state: to,
        token_id,
        job_id: None,
        detail: json!({}),
    };
    audit::record(tx, event).await
}

async fn queue(
    state: &AppState,
    tx: &mut Tx<'_>,
    registration: &RegistrationRow,
    template: &str,
    context: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let request = MailRequest {
        cause: format!("{template}:{}", registration.id),
        template,
        locale: Locale::parse(&registration.locale),
        to: &registration.email,
        to_name: None,
        context,
        attachments: Vec::new(),
        partner_id: registration.partner_id.as_deref(),
    };
    queue_mail(&state.mailer, tx, request, now)
        .await
        .map(drop)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
}

fn view(registration: &RegistrationRow) -> serde_json::Value {
    json!({
        "registration_id": registration.id,
        "status": registration.status,
        "email": registration.email,
        "expires_at": registration.expires_at,
        "completed_at": registration.completed_at,
        "started_at": registration.started_at,
    })
}

#[utoipa::path(post, path = "/v1/registrations", tag = "registrations", request_body = RegistrationRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, description = "accepted: registration_id, expires_at; the mail is on its way"),
              (status = 400, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let request: RegistrationRequest = parse_json(&body)?;
    let mut checks = Checks::default();
    checks.check(
        is_plausible_email(&request.email),
        "email",
        "must be a mail address",
    );
    if let Some(locale) = &request.locale {
        checks.check(
            Locale::parse(locale).is_some(),
            "locale",
            "must be ja or en",
        );
    }
    checks.finish()?;
    let mut fresh =
        match idempotency::begin(&state, &caller, &headers, "POST /v1/registrations", &body).await?
        {
            Begun::Replay(response) => return Ok(response),
            Begun::Fresh(fresh) => fresh,
        };
    let now = state.clock.now();
    let settings = &state.settings.registration;
    let valid = chrono::Duration::from_std(settings.link_valid).unwrap_or(chrono::Duration::MAX);
    let link_token = random_secret(LINK_TOKEN_PREFIX);
    let locale = request
        .locale
        .as_deref()
        .and_then(Locale::parse)
        .or_else(|| Locale::parse(&state.settings.mail.default_locale))
        .unwrap_or(Locale::Ja);
    let new = NewRegistration {
        id: Uuid::now_v7(),
        partner_id: caller.partner_scope(),
        token_hash: &hash_secret(&link_token),
        email: &request.email,
        locale: locale.as_str(),
        expires_at: now + valid,
        token_id: Some(caller.0.id),
        now,
    };
    let registration = registrations::insert(&mut fresh.tx, &new).await?;
    let context = json!({
        "email": registration.email,
        "link": format!("{}{link_token}", settings.link_base),
        "expires_at": mail_time(registration.expires_at),
        "valid_hours": valid.num_hours(),
    });
    queue(
        &state,
        &mut fresh.tx,
        &registration,
        "registration",
        context,
        now,
    )
    .await?;
    let caller_id = caller.0.id;
    audit_registration(
        &mut fresh.tx,
        &registration,
        (None, Some("pending")),
        "registration.status",
        Some(caller_id),
        now,
    )
    .await?;
    // The response never carries the link token: it reaches the person
    // only through their mailbox, which is what the link proves.
    fresh
        .finish(StatusCode::ACCEPTED, view(&registration))
        .await
}

#[utoipa::path(post, path = "/v1/registrations/{token}/completion", tag = "registrations",
    params(("token" = String, Path, description = "the one-time token from the registration mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "completed; the completion mail is on its way"),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem),
              (status = 410, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(link_token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    // The route's idempotency scope names the token's hash, not the token.
    let token_hash = hash_secret(&link_token);
    let route = format!(
        "POST /v1/registrations/{}/completion",
        hex::encode(&token_hash)
    );
    let mut fresh = match idempotency::begin(&state, &caller, &headers, &route, &body).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(fresh) => fresh,
    };
    match complete_link(&state, &mut fresh.tx, &token_hash, Some(&caller)).await? {
        LinkOutcome::Completed(completed) => fresh.finish(StatusCode::OK, view(&completed)).await,
        LinkOutcome::Expired(registration) => {
            // The expiry is recorded even though the answer is an error.
            fresh.tx.commit().await?;
            Err(link_expired(&registration))
        }
    }
}

/// What opening a registration link came to.
pub enum LinkOutcome {
    Completed(RegistrationRow),
    /// Past its time: recorded as expired in the transaction, which the
    /// caller commits before answering 410.
    Expired(RegistrationRow),
}

/// Completes the registration a link token names, in `tx`: for a portal
/// posting it (`caller`), or for the person at the sign-up page (no
/// caller: the one-time token from their mailbox is the proof). A used
/// link answers 409, an unknown one (or another partner's, for a portal)
/// 404.
pub async fn complete_link(
    state: &AppState,
    tx: &mut Tx<'_>,
    token_hash: &[u8],
    caller: Option<&Caller>,
) -> Result<LinkOutcome, ApiError> {
    let not_found = || ApiError::NotFound("no registration has this link token".into());
    let registration = registrations::lock_by_token_hash(tx, token_hash)
        .await?
        .filter(|r| caller.is_none_or(|c| c.can_see(r.partner_id.as_deref())))
        .ok_or_else(not_found)?;
    let token_id = caller.map(|c| c.0.id);
    let now = state.clock.now();
    match registration.status.as_str() {
        "completed" => {
            return Err(ApiError::Conflict {
                slug: "registration-link-used",
                detail: format!(
                    "this link was already used: registration {} was completed at {}",
                    registration.id,
                    registration.completed_at.map(mail_time).unwrap_or_default()
                ),
            });
        }
        "expired" => return Err(link_expired(&registration)),
        _ if now > registration.expires_at => {
            registrations::set_status(tx, registration.id, "expired", now).await?;
            let states = (Some("pending"), Some("expired"));
            audit_registration(
                tx,
                &registration,
                states,
                "registration.status",
                token_id,
                now,
            )
            .await?;
            return Ok(LinkOutcome::Expired(registration));
        }
        _ => {}
    }
    registrations::set_status(tx, registration.id, "completed", now).await?;
    let states = (Some("pending"), Some("completed"));
    audit_registration(
        tx,
        &registration,
        states,
        "registration.status",
        token_id,
        now,
    )
    .await?;
    let context = json!({ "email": registration.email });
    queue(
        state,
        tx,
        &registration,
        "registration_completed",
        context,
        now,
    )
    .await?;
    let completed = registrations::lock(tx, registration.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("registration vanished")))?;
    Ok(LinkOutcome::Completed(completed))
}

pub fn link_expired(registration: &RegistrationRow) -> ApiError {
    ApiError::Gone {
        slug: "registration-link-expired",
        detail: format!(
            "this link expired at {}; register again for a new one",
            mail_time(registration.expires_at)
        ),
    }
}

#[utoipa::path(post, path = "/v1/registrations/{id}/service-start", tag = "registrations",
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, description = "unique per request")),
    request_body = ServiceStart,
    responses((status = 200, description = "recorded; the start mail is on its way"),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn service_start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let start: ServiceStart = if body.is_empty() {
        ServiceStart::default()
    } else {
        parse_json(&body)?
    };
    let route = format!("POST /v1/registrations/{id}/service-start");
    let mut fresh = match idempotency::begin(&state, &caller, &headers, &route, &body).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(fresh) => fresh,
    };
    let not_found = || ApiError::NotFound(format!("no registration {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let registration = registrations::lock(&mut fresh.tx, uuid)
        .await?
        .filter(|r| caller.can_see(r.partner_id.as_deref()))
        .ok_or_else(not_found)?;
    if registration.status != "completed" || registration.started_at.is_some() {
        return Err(ApiError::Conflict {
            slug: "registration-not-startable",
            detail: match registration.started_at {
                Some(at) => format!("the service already started at {}", mail_time(at)),
                None => format!(
                    "a {} registration cannot start a service",
                    registration.status
                ),
            },
        });
    }
    let now = state.clock.now();
    registrations::mark_started(&mut fresh.tx, uuid, now).await?;
    audit_registration(
        &mut fresh.tx,
        &registration,
        (None, None),
        "registration.service_started",
        Some(caller.0.id),
        now,
    )
    .await?;
    let context = json!({ "email": registration.email, "services": start.services });
    queue(
        &state,
        &mut fresh.tx,
        &registration,
        "service_started",
        context,
        now,
    )
    .await?;
    let started = registrations::lock(&mut fresh.tx, uuid)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("registration vanished")))?;
    fresh.finish(StatusCode::OK, view(&started)).await
}

#[utoipa::path(get, path = "/v1/registrations/{id}", tag = "registrations", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the registration"), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let not_found = || ApiError::NotFound(format!("no registration {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let registration = registrations::find(&state.pool, uuid)
        .await?
        .filter(|r| caller.can_see(r.partner_id.as_deref()))
        .ok_or_else(not_found)?;
    Ok(Json(view(&registration)))
}
