//! `license.vm_count`: raises the VM count of a hypervisor key, re-signs
//! its certificate and queues the "VM count changed" mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::job::{JobArgs, JobError, JobKind, StillNeeded};
use crate::licensing::changes::ChangeJob;
use crate::licensing::issuance;
use crate::licensing::orders::{self, LicenseJob, OrderChange};
use crate::mail::Locale;
use crate::mail::contexts::{Content, VmCountChanged};
use crate::mail::queue::{MailRequest, queue_mail};
use crate::runtime::{Batching, JobContext, Worker};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses::{self, RequestKind};

/// The args of `license.vm_count`: the order and the VM-count request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseVmCountArgs(pub LicenseJob);

impl JobArgs for LicenseVmCountArgs {
    const KIND: JobKind = JobKind::LicenseVmCount;
}

impl ChangeJob for LicenseVmCountArgs {
    const REQUEST: RequestKind = RequestKind::VmCount;

    fn for_request(job: LicenseJob) -> Self {
        LicenseVmCountArgs(job)
    }
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseVmCount: JobKind = JobKind::new("license.vm_count");
}

pub struct LicenseVmCount;

#[async_trait]
impl Worker for LicenseVmCount {
    type Args = LicenseVmCountArgs;

    fn batching(&self) -> Batching {
        Batching::Savepoints
    }

    async fn still_needed(&self, tx: &mut Tx<'_>, args: &Self::Args) -> sqlx::Result<StillNeeded> {
        orders::request_still_needed(tx, args.0).await
    }

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        LicenseVmCountArgs(args): LicenseVmCountArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let Some((order, request)) = orders::load(tx, args).await? else {
            return Ok(());
        };
        let request_id = request.id;
        let (Some(license_id), Some(vm_count)) = (request.license_id, request.vm_count) else {
            return Err(JobError::fatal(
                "a VM-count request names no license and count",
            ));
        };
        let license = licenses::find_license(tx, license_id)
            .await?
            .ok_or_else(|| JobError::fatal(format!("license {license_id} does not exist")))?;
        let (Some(vendor_order_id), Some(key), Some(previous)) = (
            order.vendor_order_id.clone(),
            license.key.clone(),
            license.vm_count,
        ) else {
            return Err(JobError::fatal(format!(
                "license {license_id} is not an issued hypervisor key of an active order"
            )));
        };
        let now = ctx.clock.now();
        let certificate = issuance::certificate_for(
            &ctx.signer,
            &order,
            &vendor_order_id,
            &license,
            &key,
            Some(vm_count),
            now,
        );
        licenses::set_vm_count(tx, license_id, vm_count, &certificate).await?;
        licenses::complete_request(tx, request_id, now).await?;
        let change = OrderChange {
            action: "vm_count.raised",
            from: None,
            to: None,
            detail: json!({ "request_id": request_id, "license_id": license_id, "from": previous, "to": vm_count }),
        };
        orders::audit_order(tx, &order, job, change, now).await?;
        let mut updated = license.clone();
        updated.certificate = Some(certificate);
        queue_mail(
            &ctx.mailer,
            tx,
            MailRequest {
                cause: format!("vm_count_changed:{request_id}"),
                content: Content::of(&VmCountChanged {
                    order_id: order.id,
                    vendor_order_id: &vendor_order_id,
                    contact_name: &order.contact_name,
                    key: &key,
                    previous_vm_count: previous,
                    vm_count,
                }),
                locale: Locale::parse(&order.contact_locale),
                to: &order.contact_email,
                to_name: Some(&order.contact_name),
                attachments: vec![issuance::certificates_attachment(&[updated])],
                partner_id: Some(&order.partner_id),
            },
            now,
        )
        .await
        .map(drop)
    }
}
