//! Operator routes. `GET /v1/ops/audit`: the audit trail, for one entity
//! or from an instant.

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
