//! The workers: one module per job kind, each a `JobHandler`.

pub mod license_additional;
pub mod license_new;
pub mod license_order_revoke;
pub mod license_revoke;
pub mod license_vm_count;
pub mod mail_send;
pub mod number_release;
pub mod role_cleanup;
pub mod transfer_process;
pub mod trial_notices;
pub mod trial_purge;

use std::sync::Arc;

use crate::job::{JobError, JobKind};
use crate::runtime::JobHandler;
use crate::store::jobs::JobRow;
use crate::store::licenses::{self, OrderRow, RequestRow, RequestStatus};
use crate::store::{Tx, audit};

/// The handler of each kind.
pub fn handler(kind: JobKind) -> Arc<dyn JobHandler> {
    match kind {
        JobKind::LicenseNew => Arc::new(license_new::LicenseNew),
        JobKind::LicenseAdditional => Arc::new(license_additional::LicenseAdditional),
        JobKind::LicenseVmCount => Arc::new(license_vm_count::LicenseVmCount),
        JobKind::LicenseRevoke => Arc::new(license_revoke::LicenseRevoke),
        JobKind::LicenseOrderRevoke => Arc::new(license_order_revoke::LicenseOrderRevoke),
        JobKind::TransferProcess => Arc::new(transfer_process::TransferProcess),
        JobKind::RoleCleanup => Arc::new(role_cleanup::RoleCleanup),
        JobKind::TrialNotices => Arc::new(trial_notices::TrialNotices),
        JobKind::TrialPurge => Arc::new(trial_purge::TrialPurge),
        JobKind::NumberRelease => Arc::new(number_release::NumberRelease),
        JobKind::MailSend => Arc::new(mail_send::MailSend),
    }
}

/// Payload of the license jobs: the order and the change request.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct LicenseJobPayload {
    pub order_id: uuid::Uuid,
    pub request_id: uuid::Uuid,
}

/// Locks the job's order and reads its request; `None` when the request
/// is already done (a redelivery after the work committed).
async fn load_license_job(
    tx: &mut Tx<'_>,
    job: &JobRow,
) -> Result<Option<(OrderRow, RequestRow)>, JobError> {
    let LicenseJobPayload {
        order_id,
        request_id,
    } = crate::runtime::payload(job)?;
    let (order, request) = licenses::lock_order_with_request(tx, order_id, request_id)
        .await?
        .ok_or_else(|| JobError::fatal(format!("license order {order_id} does not exist")))?;
    let request = request.ok_or_else(|| {
        JobError::fatal(format!(
            "license request {request_id} does not exist on order {order_id}"
        ))
    })?;
    Ok((request.status != RequestStatus::Done).then_some((order, request)))
}

/// Records a change of the job's order in the audit trail, crediting the
/// token that asked for it and the job that did it.
async fn audit_order(
    tx: &mut Tx<'_>,
    order: &OrderRow,
    job: &JobRow,
    change: OrderChange<'_>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), JobError> {
    let event = audit::AuditEvent {
        at,
        entity_type: "license_order",
        entity_id: order.id,
        action: change.action,
        from_state: change.from,
        to_state: change.to,
        token_id: job.token_id,
        job_id: Some(job.id),
        detail: change.detail,
    };
    audit::record(tx, event).await?;
    Ok(())
}

struct OrderChange<'a> {
    action: &'static str,
    from: Option<&'a str>,
    to: Option<&'a str>,
    detail: serde_json::Value,
}
