//! The mails of a sign-up: the link, the application received, refused
//! or rejected, and the service started.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{MailContext, as_mail_time};

/// `registration`: the one-time link that completes a sign-up.
#[derive(Serialize)]
pub struct Registration<'a> {
    pub email: &'a str,
    /// Carries the one-time token: for the body only.
    pub link: &'a str,
    #[serde(serialize_with = "as_mail_time")]
    pub expires_at: DateTime<Utc>,
    /// How long the link is valid, for the text.
    pub valid_hours: i64,
}

impl MailContext for Registration<'_> {
    const TEMPLATE: &'static str = "registration";
}

/// `registration_completed`: the application is in, for review.
#[derive(Serialize)]
pub struct RegistrationCompleted<'a> {
    pub email: &'a str,
    /// The applying organisation's name.
    pub organisation: &'a str,
    pub services: &'a [&'a str],
}

impl MailContext for RegistrationCompleted<'_> {
    const TEMPLATE: &'static str = "registration_completed";
}

/// `registration_refused`: no link was issued, and why.
#[derive(Serialize)]
pub struct RegistrationRefused<'a> {
    pub email: &'a str,
    /// `in_progress` or `domain_refused` (the intake's `Refusal`); it
    /// chooses the wording, and another word fails the render.
    pub reason: &'a str,
}

impl MailContext for RegistrationRefused<'_> {
    const TEMPLATE: &'static str = "registration_refused";
}

/// `registration_rejected`: the review turned the application down.
#[derive(Serialize)]
pub struct RegistrationRejected<'a> {
    pub email: &'a str,
    /// The operator's words, shown as written.
    pub reason: &'a str,
}

impl MailContext for RegistrationRejected<'_> {
    const TEMPLATE: &'static str = "registration_rejected";
}

/// `service_started`: the application was approved.
#[derive(Serialize)]
pub struct ServiceStarted<'a> {
    pub email: &'a str,
    /// May be empty: the mail then lists nothing.
    pub services: &'a [&'a str],
}

impl MailContext for ServiceStarted<'_> {
    const TEMPLATE: &'static str = "service_started";
}
