//! Indirect provider ↔ indirect reseller partnerships (SPEC §1.5). The
//! provider invites (`POST /v1/partnerships`: the reseller's admin is
//! mailed a one-time link); only the reseller's own portal accepts or
//! declines it; either side, or an operator, ends it — and with it the
//! relationships its two-tier requests granted the provider. A partnership
//! alone shows the provider nothing: it sees a reseller's customer only
//! where that customer accepted the provider too.

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
use super::body::{Checks, RawBody, is_identifier, parse_json};
use super::idempotency;
use super::problem::ApiError;
use super::relationships::{
    Found, Invitation, audit_relationship, audit_status, invite_valid, not_found,
    refuse_unanswerable, shown_name,
};
use crate::mail::Locale;
use crate::mail::contexts::{Content, PartnershipInvitation};
use crate::mail::queue::{MailRequest, queue_mail};
use crate::store::Tx;
use crate::store::directory::{self, Partner};
use crate::store::relationships::InvitationStatus;
use crate::store::relationships::{self, NewPartnership, PartnershipRow};
use crate::store::tokens::{Role, hash_secret, random_secret};

const LINK_TOKEN_PREFIX: &str = "pship_";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnershipBody {
    /// The indirect reseller invited; its admin is mailed the link.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub reseller_id: String,
}

fn view(partnership: &PartnershipRow, now: DateTime<Utc>) -> serde_json::Value {
    let status = if partnership.status == InvitationStatus::Invited && now > partnership.expires_at
    {
        InvitationStatus::Expired
    } else {
        partnership.status
    };
    json!({
        "partnership_id": partnership.id,
        "status": status,
        "provider_id": partnership.provider_id,
        "reseller_id": partnership.reseller_id,
        "expires_at": partnership.expires_at,
        "created_at": partnership.created_at,
        "decided_at": partnership.decided_at,
        "ended_at": partnership.ended_at,
        "status_url": format!("/v1/partnerships/{}", partnership.id),
    })
}

fn display_name(partner: &Partner) -> String {
    shown_name(&partner.name, &partner.id)
}

#[utoipa::path(post, path = "/v1/partnerships", tag = "relationships",
    request_body = PartnershipBody,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, description = "invited: the reseller's admin is mailed a one-time link"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem, description = "no such partner"),
              (status = 409, body = super::problem::Problem, description = "already invited or active"),
              (status = 422, body = super::problem::Problem, description = "the reseller has no admin mail")),
    security(("bearer" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let provider_id = caller.portal_partner()?;
    let request: PartnershipBody = parse_json(&body)?;
    let mut checks = Checks::default();
    checks.check(
        is_identifier(&request.reseller_id),
        "reseller_id",
        "a partner id",
    );
    checks.check(
        request.reseller_id != provider_id,
        "reseller_id",
        "a partner other than the provider itself",
    );
    checks.finish()?;
    let route = "POST /v1/partnerships";
    let mut fresh = idempotency::begin(&state, &caller, &headers, route, &body).await?;
    let tx = &mut fresh.tx;
    let reseller = directory::find_partner(&mut **tx, &request.reseller_id)
        .await?
        .ok_or_else(|| not_found("partner", &request.reseller_id))?;
    let Some(admin_email) = reseller.admin_email.clone() else {
        return Err(ApiError::Unprocessable {
            slug: "partner-without-admin-email",
            detail: format!(
                "partner {} has no admin_email to send the invitation to",
                reseller.id
            ),
        });
    };
    let provider = directory::find_partner(&mut **tx, &provider_id)
        .await?
        .ok_or_else(|| not_found("partner", &provider_id))?;
    let now = state.clock.now();
    if let Some(stale) =
        relationships::expire_open_partnership(tx, &provider_id, &reseller.id, now).await?
    {
        let states = (Some(InvitationStatus::Invited), InvitationStatus::Expired);
        audit_status(
            tx,
            (Invitation::Partnership, stale.id),
            states,
            &caller,
            json!({}),
            now,
        )
        .await?;
    }
    let link_token = random_secret(LINK_TOKEN_PREFIX);
    let new = NewPartnership {
        id: Uuid::now_v7(),
        provider_id: &provider_id,
        reseller_id: &reseller.id,
        token_hash: &hash_secret(&link_token),
        expires_at: now + invite_valid(&state),
        token_id: caller.0.id,
        now,
    };
    let partnership = relationships::insert_partnership(tx, &new)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            slug: "partnership-live",
            detail: format!(
                "provider {provider_id} and reseller {} have an invited or active partnership already",
                reseller.id
            ),
        })?;
    let detail = json!({ "provider_id": provider_id, "reseller_id": reseller.id });
    let states = (None, InvitationStatus::Invited);
    audit_status(
        tx,
        (Invitation::Partnership, partnership.id),
        states,
        &caller,
        detail,
        now,
    )
    .await?;
    let context = PartnershipInvitation {
        provider_name: &display_name(&provider),
        reseller_name: &display_name(&reseller),
        link: &format!(
            "{}{link_token}",
            state.settings.relationships.partnership_link_base
        ),
        expires_at: partnership.expires_at,
        valid_days: invite_valid(&state).num_days(),
    };
    let mail = MailRequest {
        cause: format!("partnership_invitation:{}", partnership.id),
        content: Content::of(&context),
        locale: Locale::parse(&reseller.locale),
        to: &admin_email,
        to_name: None,
        attachments: Vec::new(),
        partner_id: Some(&reseller.id),
    };
    queue_mail(&state.mailer, tx, mail, now)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    // The response never carries the link: it reaches the reseller only
    // through its admin's mailbox.
    fresh
        .finish(StatusCode::ACCEPTED, view(&partnership, now))
        .await
}

/// Whether the caller is a side of the partnership (or an operator).
fn is_side(caller: &Caller, partnership: &PartnershipRow) -> bool {
    caller
        .partner_scope()
        .is_none_or(|own| own == partnership.provider_id || own == partnership.reseller_id)
}

#[utoipa::path(get, path = "/v1/partnerships/{id}", tag = "relationships",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "the partnership and its state"), (status = 400, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let missing = || not_found("partnership", &id);
    let uuid: Uuid = id.parse().map_err(|_| missing())?;
    let partnership = relationships::find_partnership(&state.pool, uuid)
        .await?
        .filter(|p| is_side(&caller, p))
        .ok_or_else(missing)?;
    Ok(Json(view(&partnership, state.clock.now())))
}

#[utoipa::path(post, path = "/v1/partnerships/{token}/acceptance", tag = "relationships",
    params(("token" = String, Path, description = "the one-time token from the invitation mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "active"),
              (status = 403, body = super::problem::Problem, description = "only the invited reseller's own portal accepts"),
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
    answer(
        state,
        caller,
        token,
        headers,
        body,
        InvitationStatus::Active,
    )
    .await
}

#[utoipa::path(post, path = "/v1/partnerships/{token}/decline", tag = "relationships",
    params(("token" = String, Path, description = "the one-time token from the invitation mail's link"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "declined"),
              (status = 403, body = super::problem::Problem, description = "only the invited reseller's own portal declines"),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem, description = "already answered"),
              (status = 410, body = super::problem::Problem, description = "the link expired")),
    security(("bearer" = [])))]
pub async fn decline(
    State(state): State<AppState>,
    caller: Caller,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    answer(
        state,
        caller,
        token,
        headers,
        body,
        InvitationStatus::Declined,
    )
    .await
}

async fn answer(
    state: AppState,
    caller: Caller,
    token: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    to: InvitationStatus,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Portal])?;
    let token_hash = hash_secret(&token);
    let action = if to == InvitationStatus::Active {
        "acceptance"
    } else {
        "decline"
    };
    let route = format!(
        "POST /v1/partnerships/{}/{action}",
        hex::encode(&token_hash)
    );
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let row = relationships::lock_partnership_by_token(&mut fresh.tx, &token_hash).await?;
    if let Some(partnership) = &row
        && caller.partner_scope() != Some(partnership.reseller_id.as_str())
    {
        return Err(ApiError::Forbidden(
            "only the invited reseller's own portal answers a partnership invitation".into(),
        ));
    }
    let now = state.clock.now();
    let found = row.as_ref().map(|p| Found {
        id: p.id,
        status: p.status,
        expires_at: p.expires_at,
    });
    let mut fresh =
        refuse_unanswerable(fresh, Invitation::Partnership, found, &caller, now).await?;
    let partnership = row.expect("refuse_unanswerable refuses a missing invitation");
    let tx = &mut fresh.tx;
    let decided = relationships::set_partnership_status(tx, partnership.id, to, now).await?;
    let states = (Some(InvitationStatus::Invited), to);
    audit_status(
        tx,
        (Invitation::Partnership, decided.id),
        states,
        &caller,
        json!({}),
        now,
    )
    .await?;
    fresh.finish(StatusCode::OK, view(&decided, now)).await
}

#[utoipa::path(delete, path = "/v1/partnerships/{id}", tag = "relationships",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "ended, with the relationships it had granted the provider"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem, description = "not invited or active")),
    security(("bearer" = [])))]
pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let missing = || not_found("partnership", &id);
    let uuid: Uuid = id.parse().map_err(|_| missing())?;
    let mut tx = state.pool.begin().await?;
    let partnership = relationships::lock_partnership(&mut tx, uuid)
        .await?
        .filter(|p| is_side(&caller, p))
        .ok_or_else(missing)?;
    if !matches!(
        partnership.status,
        InvitationStatus::Invited | InvitationStatus::Active
    ) {
        return Err(ApiError::Conflict {
            slug: "partnership-not-live",
            detail: format!("partnership {id} is {} already", partnership.status),
        });
    }
    let now = state.clock.now();
    let ended = end_with_grants(&mut tx, &partnership, &caller, now).await?;
    tx.commit().await?;
    Ok(Json(ended))
}

async fn end_with_grants(
    tx: &mut Tx<'_>,
    partnership: &PartnershipRow,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, ApiError> {
    let ended =
        relationships::set_partnership_status(tx, partnership.id, InvitationStatus::Ended, now)
            .await?;
    let states = (Some(partnership.status), InvitationStatus::Ended);
    audit_status(
        tx,
        (Invitation::Partnership, ended.id),
        states,
        caller,
        json!({}),
        now,
    )
    .await?;
    let dropped = relationships::end_granted_through(tx, partnership.id, now).await?;
    for relationship in &dropped {
        let states = (Some("active"), "ended");
        audit_relationship(tx, relationship, "relationship.ended", states, caller, now).await?;
    }
    let mut body = view(&ended, now);
    body["relationships_ended"] = json!(
        dropped
            .iter()
            .map(|r| json!({ "partner_id": r.partner_id, "customer_id": r.customer_id }))
            .collect::<Vec<_>>()
    );
    Ok(body)
}
