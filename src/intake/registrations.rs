//! Provisional sign-ups (SPEC §1.4) over HTTP: `POST /v1/registrations`
//! mails a one-time link valid `registration.link_valid` (or, when no link
//! can be issued, the "application not completed" mail: see
//! `registrations::refusal`); a portal's sign-up page posts its token with
//! the application to `POST /v1/registrations/{token}/completion`, which
//! mails the completion and leaves it `applied` for review (`review`).
//! What each step does is the `registrations` domain's; this module
//! parses, authorises and answers, and maps its refusals to problems. The
//! link token is a secret: only its hash is stored, and it appears in no
//! log or error.

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
use super::idempotency;
use super::problem::ApiError;
use crate::mail::Locale;
use crate::registrations::RegistrationError;
use crate::registrations::application::Application;
use crate::registrations::link::{self, Opened, SignUp};
use crate::registrations::refusal;
use crate::store::Tx;
use crate::store::registrations::{self, RegistrationRow, RegistrationStatus};
use crate::store::tokens::{Role, hash_secret};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `ja` or `en`; the default locale when absent.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
}

/// The registration as `GET /v1/registrations/{id}` shows it: the
/// application once the link was completed, and its review.
pub(super) fn view(registration: &RegistrationRow) -> serde_json::Value {
    json!({
        "registration_id": registration.id,
        "status": registration.status,
        "email": registration.email,
        "expires_at": registration.expires_at,
        "completed_at": registration.completed_at,
        "started_at": registration.started_at,
        "application": registration.application,
        "review": {
            "reviewed_at": registration.reviewed_at,
            "rejection_reason": registration.rejection_reason,
            "customer_id": registration.customer_id,
            "user_id": registration.user_id,
        },
    })
}

#[utoipa::path(post, path = "/v1/registrations", tag = "registrations", request_body = RegistrationRequest,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, body = RegistrationAccepted,
               description = "`pending`: the link is mailed; or `refused` (an application in progress for the address, or its domain refused): only the \"application not completed\" mail goes out, saying why")),
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
    checks.locale("locale", request.locale.as_deref());
    checks.finish()?;
    let mut fresh =
        idempotency::begin(&state, &caller, &headers, "POST /v1/registrations", &body).await?;
    let now = state.clock.now();
    let settings = &state.settings.registration;
    let locale = request
        .locale
        .as_deref()
        .and_then(Locale::parse)
        .unwrap_or(state.settings.mail.default_locale);
    let partner_id = caller.partner_scope();
    let token_id = caller.0.id;
    if let Some(refusal) = refusal::why_no_link(
        settings,
        &state.clock,
        &mut fresh.tx,
        &request.email,
        Some(token_id),
    )
    .await?
    {
        let to = (request.email.as_str(), locale, partner_id);
        let refusal_id =
            refusal::refuse(&state.mailer, &mut fresh.tx, to, refusal, token_id, now).await?;
        let body = json!({
            "status": "refused",
            "reason": refusal,
            "refusal_id": refusal_id,
            "email": request.email,
        });
        return fresh.finish(StatusCode::ACCEPTED, body).await;
    }
    let sign_up = SignUp {
        email: &request.email,
        locale,
        partner_id,
        token_id,
    };
    let registration = link::issue(&state.mailer, settings, &mut fresh.tx, sign_up, now).await?;
    // The response never carries the link token: it reaches the person
    // only through their mailbox, which is what the link proves.
    fresh
        .finish(StatusCode::ACCEPTED, view(&registration))
        .await
}

/// What `POST /v1/registrations` answers (for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RegistrationAccepted {
    /// Absent when refused: nothing was created.
    registration_id: Option<Uuid>,
    status: AcceptedStatus,
    /// Why no link was issued, when refused.
    reason: Option<refusal::Refusal>,
    /// Names the refusal and its mail, when refused.
    refusal_id: Option<Uuid>,
    #[schema(format = Email)]
    email: String,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "snake_case")]
enum AcceptedStatus {
    /// The link is mailed.
    Pending,
    /// No link: the "application not completed" mail says why.
    Refused,
}

/// A registration as the API shows it (for the OpenAPI document; built by
/// [`view`]).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RegistrationView {
    registration_id: Uuid,
    status: RegistrationStatus,
    #[schema(format = Email)]
    email: String,
    /// When the link stops working.
    expires_at: DateTime<Utc>,
    /// When the link was completed with the application.
    completed_at: Option<DateTime<Utc>>,
    /// When the service started: the approval.
    started_at: Option<DateTime<Utc>>,
    /// Absent until the link is completed.
    application: Option<Application>,
    review: Review,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Review {
    reviewed_at: Option<DateTime<Utc>>,
    /// Mailed to the applicant, when rejected.
    rejection_reason: Option<String>,
    /// The customer the approval put in the directory.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    customer_id: Option<String>,
    /// Its contractor: a new user, or the address's existing one.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    user_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/registrations/{token}/completion", tag = "registrations",
    request_body = Application,
    params(("token" = String, Path, description = "the one-time token from the registration mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, body = RegistrationView, description = "`applied`: the application awaits review; the completion mail is on its way"),
              (status = 400, body = super::problem::Problem,
               description = "the application breaks a rule; `errors` names each field; the link is still usable"),
              (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem, description = "the link was used already (`registration-link-used`)"),
              (status = 410, body = super::problem::Problem, description = "the link expired (`registration-link-expired`)")),
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
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    match complete_link(&state, &mut fresh.tx, &token_hash, Some(&caller), &body).await? {
        LinkOutcome::Applied(applied) => fresh.finish(StatusCode::OK, view(&applied)).await,
        LinkOutcome::Expired(registration) => {
            // The expiry is recorded even though the answer is an error.
            fresh.tx.commit().await?;
            Err(link_expired(&registration))
        }
    }
}

/// What opening a registration link came to.
pub enum LinkOutcome {
    /// The application was taken: it awaits review.
    Applied(RegistrationRow),
    /// Past its time: recorded as expired in the transaction, which the
    /// caller commits before answering 410.
    Expired(RegistrationRow),
}

/// Completes the registration a link token names with the application in
/// `body`, in `tx`: for a portal posting it (`caller`), or for the person
/// at the sign-up page (no caller: the one-time token from their mailbox
/// is the proof). A used link answers 409, an unknown one (or another
/// partner's, for a portal) 404, an application that breaks a rule 400
/// and changes nothing. The link is found before the body is read, so a
/// stranger's guess learns nothing from the answer.
pub async fn complete_link(
    state: &AppState,
    tx: &mut Tx<'_>,
    token_hash: &[u8],
    caller: Option<&Caller>,
    body: &axum::body::Bytes,
) -> Result<LinkOutcome, ApiError> {
    let visible = |partner_id: Option<&str>| caller.is_none_or(|c| c.can_see(partner_id));
    let token_id = caller.map(|c| c.0.id);
    let (registration, now) =
        match link::open(&state.clock, tx, token_hash, visible, token_id).await? {
            Opened::Pending { registration, now } => (registration, now),
            Opened::Expired(registration) => return Ok(LinkOutcome::Expired(registration)),
        };
    let application: Application = parse_json(body)?;
    let applied = link::complete(
        &state.mailer,
        tx,
        &registration,
        &application,
        token_id,
        now,
    )
    .await?;
    Ok(LinkOutcome::Applied(applied))
}

pub fn link_expired(registration: &RegistrationRow) -> ApiError {
    RegistrationError::LinkExpired {
        expires_at: registration.expires_at,
    }
    .into()
}

/// The problem each refused registration step answers.
impl From<RegistrationError> for ApiError {
    fn from(error: RegistrationError) -> ApiError {
        let detail = error.to_string();
        match error {
            RegistrationError::NotFound(detail) => ApiError::NotFound(detail),
            RegistrationError::LinkUsed { .. } => ApiError::Conflict {
                slug: "registration-link-used",
                detail,
            },
            RegistrationError::LinkExpired { .. } => ApiError::Gone {
                slug: "registration-link-expired",
                detail,
            },
            RegistrationError::NotReviewable(detail) => ApiError::Conflict {
                slug: "registration-not-reviewable",
                detail,
            },
            RegistrationError::Invalid(invalid) => invalid.into(),
            RegistrationError::Database(error) => error.into(),
            RegistrationError::Internal(error) => ApiError::Internal(error),
        }
    }
}

#[utoipa::path(get, path = "/v1/registrations/{id}", tag = "registrations", params(("id" = Uuid, Path)),
    responses((status = 200, body = RegistrationView, description = "the registration, the `application` once applied, and its `review`"), (status = 404, body = super::problem::Problem)),
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
