//! Issuing the pending keys of a request, and the mail that tells the
//! order's contact about them. Shared by the new-order and addition
//! workers; all of it runs inside the job's transaction.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::certificate::{CertificateClaims, Signer};
use super::orders::{self, OrderChange};
use super::vendor::VendorAdapter;
use crate::job::JobError;
use crate::mail::Locale;
use crate::mail::message::Attachment;
use crate::mail::queue::{MailRequest, Mailer, queue_mail};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses::{self, Completion, LicenseRow, LicenseStatus, OrderRow};

pub fn certificate_for(
    signer: &Signer,
    order: &OrderRow,
    vendor_order_id: &str,
    license: &LicenseRow,
    key: &str,
    vm_count: Option<i32>,
    issued_at: DateTime<Utc>,
) -> String {
    signer.sign(&CertificateClaims {
        key: key.to_owned(),
        order_id: order.id,
        vendor_order_id: vendor_order_id.to_owned(),
        usage: license.usage.clone(),
        vm_count,
        issued_at,
    })
}

/// The keys a job is to issue: the request's licenses, read under the
/// order's lock, and what their certificates name.
pub struct Issue<'a> {
    pub order: &'a OrderRow,
    pub vendor_order_id: &'a str,
    pub licenses: Vec<LicenseRow>,
    pub job: &'a JobRow,
}

/// Fills every pending license of the request with a key and certificate,
/// activates a new order (`activate_with`), closes the request and records
/// `change`, in one statement; returns all of the request's licenses as
/// stored.
pub async fn issue_and_complete(
    signer: &Signer,
    vendor: &dyn VendorAdapter,
    tx: &mut Tx<'_>,
    issue: Issue<'_>,
    completion: Completion<'_>,
    change: impl FnOnce(usize) -> OrderChange<'static>,
) -> Result<Vec<LicenseRow>, JobError> {
    let Issue {
        order,
        vendor_order_id,
        licenses: mut rows,
        job,
    } = issue;
    let now = completion.now;
    let mut keys = Vec::new();
    for license in rows.iter().filter(|l| l.status == LicenseStatus::Pending) {
        let key = vendor.issue_key(order.id, license.id).await?;
        let certificate = certificate_for(
            signer,
            order,
            vendor_order_id,
            license,
            key.as_str(),
            license.vm_count,
            now,
        );
        keys.push(licenses::NewKey {
            license_id: license.id,
            key: key.as_str().to_owned(),
            certificate,
        });
    }
    let event = orders::audit_event(order, job, change(rows.len()), now);
    let request_id = completion.request_id;
    let filled = licenses::issue_and_complete(tx, &keys, completion, &event).await?;
    if filled < keys.len() {
        // The order's lock keeps the rows as read; should a row not have
        // been pending after all, read them again rather than guess.
        return Ok(licenses::licenses_of_request(tx, request_id).await?);
    }
    for (license, new) in rows
        .iter_mut()
        .filter(|l| l.status == LicenseStatus::Pending)
        .zip(keys)
    {
        license.status = LicenseStatus::Issued;
        license.key = Some(new.key);
        license.certificate = Some(new.certificate);
        license.issued_at = Some(now);
    }
    Ok(rows)
}

/// The certificates of `licenses`, one attachment for the lot.
pub fn certificates_attachment(licenses: &[LicenseRow]) -> Attachment {
    let content = licenses
        .iter()
        .filter_map(|l| l.certificate.as_deref())
        .collect::<Vec<_>>()
        .join("\n");
    Attachment {
        filename: "license-certificates.txt".into(),
        content_type: "text/plain; charset=utf-8".into(),
        content: content + "\n",
    }
}

/// Keys just issued for one request of an order.
pub struct Issued<'a> {
    pub order: &'a OrderRow,
    pub vendor_order_id: &'a str,
    pub request: &'a licenses::RequestRow,
    pub licenses: &'a [LicenseRow],
}

/// Queues the "keys issued" mail for a request (`template` tells a new
/// order from an addition). The cause is the request: one mail per request.
pub async fn queue_issued_mail(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    template: &str,
    issued: Issued<'_>,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let Issued {
        order,
        vendor_order_id,
        request,
        licenses: keys,
    } = issued;
    let licenses: Vec<_> = keys
        .iter()
        .map(|l| json!({ "key": l.key, "usage": l.usage, "vm_count": l.vm_count }))
        .collect();
    let context = json!({
        "order_id": order.id,
        "vendor_order_id": vendor_order_id,
        "customer_id": order.customer_id,
        "contact_name": order.contact_name,
        "usage": order.usage,
        "licenses": licenses,
        "sla_met": now <= request.sla_deadline,
    });
    queue_mail(
        mailer,
        tx,
        MailRequest {
            cause: format!("{template}:{}", request.id),
            template,
            locale: Locale::parse(&order.contact_locale),
            to: &order.contact_email,
            to_name: Some(&order.contact_name),
            context,
            attachments: vec![certificates_attachment(keys)],
            partner_id: Some(&order.partner_id),
        },
        now,
    )
    .await
    .map(drop)
}
