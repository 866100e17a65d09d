//! Operator routes: the audit trail (`GET /v1/ops/audit`), queue figures
//! (`GET /v1/ops/queues`), dead letters (`GET /v1/ops/dead-letters`) and
//! their replay (`POST /v1/ops/dead-letters/replay`, audited with the token)
//! and SLA attainment (`GET /v1/ops/sla`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::problem::ApiError;
use axum::response::{IntoResponse, Response};

use crate::store::audit;
use crate::store::dead_letters::{self, DeadLetterFilter, Replayed};
use crate::store::tokens::Role;

/// A page size as documented: 100 when absent, else 1 to 1000. Out of
/// range is a 400, not a silent clamp, so the caller learns its page is
/// not the size it asked for.
fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(100),
        Some(limit @ 1..=1000) => Ok(limit),
        Some(_) => Err(ApiError::field("limit", "1 to 1000")),
    }
}

/// The query string, or a 400 problem naming what is wrong with it.
fn parsed<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|e| ApiError::BadRequest {
            slug: "bad-query",
            detail: e.body_text(),
        })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events of this entity (an order id, say).
    pub entity_id: Option<Uuid>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events older than this one (an event `id`): the cursor the
    /// `Link: <…>; rel="next"` header of a full page carries.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// At most this many events (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/ops/audit", tag = "operators", params(AuditQuery),
    responses((status = 200, description = "audit events, newest first; a full page has a Link header to the next (older) one"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let query = parsed(query)?;
    let limit = page_limit(query.limit)?;
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::field("before", "an event id, 1 or more"));
    }
    let events = audit::newest_first(
        &state.pool,
        query.entity_id,
        query.since,
        query.before,
        limit,
    )
    .await?;
    let filters = [
        ("entity_id", query.entity_id.map(|id| id.to_string())),
        ("since", query.since.map(rfc3339)),
    ];
    Ok(page(
        "/v1/ops/audit",
        events,
        limit,
        |e| e.id.to_string(),
        &filters,
    ))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A list page, newest first; a full one carries `Link: <…>; rel="next"`
/// (RFC 8288) to the older rows after its last, with the same filters.
fn page<T: serde::Serialize>(
    path: &str,
    rows: Vec<T>,
    limit: i64,
    cursor: impl Fn(&T) -> String,
    filters: &[(&str, Option<String>)],
) -> Response {
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == limit)
        .map(|oldest| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("before", &cursor(oldest));
            query.append_pair("limit", &limit.to_string());
            for (name, value) in filters {
                if let Some(value) = value {
                    query.append_pair(name, value);
                }
            }
            format!("<{path}?{}>; rel=\"next\"", query.finish())
        });
    let mut response = Json(rows).into_response();
    if let Some(link) = next.and_then(|link| axum::http::HeaderValue::from_str(&link).ok()) {
        response
            .headers_mut()
            .insert(axum::http::header::LINK, link);
    }
    response
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
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only this job kind.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub kind: Option<String>,
    /// Only those since this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Include dead letters already replayed.
    #[serde(default)]
    pub include_replayed: bool,
    /// Only those older than this dead letter (its `id`): the cursor the
    /// `Link: <…>; rel="next"` header of a full page carries.
    pub before: Option<Uuid>,
    /// At most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/ops/dead-letters", tag = "operators", params(DeadLetterQuery),
    responses((status = 200, description = "dead letters, newest first, with reason, attempts and job state; a full page has a Link header to the next (older) one"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let query = parsed(query)?;
    let limit = page_limit(query.limit)?;
    if let Some(kind) = &query.kind
        && !super::body::is_identifier(kind)
    {
        return Err(ApiError::field("kind", "a job kind, e.g. mail.send"));
    }
    let filter = DeadLetterFilter {
        kind: query.kind.as_deref(),
        since: query.since,
        ids: &[],
        replayed: if query.include_replayed {
            Replayed::Either
        } else {
            Replayed::No
        },
        limit,
        before: query.before,
    };
    let letters = dead_letters::list(&state.pool, &filter).await?;
    let filters = [
        ("kind", query.kind.clone()),
        (
            "include_replayed",
            query.include_replayed.then(|| "true".to_owned()),
        ),
        ("since", query.since.map(rfc3339)),
    ];
    Ok(page(
        "/v1/ops/dead-letters",
        letters,
        limit,
        |d| d.id.to_string(),
        &filters,
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
    let fresh = super::idempotency::begin(
        &state,
        &caller,
        &headers,
        "POST /v1/ops/dead-letters/replay",
        &body,
    )
    .await?;
    let report = crate::ops::replay::replay_as(
        &state.pool,
        &state.settings,
        state.clock,
        &caller.0,
        request.kind.as_deref(),
        &request.ids,
        request.dry_run,
    )
    .await?;
    let body = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
    fresh.finish(axum::http::StatusCode::OK, body).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SlaQuery {
    /// Count the requests accepted within this long before now, e.g. `24h`
    /// or `7d` (default `ops.sla_window`).
    pub window: Option<String>,
}

#[utoipa::path(get, path = "/v1/ops/sla", tag = "operators", params(SlaQuery),
    responses((status = 200, body = crate::ops::sla::SlaReport,
               description = "attainment per portal and kind (met, breached, open, p50/p95/p99 seconds to done) and open breaches"),
              (status = 400, body = super::problem::Problem), (status = 403, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn sla(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<SlaQuery>, QueryRejection>,
) -> Result<Json<crate::ops::sla::SlaReport>, ApiError> {
    caller.require(&[Role::Operator])?;
    let query = parsed(query)?;
    let window = match query.window.as_deref() {
        None => state.settings.ops.sla_window,
        Some(text) => parse_window(text)?,
    };
    let now = state.clock.now();
    Ok(Json(
        crate::ops::sla::report(&state.pool, now, window).await?,
    ))
}

/// A window between a minute and a year, in humantime's notation.
fn parse_window(text: &str) -> Result<std::time::Duration, ApiError> {
    let bad = |why: String| ApiError::BadRequest {
        slug: "bad-query",
        detail: format!("window {text:?}: {why}"),
    };
    let window = humantime::parse_duration(text).map_err(|e| bad(e.to_string()))?;
    if window < std::time::Duration::from_secs(60)
        || window > std::time::Duration::from_secs(366 * 86_400)
    {
        return Err(bad("must be between 1m and 366d".to_owned()));
    }
    Ok(window)
}
