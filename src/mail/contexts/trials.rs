//! The mails of a trial: its end coming and come (to both admins), its
//! purge (to each member), and a purchase asked for from it.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::{MailContext, as_mail_time};
use crate::store::trials::TrialStatus;

/// Which admin a trial notice is written to; it chooses the wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialRole {
    CustomerAdmin,
    PartnerAdmin,
}

impl TrialRole {
    /// The word the templates compare, also part of each mail's cause.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomerAdmin => "customer_admin",
            Self::PartnerAdmin => "partner_admin",
        }
    }
}

impl Serialize for TrialRole {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// What both admin notices show.
#[derive(Serialize)]
pub struct TrialNotice<'a> {
    pub recipient_role: TrialRole,
    pub customer_id: &'a str,
    /// Empty when the directory has no name: the lines naming it are left
    /// out.
    pub customer_name: &'a str,
    pub trial_id: Uuid,
    pub services: &'a [&'a str],
    #[serde(serialize_with = "as_mail_time")]
    pub ends_at: DateTime<Utc>,
    /// The grace period after the end, in days.
    pub grace_days: i64,
    /// Where the customer buys what it tried.
    pub purchase_link: &'a str,
}

/// `trial_expiring`: the trial ends soon.
#[derive(Serialize)]
pub struct TrialExpiring<'a> {
    #[serde(flatten)]
    pub notice: TrialNotice<'a>,
    /// Whole days to the end; 0 on the last day.
    pub days_left: i64,
    /// Extensions the trial may still get; at 0 the mail offers none.
    pub extensions_left: i32,
}

impl MailContext for TrialExpiring<'_> {
    const TEMPLATE: &'static str = "trial_expiring";
}

/// `trial_expired`: the trial ended; the grace period runs.
#[derive(Serialize)]
pub struct TrialExpired<'a> {
    #[serde(flatten)]
    pub notice: TrialNotice<'a>,
    #[serde(serialize_with = "as_mail_time")]
    pub grace_ends_at: DateTime<Utc>,
}

impl MailContext for TrialExpired<'_> {
    const TEMPLATE: &'static str = "trial_expired";
}

/// `trial_purged`: the trial organisation is gone; to each member.
#[derive(Serialize)]
pub struct TrialPurged<'a> {
    /// Empty when the member has no name: the mail greets "customer".
    pub user_name: &'a str,
    pub customer_id: &'a str,
    /// Empty when the directory has no name: the lines naming it are left
    /// out.
    pub customer_name: &'a str,
    pub trial_id: Uuid,
    pub services: &'a [&'a str],
    #[serde(serialize_with = "as_mail_time")]
    pub purged_at: DateTime<Utc>,
}

impl MailContext for TrialPurged<'_> {
    const TEMPLATE: &'static str = "trial_purged";
}

/// `trial_purchase_request`: the customer asks its partner to buy what it
/// tried; to the partner's admin.
#[derive(Serialize)]
pub struct TrialPurchaseRequest<'a> {
    pub customer_id: &'a str,
    /// Empty when the directory has no name: the line is left out.
    pub customer_name: &'a str,
    pub customer_admin_email: &'a str,
    pub trial_id: Uuid,
    /// An expired trial (in grace) is marked as such.
    pub status: TrialStatus,
    /// The services to buy.
    pub services: &'a [&'a str],
    /// The customer's message; empty for none.
    pub note: &'a str,
    #[serde(serialize_with = "as_mail_time")]
    pub ends_at: DateTime<Utc>,
    #[serde(serialize_with = "as_mail_time")]
    pub requested_at: DateTime<Utc>,
    pub purchase_link: &'a str,
}

impl MailContext for TrialPurchaseRequest<'_> {
    const TEMPLATE: &'static str = "trial_purchase_request";
}
