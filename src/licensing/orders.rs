//! What the license workers share about the order a job changes: the args
//! every license kind carries, loading the order and request under lock,
//! auditing the change, and the replay re-check.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::job::{JobError, StillNeeded};
use crate::store::jobs::JobRow;
use crate::store::licenses::{self, JobStart, JobTarget, OrderRow, RequestRow, RequestStatus};
use crate::store::{Tx, audit};

/// The args of every license kind: the order and its change request. Each
/// kind wraps it in its own args type (`#[serde(transparent)]`, so the
/// payload is this object), which is what ties the payload to the kind.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LicenseJob {
    pub order_id: Uuid,
    pub request_id: Uuid,
}

impl LicenseJob {
    fn target(self) -> JobTarget {
        JobTarget {
            order_id: self.order_id,
            request_id: self.request_id,
        }
    }
}

/// What a license job found under its order's lock: the order and its
/// request (`None` when the request is done already: a redelivery after
/// the work committed), or why it cannot run at all.
pub type Loaded<T> = Result<Option<T>, JobError>;

/// Locks the job's order and reads its request.
pub async fn load(
    tx: &mut Tx<'_>,
    job: LicenseJob,
) -> Result<Option<(OrderRow, RequestRow)>, JobError> {
    let loaded = start_all(tx, &[job], false)
        .await?
        .pop()
        .unwrap_or(Ok(None))?;
    Ok(loaded.map(|(start, request)| (start.order, request)))
}

/// [`load`] for the jobs that issue keys, for several jobs at once: the
/// requests' licenses come in the same round trip. One result per job,
/// in order.
pub async fn load_for_issue(
    tx: &mut Tx<'_>,
    jobs: &[LicenseJob],
) -> sqlx::Result<Vec<Loaded<(JobStart, RequestRow)>>> {
    start_all(tx, jobs, true).await
}

async fn start_all(
    tx: &mut Tx<'_>,
    jobs: &[LicenseJob],
    with_licenses: bool,
) -> sqlx::Result<Vec<Loaded<(JobStart, RequestRow)>>> {
    let targets: Vec<JobTarget> = jobs.iter().map(|job| job.target()).collect();
    let starts = licenses::lock_orders_for_jobs(tx, &targets, with_licenses).await?;
    let loaded = jobs.iter().zip(starts).map(|(job, start)| {
        let mut start = start.ok_or_else(|| missing_order(job.order_id))?;
        let request = start
            .request
            .take()
            .ok_or_else(|| missing_request(job.order_id, job.request_id))?;
        Ok((request.status != RequestStatus::Done).then_some((start, request)))
    });
    Ok(loaded.collect())
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
