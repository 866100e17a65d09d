//! What each mail template is filled in with: one struct per template,
//! tied to it by [`MailContext`]. A producer fills in the struct, so a key
//! it misspells or leaves out is a compile error.
//!
//! The structs borrow what they show: a context lives only until it has
//! been serialised.

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

/// How instants read in mails: `2026-12-24 00:00 UTC`.
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
