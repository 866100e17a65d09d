//! `GET /v1/jobs/{id}`: a job's status, attempts with their errors,
//! timings and SLA.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::problem::ApiError;
use crate::store::jobs::{self, AttemptView, JobView};
use crate::store::tokens::Role;

#[derive(Serialize, utoipa::ToSchema)]
pub struct JobResponse {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    job: JobView,
    #[schema(value_type = Vec<Object>)]
    attempt_log: Vec<AttemptView>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobResponse), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobResponse>, ApiError> {
    caller.require(&[Role::Portal, Role::Operator])?;
    let not_found = || ApiError::NotFound(format!("no job {id}"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let (job, attempt_log) = jobs::find_view(&state.pool, uuid)
        .await?
        .ok_or_else(not_found)?;
    if !caller.can_see(job.partner_id.as_deref()) {
        return Err(not_found());
    }
    Ok(Json(JobResponse { job, attempt_log }))
}
