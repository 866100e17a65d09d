//! `license.new`: obtains the vendor order id, issues the requested keys,
//! moves the order `preparing → active`, closes the SLA clock and queues
//! the "keys issued" mail.

use async_trait::async_trait;

use super::LicenseJobPayload;
use crate::job::{JobError, JobKind};
use crate::licensing::issuance;
use crate::runtime::{JobContext, JobHandler, payload};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses;

pub struct LicenseNew;

#[async_trait]
impl JobHandler for LicenseNew {
    fn kind(&self) -> JobKind {
        JobKind::LicenseNew
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let LicenseJobPayload {
            order_id,
            request_id,
        } = payload(job)?;
        let order = licenses::lock_order(tx, order_id)
            .await?
            .ok_or_else(|| JobError::fatal(format!("license order {order_id} does not exist")))?;
        let request = licenses::find_request(tx, request_id)
            .await?
            .ok_or_else(|| {
                JobError::fatal(format!("license request {request_id} does not exist"))
            })?;
        if request.status == "done" {
            return Ok(());
        }
        let vendor_order_id = match &order.vendor_order_id {
            Some(id) => id.clone(),
            None => ctx.vendor.create_order(order.id).await?,
        };
        let now = ctx.clock.now();
        let issued =
            issuance::issue_pending_keys(ctx, tx, &order, &vendor_order_id, request_id, now)
                .await?;
        licenses::activate_order(tx, order.id, &vendor_order_id, now).await?;
        licenses::complete_request(tx, request_id, now).await?;
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
