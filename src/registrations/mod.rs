//! Provisional sign-ups (SPEC §1.4), the domain the registration intake,
//! the sign-up page and the dashboard's review queue share: the
//! application and its rules (`application`), when no link is issued and
//! why (`refusal`), issuing and completing a link (`link`), and the
//! operator's review (`review`). Each step is a state change of the
//! registration in the caller's transaction, with its audit row and the
//! mail it causes; the intake parses, authorises and answers.

pub mod application;
pub mod link;
pub mod refusal;
pub mod review;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::fields::Invalid;
use crate::mail::Locale;
use crate::mail::contexts::{Content, MailContext, mail_time};
use crate::mail::queue::{MailRequest, Mailer, queue_mail};
use crate::store::registrations::RegistrationRow;
use crate::store::{Tx, audit};

/// Why a registration step is refused. Each says so in words the person
/// or operator can act on; the intake gives each its status and problem
/// type.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// No registration by that id or link, or not the caller's to see.
    #[error("{0}")]
    NotFound(String),
    #[error(
        "this link was already used: registration {id} was applied for at {}",
        .completed_at.map(mail_time).unwrap_or_default()
    )]
    LinkUsed {
        id: Uuid,
        completed_at: Option<DateTime<Utc>>,
    },
    #[error(
        "this link expired at {}; register again for a new one",
        mail_time(*.expires_at)
    )]
    LinkExpired { expires_at: DateTime<Utc> },
    /// Not awaiting review, or not in a state review can approve.
    #[error("{0}")]
    NotReviewable(String),
    /// The application, or the review's request, breaks a field rule.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Records a registration's step in the audit trail: its states, and the
/// token that asked (none for the person at the sign-up page).
async fn audit_transition(
    tx: &mut Tx<'_>,
    registration: &RegistrationRow,
    (from, to): (Option<&str>, Option<&str>),
    token_id: Option<Uuid>,
    detail: serde_json::Value,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at: now,
        entity_type: "registration",
        entity_id: registration.id,
        action: "registration.status",
        from_state: from,
        to_state: to,
        token_id,
        job_id: None,
        detail,
    };
    audit::record(tx, event).await
}

/// Who a sign-up mail goes to, and the id its cause names.
struct Addressee<'a> {
    cause_id: Uuid,
    email: &'a str,
    locale: &'a str,
    partner_id: Option<&'a str>,
}

impl<'a> From<&'a RegistrationRow> for Addressee<'a> {
    fn from(registration: &'a RegistrationRow) -> Addressee<'a> {
        Addressee {
            cause_id: registration.id,
            email: &registration.email,
            locale: &registration.locale,
            partner_id: registration.partner_id.as_deref(),
        }
    }
}

/// Queues one sign-up mail; its cause is the template and the id, so a
/// registration gets each kind of mail once.
async fn queue(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    to: Addressee<'_>,
    context: &impl MailContext,
    now: DateTime<Utc>,
) -> Result<(), RegistrationError> {
    let content = Content::of(context);
    let request = MailRequest {
        cause: format!("{}:{}", content.template(), to.cause_id),
        content,
        locale: Locale::parse(to.locale),
        to: to.email,
        to_name: None,
        attachments: Vec::new(),
        partner_id: to.partner_id,
    };
    queue_mail(mailer, tx, request, now)
        .await
        .map(drop)
        .map_err(|e| RegistrationError::Internal(anyhow::anyhow!("{e}")))
}

/// The registration as the step left it, read again under its lock.
async fn reread(tx: &mut Tx<'_>, id: Uuid) -> Result<RegistrationRow, RegistrationError> {
    crate::store::registrations::lock(tx, id)
        .await?
        .ok_or_else(|| RegistrationError::Internal(anyhow::anyhow!("registration vanished")))
}
