//! Operator routes: the audit trail (`GET /v1/ops/audit`), queue figures
//! (`GET /v1/ops/queues`), dead letters (`GET /v1/ops/dead-letters`) and
//! their replay (`POST /v1/ops/dead-letters/replay`, audited with the token).

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::problem::ApiError;
use crate::store::audit::{self, AuditRow};
use crate::store::tokens::Role;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only events of this entity (an order id, say).
    pub entity_id: Option<Uuid>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// At most this many events (default 100, at most 1000).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/ops/audit", tag = "operators", params(AuditQuery),
    responses((status = 200, description = "audit events, oldest first"), (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest {
        slug: "bad-query",
        detail: e.body_text(),
    })?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        audit::list(&state.pool, query.entity_id, query.since, limit).await?,
    ))
}

#[utoipa::path(get, path = "/v1/ops/queues", tag = "operators",
    responses((status = 200, description = "per job kind: ready, consumers, waiting, running, oldest waiting age, dead letters"),
              (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn queues(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<crate::ops::queues::QueuesReport>, ApiError> {
    caller.require(&[Role::Operator])?;
    Ok(Json(
        crate::ops::queues::stats(&state.pool, &state.settings).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeadLetterQuery {
    /// Only this job kind.
    pub kind: Option<String>,
    /// Only those since this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Include dead letters already replayed.
    #[serde(default)]
    pub include_replayed: bool,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/ops/dead-letters", tag = "operators", params(DeadLetterQuery),
    responses((status = 200, description = "dead letters, newest first, with reason, attempts and job state"),
              (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<crate::store::dead_letters::DeadLetterRow>>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest {
        slug: "bad-query",
        detail: e.body_text(),
    })?;
    let filter = crate::store::dead_letters::DeadLetterFilter {
        kind: query.kind.as_deref(),
        since: query.since,
        ids: &[],
        include_replayed: query.include_replayed,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(
        crate::store::dead_letters::list(&state.pool, &filter).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Replay the dead letters of this job kind.
    pub kind: Option<String>,
    /// Replay these dead letters (or the dead letters of these jobs).
    #[serde(default)]
    pub ids: Vec<Uuid>,
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/v1/ops/dead-letters/replay", tag = "operators", request_body = ReplayBody,
    params(("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "what was replayed and what was skipped, and why"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    super::body::RawBody(body): super::body::RawBody,
) -> Result<axum::response::Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let request: ReplayBody = super::body::parse_json(&body)?;
    let mut checks = super::body::Checks::default();
    checks.check(
        request.kind.is_some() || !request.ids.is_empty(),
        "kind",
        "name a kind and/or ids to replay",
    );
    if let Some(kind) = &request.kind {
        checks.check(
            crate::job::JobKind::parse(kind).is_some(),
            "kind",
            "not a job kind",
        );
    }
    checks.finish()?;
    let fresh = match super::idempotency::begin(
        &state,
        &caller,
        &headers,
        "POST /v1/ops/dead-letters/replay",
        &body,
    )
    .await?
    {
        super::idempotency::Begun::Replay(response) => return Ok(response),
        super::idempotency::Begun::Fresh(fresh) => fresh,
    };
    let replay = crate::ops::replay::ReplayRequest {
        kind: request.kind.as_deref(),
        ids: &request.ids,
        dry_run: request.dry_run,
        per_second: state.settings.http.rate_limit_per_second,
        token_id: Some(caller.0.id),
        actor: format!("token:{}", caller.0.name),
    };
    let clock = state.clock;
    let report = crate::ops::replay::replay(
        &state.pool,
        state.settings.jobs.max_attempts,
        &replay,
        || clock.now(),
        |_, _| {},
    )
    .await?;
    let body = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
    fresh.finish(axum::http::StatusCode::OK, body).await
}
