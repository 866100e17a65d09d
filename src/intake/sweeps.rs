//! `POST /v1/sweeps/{trial-notices|trial-purges|number-releases|sla-watch}`:
//! run a sweep now (scheduler or operator tokens). With `"dry_run": true`
//! it lists what would be done about each due item and changes nothing.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::body::{RawBody, parse_json};
use super::idempotency;
use super::problem::ApiError;
use crate::store::audit;
use crate::store::tokens::Role;
use crate::sweeps::{Sweep, SweepRequest, Trigger};

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepBody {
    /// List what would happen; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[utoipa::path(post, path = "/v1/sweeps/{sweep}", tag = "sweeps", request_body = SweepBody,
    params(("sweep" = String, Path, description = "trial-notices, trial-purges, number-releases or sla-watch"),
           ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 200, description = "the sweep's report: what is due (trials, or license requests near or past their SLA), jobs queued, and what each does"),
              (status = 403, body = super::problem::Problem), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Scheduler, Role::Operator])?;
    let sweep = Sweep::parse(&name).ok_or_else(|| {
        let known: Vec<_> = Sweep::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::NotFound(format!(
            "no sweep {name:?}; the sweeps are {}",
            known.join(", ")
        ))
    })?;
    let request: SweepBody = if body.is_empty() {
        SweepBody::default()
    } else {
        parse_json(&body)?
    };
    let route = format!("POST /v1/sweeps/{sweep}");
    let mut fresh = idempotency::begin(&state, &caller, &headers, &route, &body).await?;
    let sweep_request = SweepRequest {
        sweep,
        trigger: Trigger::Api,
        dry_run: request.dry_run,
        token_id: Some(caller.0.id),
    };
    let report = state.sweeper.run(&sweep_request, |_, _| {}).await?;
    if let Some(run_id) = report.run_id {
        let event = audit::AuditEvent {
            at: report.now,
            entity_type: "sweep",
            entity_id: run_id,
            action: "sweep.run",
            from_state: None,
            to_state: None,
            token_id: Some(caller.0.id),
            job_id: None,
            detail: json!({ "sweep": sweep, "dry_run": report.dry_run, "due": report.due,
                            "published": report.published }),
        };
        audit::record(&mut fresh.tx, event).await?;
    }
    let body = serde_json::to_value(&report).map_err(anyhow::Error::from)?;
    fresh.finish(StatusCode::OK, body).await
}
