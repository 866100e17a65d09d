//! `license.order_revoke`: revokes the vendor order id of an order whose
//! last key was cancelled, sets the order `revoked`, and mails the order's
//! contact and the partner's admin. It re-checks under the order's lock
//! that no live key remains: an order with a live key is never revoked.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::job::{JobArgs, JobError, JobKind};
use crate::licensing::orders::{self, LicenseJob, OrderChange};
use crate::mail::Locale;
use crate::mail::contexts::{Content, OrderRevoked};
use crate::mail::queue::{MailRequest, queue_mail};
use crate::runtime::{JobContext, Worker};
use crate::store::jobs::JobRow;
use crate::store::{Tx, licenses};

/// The args of `license.order_revoke`: the order and the cancellation that emptied it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseOrderRevokeArgs(pub LicenseJob);

impl JobArgs for LicenseOrderRevokeArgs {
    const KIND: JobKind = JobKind::LicenseOrderRevoke;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseOrderRevoke: JobKind = JobKind::new("license.order_revoke");
}

pub struct LicenseOrderRevoke;

#[async_trait]
impl Worker for LicenseOrderRevoke {
    type Args = LicenseOrderRevokeArgs;

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        LicenseOrderRevokeArgs(args): LicenseOrderRevokeArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let Some((order, request)) = orders::load(tx, args).await? else {
            return Ok(());
        };
        let now = ctx.clock.now();
        if order.status == licenses::OrderStatus::Revoked {
            licenses::complete_request(tx, request.id, now).await?;
            return Ok(());
        }
        let live = licenses::count_live_licenses(tx, order.id).await?;
        if live > 0 {
            return Err(JobError::fatal(format!(
                "license order {} still has {live} live keys, so its vendor order is not revoked",
                order.id
            )));
        }
        let vendor_order_id = order.vendor_order_id.clone().ok_or_else(|| {
            JobError::fatal(format!("license order {} has no vendor order id", order.id))
        })?;
        ctx.vendor.revoke_order(order.id, &vendor_order_id).await?;
        licenses::revoke_order(tx, order.id, now).await?;
        licenses::complete_request(tx, request.id, now).await?;
        let change = OrderChange {
            action: "order.revoked",
            from: Some("active"),
            to: Some("revoked"),
            detail: json!({ "request_id": request.id, "vendor_order_id": vendor_order_id }),
        };
        orders::audit_order(tx, &order, job, change, now).await?;

        let mut recipients = vec![(
            "contact",
            order.contact_email.clone(),
            Locale::parse(&order.contact_locale),
            order.contact_name.clone(),
            false,
        )];
        if let Some((admin_email, locale)) = licenses::partner_admin(tx, &order.partner_id).await? {
            recipients.push((
                "partner",
                admin_email,
                Locale::parse(&locale),
                order.partner_id.clone(),
                true,
            ));
        }
        for (role, to, locale, name, for_partner) in recipients {
            let mail = MailRequest {
                cause: format!("order_revoked:{}:{role}", order.id),
                content: Content::of(&OrderRevoked {
                    order_id: order.id,
                    vendor_order_id: &vendor_order_id,
                    customer_id: &order.customer_id,
                    recipient_name: &name,
                    for_partner,
                }),
                locale,
                to: &to,
                to_name: (!for_partner).then_some(name.as_str()),
                attachments: Vec::new(),
                partner_id: Some(&order.partner_id),
            };
            queue_mail(&ctx.mailer, tx, mail, now).await?;
        }
        Ok(())
    }
}
