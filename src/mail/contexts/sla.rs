//! The operators' SLA alert.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{MailContext, as_mail_time, as_mail_time_or_none};

/// `sla_alert`: a license request is close to its SLA deadline, or past it.
#[derive(Serialize)]
pub struct SlaAlert<'a> {
    /// `at_risk` or `breached`; another word fails the render.
    pub stage: &'a str,
    pub request_id: Uuid,
    /// The request's kind, e.g. `additional`.
    pub kind: &'a str,
    pub order_id: Uuid,
    pub partner_id: &'a str,
    #[serde(serialize_with = "as_mail_time")]
    pub accepted_at: DateTime<Utc>,
    #[serde(serialize_with = "as_mail_time")]
    pub sla_deadline: DateTime<Utc>,
    /// When the alert was raised.
    #[serde(serialize_with = "as_mail_time")]
    pub now: DateTime<Utc>,
    /// `None` while the request is open.
    #[serde(serialize_with = "as_mail_time_or_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// How late it was done, e.g. `5m`; `None` while it is open.
    pub late: Option<&'a str>,
    /// The request's job, and where it stands.
    pub job_id: Uuid,
    pub job_kind: &'a str,
    pub job_status: &'a str,
    pub attempts: i32,
    pub last_error: Option<&'a str>,
}

impl MailContext for SlaAlert<'_> {
    const TEMPLATE: &'static str = "sla_alert";
}
