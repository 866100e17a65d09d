//! The mails of a subscription transfer: the form's link and its return,
//! then each step of the ticket, to the customer and both partners.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::{MailContext, as_mail_time};

/// Who a ticket's mail is written to; it chooses the wording and marks
/// the recipient's own partner id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRole {
    Customer,
    /// The partner the subscriptions leave.
    Source,
    /// The partner they move to.
    Destination,
}

impl TransferRole {
    pub const ALL: [TransferRole; 3] = [Self::Customer, Self::Source, Self::Destination];

    /// The word the templates compare, also part of each mail's cause.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Source => "source",
            Self::Destination => "destination",
        }
    }
}

impl Serialize for TransferRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What every mail of a ticket shows.
#[derive(Clone, Serialize)]
pub struct TransferNotice<'a> {
    pub transfer_id: Uuid,
    pub customer_id: &'a str,
    pub source_partner_id: &'a str,
    pub destination_partner_id: &'a str,
    pub subscription_ids: &'a [&'a str],
    pub recipient_name: &'a str,
    pub recipient_role: TransferRole,
}

/// `transfer_submitted`: the ticket is accepted and will be processed.
#[derive(Serialize)]
#[serde(transparent)]
pub struct TransferSubmitted<'a>(pub TransferNotice<'a>);

impl MailContext for TransferSubmitted<'_> {
    const TEMPLATE: &'static str = "transfer_submitted";
}

/// `transfer_completed`: the subscriptions moved and the source's roles
/// are gone.
#[derive(Serialize)]
#[serde(transparent)]
pub struct TransferCompleted<'a>(pub TransferNotice<'a>);

impl MailContext for TransferCompleted<'_> {
    const TEMPLATE: &'static str = "transfer_completed";
}

/// `transfer_rejected`: a condition was not met; nothing changed.
#[derive(Serialize)]
pub struct TransferRejected<'a> {
    #[serde(flatten)]
    pub notice: TransferNotice<'a>,
    /// Which condition, in words the recipients can act on.
    pub reason: &'a str,
}

impl MailContext for TransferRejected<'_> {
    const TEMPLATE: &'static str = "transfer_rejected";
}

/// `transfer_failed`: processing stopped on an error; operators retry.
#[derive(Serialize)]
pub struct TransferFailed<'a> {
    #[serde(flatten)]
    pub notice: TransferNotice<'a>,
    /// A neutral reason the recipients can quote (the raw error stays on
    /// the ticket).
    pub reason: &'a str,
}

impl MailContext for TransferFailed<'_> {
    const TEMPLATE: &'static str = "transfer_failed";
}

/// `transfer_form_link`: the customer's admin gets the form's one-time
/// link.
#[derive(Serialize)]
pub struct TransferFormLink<'a> {
    pub form_id: Uuid,
    /// Its name, or its id when it has none.
    pub customer_name: &'a str,
    pub source_partner_name: &'a str,
    pub subscription_ids: &'a [&'a str],
    /// Carries the one-time token: for the body only.
    pub link: &'a str,
    #[serde(serialize_with = "as_mail_time")]
    pub expires_at: DateTime<Utc>,
    /// How long the link is valid, for the text.
    pub valid_days: i64,
}

impl MailContext for TransferFormLink<'_> {
    const TEMPLATE: &'static str = "transfer_form_link";
}

/// `transfer_form_returned`: the source's contact hears that the customer
/// filled in its part, to check and submit it.
#[derive(Serialize)]
pub struct TransferFormReturned<'a> {
    pub form_id: Uuid,
    pub customer_id: &'a str,
    /// Its name, or its id when it has none.
    pub customer_name: &'a str,
    /// The source's contact.
    pub recipient_name: &'a str,
    pub customer_contact_name: &'a str,
    /// Set on every returned form (a `None` would read "none").
    pub destination_partner_id: Option<&'a str>,
    pub destination_partner_name: &'a str,
    pub destination_contact_name: &'a str,
    pub subscription_ids: &'a [&'a str],
    /// By when the source must submit it.
    #[serde(serialize_with = "as_mail_time")]
    pub expires_at: DateTime<Utc>,
}

impl MailContext for TransferFormReturned<'_> {
    const TEMPLATE: &'static str = "transfer_form_returned";
}
