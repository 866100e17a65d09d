//! `license.additional`: issues more keys on an active order (SLA 30 min)
//! and queues the "licenses added" mail.

use async_trait::async_trait;

use crate::job::{JobError, JobKind};
use crate::licensing::issuance;
use crate::runtime::{JobContext, JobHandler};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses;

pub struct LicenseAdditional;

#[async_trait]
impl JobHandler for LicenseAdditional {
    fn kind(&self) -> JobKind {
        JobKind::LicenseAdditional
    }

    fn batches(&self) -> bool {
        true
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let Some((order, request)) = super::load_license_job(tx, job).await? else {
            return Ok(());
        };
        let (order_id, request_id) = (order.id, request.id);
        let (Some(vendor_order_id), licenses::OrderStatus::Active) =
            (order.vendor_order_id.clone(), order.status)
        else {
            return Err(JobError::fatal(format!(
                "license order {order_id} is {}, so no licenses can be added",
                order.status
            )));
        };
        let now = ctx.clock.now();
        let issued =
            issuance::issue_pending_keys(ctx, tx, &order, &vendor_order_id, request_id, now)
                .await?;
        licenses::complete_request(tx, request_id, now).await?;
        let change = super::OrderChange {
            action: "licenses.issued",
            from: None,
            to: None,
            detail: serde_json::json!({ "request_id": request_id, "keys_issued": issued.len() }),
        };
        super::audit_order(tx, &order, job, change, now).await?;
        issuance::queue_issued_mail(
            ctx,
            tx,
            "license_added",
            issuance::Issued {
                order: &order,
                vendor_order_id: &vendor_order_id,
                request: &request,
                licenses: &issued,
            },
            now,
        )
        .await
    }
}
