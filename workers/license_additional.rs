//! `license.additional`: issues more keys on an active order (SLA 30 min)
//! and queues the "licenses added" mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::job::{JobArgs, JobError, JobKind, StillNeeded};
use crate::licensing::issuance;
use crate::licensing::orders::{self, LicenseJob, OrderChange};
use crate::runtime::{JobContext, Worker};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses;

/// The args of `license.additional`: the order and the request for more keys.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseAdditionalArgs(pub LicenseJob);

impl JobArgs for LicenseAdditionalArgs {
    const KIND: JobKind = JobKind::LicenseAdditional;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseAdditional: JobKind = JobKind::new("license.additional");
}

pub struct LicenseAdditional;

#[async_trait]
impl Worker for LicenseAdditional {
    type Args = LicenseAdditionalArgs;

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
        LicenseAdditionalArgs(args): LicenseAdditionalArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let Some((start, request)) = orders::load_for_issue(tx, args).await? else {
            return Ok(());
        };
        let order = start.order;
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
            licenses::Completion {
                order_id,
                request_id,
                activate_with: None,
                now,
            },
            |keys_issued| OrderChange {
                action: "licenses.issued",
                from: None,
                to: None,
                detail: serde_json::json!({ "request_id": request_id, "keys_issued": keys_issued }),
            },
        )
        .await?;
        issuance::queue_issued_mail(
            &ctx.mailer,
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
