//! `license.new`: obtains the vendor order id, issues the requested keys,
//! moves the order `preparing → active`, closes the SLA clock and queues
//! the "keys issued" mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::job::{JobArgs, JobError, JobKind, StillNeeded};
use crate::licensing::issuance;
use crate::licensing::orders::{self, LicenseJob, OrderChange};
use crate::runtime::{JobContext, Worker};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses::Completion;

/// The args of `license.new`: the order to activate and its first request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseNewArgs(pub LicenseJob);

impl JobArgs for LicenseNewArgs {
    const KIND: JobKind = JobKind::LicenseNew;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseNew: JobKind = JobKind::new("license.new");
}

pub struct LicenseNew;

#[async_trait]
impl Worker for LicenseNew {
    type Args = LicenseNewArgs;

    fn batches(&self) -> bool {
        true
    }

    async fn still_needed(&self, tx: &mut Tx<'_>, args: &Self::Args) -> sqlx::Result<StillNeeded> {
        orders::request_still_needed(tx, args.0).await
    }

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        LicenseNewArgs(args): LicenseNewArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let Some((start, request)) = orders::load_for_issue(tx, args).await? else {
            return Ok(());
        };
        let order = start.order;
        let request_id = request.id;
        let vendor_order_id = match &order.vendor_order_id {
            Some(id) => id.clone(),
            None => ctx.vendor.create_order(order.id).await?,
        };
        let now = ctx.clock.now();
        let issued = issuance::issue_and_complete(
            &ctx.signer,
            &*ctx.vendor,
            tx,
            issuance::Issue {
                order: &order,
                vendor_order_id: &vendor_order_id,
                licenses: start.licenses,
                job,
            },
            Completion {
                order_id: order.id,
                request_id,
                activate_with: Some(&vendor_order_id),
                now,
            },
            |keys_issued| OrderChange {
                action: "order.activated",
                from: Some("preparing"),
                to: Some("active"),
                detail: serde_json::json!({ "request_id": request_id, "keys_issued": keys_issued }),
            },
        )
        .await?;
        issuance::queue_issued_mail(
            &ctx.mailer,
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
