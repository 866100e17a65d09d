//! What each mail template is filled in with: one struct per template,
//! tied to it by [`MailContext`]. A producer fills in the struct, so a key
//! it misspells or leaves out is a compile error; the template tests check
//! the other side, that a template reads only fields its struct has.
//!
//! The structs borrow what they show: a context lives only until
//! [`Content::of`] has taken its values.

mod invitations;
mod licensing;
mod registrations;
mod sla;
mod transfers;
mod trials;

pub use invitations::{PartnershipInvitation, RelationshipInvitation};
pub use licensing::{
    IssuedKey, IssuedKeys, KeysCancelled, LicenseAdded, LicenseIssued, OrderRevoked, VmCountChanged,
};
pub use registrations::{
    Registration, RegistrationCompleted, RegistrationRefused, RegistrationRejected, ServiceStarted,
};
pub use sla::SlaAlert;
pub use transfers::{
    TransferCompleted, TransferFailed, TransferFormLink, TransferFormReturned, TransferNotice,
    TransferRejected, TransferRole, TransferSubmitted,
};
pub use trials::{
    TrialExpired, TrialExpiring, TrialNotice, TrialPurchaseRequest, TrialPurged, TrialRole,
};

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

/// The context of one template: its fields are the template's variables
/// (besides `service_name`, which the renderer adds).
pub trait MailContext: Serialize {
    /// The template's kind: `templates/<TEMPLATE>.<locale>.txt`.
    const TEMPLATE: &'static str;
}

/// A template and the values of its context, taken together from a
/// [`MailContext`]: a producer cannot name one template and fill in
/// another's context. No `Debug`: the values include license keys.
pub struct Content {
    template: &'static str,
    context: minijinja::Value,
}

impl Content {
    /// Takes the context's values (serialised once, straight into what
    /// the templates read).
    pub fn of<C: MailContext>(context: &C) -> Content {
        Content {
            template: C::TEMPLATE,
            context: minijinja::Value::from_serialize(context),
        }
    }

    pub fn template(&self) -> &'static str {
        self.template
    }

    pub(super) fn context(&self) -> &minijinja::Value {
        &self.context
    }
}

/// How instants read to people, in mails and in the messages that speak
/// of the same instants (API errors, sweep summaries):
/// `2026-12-24 00:00 UTC`.
pub fn mail_time(at: DateTime<Utc>) -> String {
    at.format(MAIL_TIME).to_string()
}

const MAIL_TIME: &str = "%Y-%m-%d %H:%M UTC";

/// `#[serde(serialize_with)]` for an instant a template shows as is.
fn as_mail_time<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&at.format(MAIL_TIME))
}

/// [`as_mail_time`] for an instant that may be missing (`none` to the
/// template).
fn as_mail_time_or_none<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => as_mail_time(at, serializer),
        None => serializer.serialize_none(),
    }
}
