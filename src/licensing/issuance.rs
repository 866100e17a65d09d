//! Issuing the pending keys of requests, and the mails that tell the
//! orders' contacts about them. Shared by the new-order and addition
//! workers, for one job or a set of them; all of it runs inside the jobs'
//! transaction.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::certificate::{CertificateClaims, Signer};
use super::orders::{self, LicenseJob, OrderChange};
use super::vendor::VendorAdapter;
use crate::job::{JobError, SetOutcome};
use crate::mail::Locale;
use crate::mail::contexts::{Content, IssuedKey, IssuedKeys, LicenseAdded, LicenseIssued};
use crate::mail::handoff::Handoff;
use crate::mail::message::Attachment;
use crate::mail::queue::{MailRequest, Mailer, RenderedMail, queue_rendered, render_mail};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses::{self, Completion, LicenseRow, LicenseStatus, OrderRow, OrderStatus};

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

/// Which issuing job runs: a new order's first keys, or keys added to an
/// active order. They differ in where the vendor order id comes from,
/// what the audit trail and the mail say, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuing {
    NewOrder,
    Addition,
}

impl Issuing {
    /// The mail that lists the keys: issued, or added.
    fn mail(self, keys: IssuedKeys<'_>) -> Content {
        match self {
            Issuing::NewOrder => Content::of(&LicenseIssued(keys)),
            Issuing::Addition => Content::of(&LicenseAdded(keys)),
        }
    }

    /// The vendor order id the keys are issued under: a new order gets
    /// one from the vendor (once: a retry finds it stored), an addition
    /// needs the active order's.
    async fn vendor_order_id(
        self,
        vendor: &dyn VendorAdapter,
        order: &OrderRow,
    ) -> Result<String, JobError> {
        match (self, &order.vendor_order_id, order.status) {
            (Issuing::NewOrder, Some(id), _)
            | (Issuing::Addition, Some(id), OrderStatus::Active) => Ok(id.clone()),
            (Issuing::NewOrder, None, _) => Ok(vendor.create_order(order.id).await?),
            (Issuing::Addition, _, status) => Err(JobError::fatal(format!(
                "license order {} is {status}, so no licenses can be added",
                order.id
            ))),
        }
    }

    fn change(self, request_id: Uuid, keys_issued: usize) -> OrderChange<'static> {
        let detail = json!({ "request_id": request_id, "keys_issued": keys_issued });
        match self {
            Issuing::NewOrder => OrderChange {
                action: "order.activated",
                from: Some("preparing"),
                to: Some("active"),
                detail,
            },
            Issuing::Addition => OrderChange {
                action: "licenses.issued",
                from: None,
                to: None,
                detail,
            },
        }
    }
}

/// What issuing needs besides the database.
#[derive(Clone, Copy)]
pub struct Issuer<'a> {
    pub signer: &'a Signer,
    pub vendor: &'a dyn VendorAdapter,
    pub mailer: &'a Mailer,
    /// Where the mails' jobs go after the commit, when this process sends
    /// mail itself.
    pub handoff: &'a Handoff,
}

/// One job's keys, made and signed but not yet stored.
struct Made<'j> {
    slot: usize,
    job: &'j JobRow,
    order: OrderRow,
    request: licenses::RequestRow,
    vendor_order_id: String,
    /// All of the request's licenses, the pending ones filled in with
    /// `keys` as they will be stored.
    licenses: Vec<LicenseRow>,
    keys: Vec<licenses::NewKey>,
}

/// Issues the pending keys of each job's request, activates new orders,
/// closes the requests and queues the "keys issued" mails: the writes of
/// all the jobs go in three statements (lock, issue, mail). A job that
/// cannot be issued (no such order, a vendor error, a mail that does not
/// render) fails alone and writes nothing. One outcome per job, in order.
pub async fn issue(
    issuer: Issuer<'_>,
    tx: &mut Tx<'_>,
    issuing: Issuing,
    jobs: &[(&JobRow, LicenseJob)],
    now: DateTime<Utc>,
) -> SetOutcome {
    let args: Vec<LicenseJob> = jobs.iter().map(|&(_, args)| args).collect();
    let loaded = orders::load_for_issue(tx, &args).await?;
    let mut outcomes: Vec<Result<(), JobError>> = Vec::with_capacity(jobs.len());
    let mut made = Vec::with_capacity(jobs.len());
    for (slot, (&(job, _), loaded)) in jobs.iter().zip(loaded).enumerate() {
        let outcome = match loaded {
            Ok(Some((start, request))) => {
                make_keys(issuer, issuing, slot, job, start, request, now)
                    .await
                    .map(|keys| {
                        made.push(keys);
                    })
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        outcomes.push(outcome);
    }
    let mut fills = Vec::with_capacity(made.len());
    let mut mails = Vec::with_capacity(made.len());
    for keys in &made {
        match issued_mail(issuer.mailer, issuing, keys, now) {
            Ok(mail) => {
                fills.push(fill(issuing, keys, now));
                mails.push(mail);
            }
            Err(error) => outcomes[keys.slot] = Err(error),
        }
    }
    if fills.is_empty() {
        return Ok(outcomes);
    }
    let filled = licenses::issue_and_complete(tx, &fills).await?;
    let expected: usize = fills.iter().map(|f| f.keys.len()).sum();
    if filled != expected {
        // The orders' locks keep the rows as read: a row that was not
        // pending after all means a writer that skipped the lock. Nothing
        // of this stands; the next attempt reads again.
        return Err(JobError::Retryable(anyhow::anyhow!(
            "licenses changed under their order's lock: {filled} of {expected} keys filled"
        )));
    }
    queue_rendered(tx, &mails, issuer.handoff).await?;
    Ok(outcomes)
}

/// Gets the vendor order id and a signed key for every pending license of
/// the request; stores nothing.
async fn make_keys<'j>(
    issuer: Issuer<'_>,
    issuing: Issuing,
    slot: usize,
    job: &'j JobRow,
    start: licenses::JobStart,
    request: licenses::RequestRow,
    now: DateTime<Utc>,
) -> Result<Made<'j>, JobError> {
    let order = start.order;
    let vendor_order_id = issuing.vendor_order_id(issuer.vendor, &order).await?;
    let mut licenses = start.licenses;
    let mut keys = Vec::new();
    for license in licenses
        .iter_mut()
        .filter(|l| l.status == LicenseStatus::Pending)
    {
        let key = issuer.vendor.issue_key(order.id, license.id).await?;
        let certificate = certificate_for(
            issuer.signer,
            &order,
            &vendor_order_id,
            license,
            key.as_str(),
            license.vm_count,
            now,
        );
        license.status = LicenseStatus::Issued;
        license.key = Some(key.as_str().to_owned());
        license.certificate = Some(certificate.clone());
        license.issued_at = Some(now);
        keys.push(licenses::NewKey {
            license_id: license.id,
            key: key.as_str().to_owned(),
            certificate,
        });
    }
    Ok(Made {
        slot,
        job,
        order,
        request,
        vendor_order_id,
        licenses,
        keys,
    })
}

/// The writes that end one job: its keys, its request's completion and
/// its audit event.
fn fill<'a>(issuing: Issuing, made: &'a Made<'_>, now: DateTime<Utc>) -> licenses::Fill<'a> {
    let change = issuing.change(made.request.id, made.licenses.len());
    licenses::Fill {
        keys: &made.keys,
        completion: Completion {
            order_id: made.order.id,
            request_id: made.request.id,
            activate_with: (issuing == Issuing::NewOrder).then_some(made.vendor_order_id.as_str()),
            now,
        },
        event: orders::audit_event(&made.order, made.job, change, now),
    }
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

/// The "keys issued" mail of a request, rendered: one mail per request
/// (its cause), listing all of the request's keys.
fn issued_mail<'a>(
    mailer: &Mailer,
    issuing: Issuing,
    made: &'a Made<'_>,
    now: DateTime<Utc>,
) -> Result<RenderedMail<'a>, JobError> {
    let Made {
        order,
        request,
        vendor_order_id,
        licenses: keys,
        ..
    } = made;
    let licenses = keys
        .iter()
        .map(|l| IssuedKey {
            key: l.key.as_deref(),
            usage: &l.usage,
            vm_count: l.vm_count,
        })
        .collect();
    let content = issuing.mail(IssuedKeys {
        order_id: order.id,
        vendor_order_id,
        customer_id: &order.customer_id,
        contact_name: &order.contact_name,
        usage: &order.usage,
        licenses,
        sla_met: now <= request.sla_deadline,
    });
    render_mail(
        mailer,
        MailRequest {
            cause: format!("{}:{}", content.template(), request.id),
            content,
            locale: Locale::parse(&order.contact_locale),
            to: &order.contact_email,
            to_name: Some(&order.contact_name),
            attachments: vec![certificates_attachment(keys)],
            partner_id: Some(&order.partner_id),
        },
        now,
    )
}
