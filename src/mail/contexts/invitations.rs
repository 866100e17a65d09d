//! The invitations that need the other side's consent: a reseller
//! relationship (to the customer's admin) and an indirect partnership (to
//! the reseller's admin).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{MailContext, as_mail_time};

/// `relationship_invitation`: a partner asks to resell to the customer.
#[derive(Serialize)]
pub struct RelationshipInvitation<'a> {
    pub partner_name: &'a str,
    pub customer_name: &'a str,
    /// The partner's indirect provider, granted the same relationship;
    /// `None` for a direct reseller.
    pub provider_name: Option<&'a str>,
    /// Carries the one-time token: for the body only.
    pub link: &'a str,
    #[serde(serialize_with = "as_mail_time")]
    pub expires_at: DateTime<Utc>,
    /// How long the link is valid, for the text.
    pub valid_days: i64,
}

impl MailContext for RelationshipInvitation<'_> {
    const TEMPLATE: &'static str = "relationship_invitation";
}

/// `partnership_invitation`: a provider invites a reseller.
#[derive(Serialize)]
pub struct PartnershipInvitation<'a> {
    pub provider_name: &'a str,
    pub reseller_name: &'a str,
    /// Carries the one-time token: for the body only.
    pub link: &'a str,
    #[serde(serialize_with = "as_mail_time")]
    pub expires_at: DateTime<Utc>,
    /// How long the link is valid, for the text.
    pub valid_days: i64,
}

impl MailContext for PartnershipInvitation<'_> {
    const TEMPLATE: &'static str = "partnership_invitation";
}
