//! `license.new`: obtains the vendor order id, issues the requested keys,
//! moves the order `preparing → active`, closes the SLA clock and queues
//! the "keys issued" mail.

use async_trait::async_trait;

use crate::job::{JobError, JobKind};
use crate::licensing::issuance;
use crate::runtime::{JobContext, JobHandler};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses;

pub struct LicenseNew;

#[async_trait]
impl JobHandler for LicenseNew {
    fn kind(&self) -> JobKind {
        JobKind::LicenseNew
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
        let request_id = request.id;
        let vendor_order_id = match &order.vendor_order_id {
            Some(id) => id.clone(),
            None => ctx.vendor.create_order(order.id).await?,
        };
        let now = ctx.clock.now();
        let issued =
            issuance::issue_pending_keys(ctx, tx, &order, &vendor_order_id, request_id, now)
                .await?;
        licenses::activate_order(tx, order.id, request_id, &vendor_order_id, now).await?;
        let change = super::OrderChange {
            action: "order.activated",
            from: Some("preparing"),
            to: Some("active"),
            detail: serde_json::json!({ "request_id": request_id, "keys_issued": issued.len() }),
        };
        super::audit_order(tx, &order, job, change, now).await?;
        issuance::queue_issued_mail(
            ctx,
            tx,
            "license_issued",
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
