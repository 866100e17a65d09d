//! `license.revoke`: revokes the keys a cancellation names, at once, and
//! mails the order's contact. When no live key remains, it hands the order
//! to `license.order_revoke`; the order is revoked by exactly one job.

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use crate::job::{JobError, JobKind};
use crate::mail::Locale;
use crate::mail::queue::{MailRequest, queue_mail};
use crate::runtime::{JobContext, JobHandler};
use crate::store::jobs::{self, JobRow};
use crate::store::{Tx, licenses};

pub struct LicenseRevoke;

#[async_trait]
impl JobHandler for LicenseRevoke {
    fn kind(&self) -> JobKind {
        JobKind::LicenseRevoke
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
        let change = super::OrderChange {
            action: "licenses.revoked",
            from: None,
            to: None,
            detail: json!({
                "request_id": request.id,
                "license_ids": revoked.iter().map(|l| l.id).collect::<Vec<_>>(),
                "remaining": remaining,
            }),
        };
        super::audit_order(tx, &order, job, change, now).await?;

        if remaining == 0 {
            // The cancellation stays in progress until the order itself is
            // revoked, so no change can slip in between.
            let revocation = Uuid::now_v7();
            if licenses::claim_revocation(tx, order.id, revocation).await? {
                let new_job = jobs::NewJob {
                    kind: JobKind::LicenseOrderRevoke,
                    payload: json!({ "order_id": order.id, "request_id": request.id }),
                    partner_id: Some(&order.partner_id),
                    token_id: job.token_id,
                    resource_type: "license_order",
                    resource_id: order.id,
                    sla_deadline: Some(request.sla_deadline),
                };
                jobs::enqueue_with_id(tx, revocation, new_job, ctx.settings.jobs.max_attempts, now)
                    .await?;
            }
        } else {
            licenses::complete_request(tx, request.id, now).await?;
        }

        let keys: Vec<_> = revoked.iter().filter_map(|l| l.key.clone()).collect();
        let mail = MailRequest {
            cause: format!("keys_cancelled:{}", request.id),
            template: "keys_cancelled",
            locale: Locale::parse(&order.contact_locale),
            to: &order.contact_email,
            to_name: Some(&order.contact_name),
            context: json!({
                "order_id": order.id,
                "vendor_order_id": order.vendor_order_id,
                "contact_name": order.contact_name,
                "keys": keys,
                "remaining": remaining,
                "order_revoked_next": remaining == 0,
            }),
            attachments: Vec::new(),
            partner_id: Some(&order.partner_id),
        };
        queue_mail(&ctx.mailer, tx, mail, now).await.map(drop)
    }
}
