//! What the license workers share about the order a job changes: the args
//! every license kind carries, loading the order and request under lock,
//! auditing the change, and the replay re-check.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::{JobError, StillNeeded};
use crate::store::jobs::JobRow;
use crate::store::licenses::{self, JobStart, OrderRow, RequestRow, RequestStatus};
use crate::store::{Tx, audit};

/// The args of every license kind: the order and its change request. Each
/// kind wraps it in its own args type (`#[serde(transparent)]`, so the
/// payload is this object), which is what ties the payload to the kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LicenseJob {
    pub order_id: Uuid,
    pub request_id: Uuid,
}

/// Locks the job's order and reads its request; `None` when the request
/// is already done (a redelivery after the work committed).
pub async fn load(
    tx: &mut Tx<'_>,
    job: LicenseJob,
) -> Result<Option<(OrderRow, RequestRow)>, JobError> {
    let loaded = start(tx, job, false).await?;
    Ok(loaded.map(|(start, request)| (start.order, request)))
}

/// [`load`] for the jobs that issue keys: the request's licenses come
/// in the same round trip.
pub async fn load_for_issue(
    tx: &mut Tx<'_>,
    job: LicenseJob,
) -> Result<Option<(JobStart, RequestRow)>, JobError> {
    start(tx, job, true).await
}

async fn start(
    tx: &mut Tx<'_>,
    job: LicenseJob,
    with_licenses: bool,
) -> Result<Option<(JobStart, RequestRow)>, JobError> {
    let LicenseJob {
        order_id,
        request_id,
    } = job;
    let mut start = licenses::lock_order_for_job(tx, order_id, request_id, with_licenses)
        .await?
        .ok_or_else(|| missing_order(order_id))?;
    let request = start
        .request
        .take()
        .ok_or_else(|| missing_request(order_id, request_id))?;
    Ok((request.status != RequestStatus::Done).then_some((start, request)))
}

fn missing_order(order_id: Uuid) -> JobError {
    JobError::fatal(format!("license order {order_id} does not exist"))
}

fn missing_request(order_id: Uuid, request_id: Uuid) -> JobError {
    JobError::fatal(format!(
        "license request {request_id} does not exist on order {order_id}"
    ))
}

/// A change of an order, for the audit trail.
pub struct OrderChange<'a> {
    pub action: &'static str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// Records a change of the job's order in the audit trail, crediting the
/// token that asked for it and the job that did it.
pub async fn audit_order(
    tx: &mut Tx<'_>,
    order: &OrderRow,
    job: &JobRow,
    change: OrderChange<'_>,
    at: DateTime<Utc>,
) -> Result<(), JobError> {
    audit::record(tx, audit_event(order, job, change, at)).await?;
    Ok(())
}

/// The audit event of a change of the job's order.
pub fn audit_event<'a>(
    order: &OrderRow,
    job: &JobRow,
    change: OrderChange<'a>,
    at: DateTime<Utc>,
) -> audit::AuditEvent<'a> {
    audit::AuditEvent {
        at,
        entity_type: "license_order",
        entity_id: order.id,
        action: change.action,
        from_state: change.from,
        to_state: change.to,
        token_id: job.token_id,
        job_id: Some(job.id),
        detail: change.detail,
    }
}

/// A replay of a license job is pointless once its request is done.
pub async fn request_still_needed(tx: &mut Tx<'_>, job: LicenseJob) -> sqlx::Result<StillNeeded> {
    let requests = licenses::list_requests(&mut **tx, job.order_id).await?;
    let done = requests
        .iter()
        .any(|r| r.id == job.request_id && r.status == RequestStatus::Done);
    Ok(if done {
        StillNeeded::No("its license request is already done".to_owned())
    } else {
        StillNeeded::Yes
    })
}
