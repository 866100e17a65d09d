//! The workers: one module per job kind, each a `JobHandler`.

pub mod license_additional;
pub mod license_new;
pub mod license_vm_count;
pub mod mail_send;

use std::sync::Arc;

use crate::job::JobKind;
use crate::runtime::JobHandler;

/// The handler of each kind.
pub fn handler(kind: JobKind) -> Arc<dyn JobHandler> {
    match kind {
        JobKind::LicenseNew => Arc::new(license_new::LicenseNew),
        JobKind::LicenseAdditional => Arc::new(license_additional::LicenseAdditional),
        JobKind::LicenseVmCount => Arc::new(license_vm_count::LicenseVmCount),
        JobKind::MailSend => Arc::new(mail_send::MailSend),
    }
}

/// Payload of the license jobs: the order and the change request.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
pub struct LicenseJobPayload {
    pub order_id: uuid::Uuid,
    pub request_id: uuid::Uuid,
}
