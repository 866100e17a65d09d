//! `license.revoke`: revokes the keys a cancellation names, at once, and
//! mails the order's contact. When no live key remains, it hands the order
//! to `license.order_revoke`; the order is revoked by exactly one job.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::license_order_revoke::LicenseOrderRevokeArgs;
use crate::enqueue::{Opts, enqueue_with_id};
use crate::job::{JobArgs, JobError, JobKind, StillNeeded};
use crate::licensing::changes::ChangeJob;
use crate::licensing::orders::{self, LicenseJob, OrderChange};
use crate::mail::Locale;
use crate::mail::contexts::{Content, KeysCancelled};
use crate::mail::queue::{MailRequest, queue_mail};
use crate::runtime::{Batching, JobContext, Worker};
use crate::store::jobs::JobRow;
use crate::store::licenses::RequestKind;
use crate::store::{Tx, licenses};

/// The args of `license.revoke`: the order and the cancellation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseRevokeArgs(pub LicenseJob);

impl JobArgs for LicenseRevokeArgs {
    const KIND: JobKind = JobKind::LicenseRevoke;
}

impl ChangeJob for LicenseRevokeArgs {
    const REQUEST: RequestKind = RequestKind::Cancellation;

    fn for_request(job: LicenseJob) -> Self {
        LicenseRevokeArgs(job)
    }
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseRevoke: JobKind = JobKind::new("license.revoke");
}

pub struct LicenseRevoke;

#[async_trait]
impl Worker for LicenseRevoke {
    type Args = LicenseRevokeArgs;

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
        LicenseRevokeArgs(args): LicenseRevokeArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let Some((order, request)) = orders::load(tx, args).await? else {
            return Ok(());
        };
        let ids = request
            .license_ids
            .clone()
            .ok_or_else(|| JobError::fatal("a cancellation names no licenses"))?;
        for id in &ids {
            ctx.vendor.revoke_key(order.id, *id).await?;
        }
        let now = ctx.clock.now();
        let revoked = licenses::revoke_licenses(tx, &ids, now).await?;
        let remaining = licenses::count_live_licenses(tx, order.id).await?;
        let change = OrderChange {
            action: "licenses.revoked",
            from: None,
            to: None,
            detail: json!({
                "request_id": request.id,
                "license_ids": revoked.iter().map(|l| l.id).collect::<Vec<_>>(),
                "remaining": remaining,
            }),
        };
        orders::audit_order(tx, &order, job, change, now).await?;

        if remaining == 0 {
            // The cancellation stays in progress until the order itself is
            // revoked, so no change can slip in between.
            let revocation = Uuid::now_v7();
            if licenses::claim_revocation(tx, order.id, revocation).await? {
                let opts = Opts {
                    partner_id: Some(&order.partner_id),
                    token_id: job.token_id,
                    resource_type: "license_order",
                    resource_id: order.id,
                    sla_deadline: Some(request.sla_deadline),
                    max_attempts: ctx.settings.jobs.max_attempts,
                    now,
                };
                let args = LicenseOrderRevokeArgs(LicenseJob {
                    order_id: order.id,
                    request_id: request.id,
                });
                enqueue_with_id(tx, revocation, &args, opts).await?;
            }
        } else {
            licenses::complete_request(tx, request.id, now).await?;
        }

        let keys: Vec<_> = revoked.iter().filter_map(|l| l.key.as_deref()).collect();
        let mail = MailRequest {
            cause: format!("keys_cancelled:{}", request.id),
            content: Content::of(&KeysCancelled {
                order_id: order.id,
                vendor_order_id: order.vendor_order_id.as_deref(),
                contact_name: &order.contact_name,
                keys: &keys,
                remaining,
                order_revoked_next: remaining == 0,
            }),
            locale: Locale::parse(&order.contact_locale),
            to: &order.contact_email,
            to_name: Some(&order.contact_name),
            attachments: Vec::new(),
            partner_id: Some(&order.partner_id),
        };
        queue_mail(&ctx.mailer, tx, mail, now).await.map(drop)
    }
}
