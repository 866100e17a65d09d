//! What the transfer intake and workers share: the form's three contacts,
//! the mail each of them gets at every step, audit rows, and what becomes
//! of a ticket whose job died or is replayed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use uuid::Uuid;

use crate::clock::Clock;
use crate::job::{JobError, StillNeeded};
use crate::mail::Locale;
use crate::mail::contexts::{
    Content, TransferCompleted, TransferFailed, TransferNotice, TransferRejected, TransferRole,
    TransferSubmitted,
};
use crate::mail::queue::{MailRequest, Mailer, queue_mail};
use crate::store::jobs::JobRow;
use crate::store::transfers::TransferStatus;
use crate::store::transfers::{self, TransferRow};
use crate::store::{Tx, audit};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// `ja` or `en`; the default locale when absent.
    #[schema(pattern = "^(ja|en)$")]
    pub locale: Option<String>,
}

/// The transfer form: who hears about the ticket.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Form {
    pub customer_contact: Contact,
    pub source_contact: Contact,
    pub destination_contact: Contact,
}

/// The mail a step of the ticket sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMail {
    Submitted,
    Completed,
    /// Says the ticket's `reason`.
    Rejected,
    /// Says the ticket's `reason`.
    Failed,
}

impl TransferMail {
    /// This step's mail to one recipient; `reason` shows only in a
    /// rejection or a failure.
    pub fn content(self, notice: TransferNotice<'_>, reason: &str) -> Content {
        match self {
            Self::Submitted => Content::of(&TransferSubmitted(notice)),
            Self::Completed => Content::of(&TransferCompleted(notice)),
            Self::Rejected => Content::of(&TransferRejected { notice, reason }),
            Self::Failed => Content::of(&TransferFailed { notice, reason }),
        }
    }
}

/// Queues a step's mail to the customer and both partners, once per
/// transfer and recipient.
pub async fn queue_mails(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    transfer: &TransferRow,
    subscription_ids: &[String],
    mail: TransferMail,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let form: Form = serde_json::from_value(transfer.form.clone()).map_err(|e| {
        JobError::fatal(format!(
            "transfer {} has an unreadable form: {e}",
            transfer.id
        ))
    })?;
    let recipients = [
        (TransferRole::Customer, &form.customer_contact),
        (TransferRole::Source, &form.source_contact),
        (TransferRole::Destination, &form.destination_contact),
    ];
    let subscription_ids: Vec<&str> = subscription_ids.iter().map(String::as_str).collect();
    let reason = transfer.reason.as_deref().unwrap_or_default();
    for (role, contact) in recipients {
        let notice = TransferNotice {
            transfer_id: transfer.id,
            customer_id: &transfer.customer_id,
            source_partner_id: &transfer.source_partner_id,
            destination_partner_id: &transfer.destination_partner_id,
            subscription_ids: &subscription_ids,
            recipient_name: &contact.name,
            recipient_role: role,
        };
        let content = mail.content(notice, reason);
        let request = MailRequest {
            cause: format!("{}:{}:{}", content.template(), transfer.id, role.as_str()),
            content,
            locale: contact.locale.as_deref().and_then(Locale::parse),
            to: &contact.email,
            to_name: Some(&contact.name),
            attachments: Vec::new(),
            partner_id: Some(&transfer.destination_partner_id),
        };
        queue_mail(mailer, tx, request, now).await?;
    }
    Ok(())
}

/// An audit row for a transfer's state change.
pub async fn audit_transition(
    tx: &mut Tx<'_>,
    transfer: &TransferRow,
    (from, to): (Option<TransferStatus>, TransferStatus),
    job_id: Option<uuid::Uuid>,
    detail: serde_json::Value,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at,
        entity_type: "transfer",
        entity_id: transfer.id,
        action: "transfer.status",
        // A new ticket's row has always said "" for where it came from.
        from_state: Some(from.map_or("", TransferStatus::as_str)),
        to_state: Some(to.as_str()),
        token_id: transfer.token_id,
        job_id,
        detail,
    };
    audit::record(tx, event).await
}

/// Marks a transfer `failed` with the error of its dead job, and mails why;
/// what a transfer's jobs do when they are dead-lettered.
pub async fn fail_transfer(
    clock: &Clock,
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    job: &JobRow,
    transfer_id: Uuid,
    error: &str,
) -> Result<(), JobError> {
    let Some(mut transfer) = transfers::lock_transfer(tx, transfer_id).await? else {
        return Ok(());
    };
    if transfer.status.is_final() {
        return Ok(());
    }
    let now = clock.now();
    transfers::set_status(tx, transfer_id, TransferStatus::Failed, Some(error), now).await?;
    let from = transfer.status;
    audit_transition(
        tx,
        &transfer,
        (Some(from), TransferStatus::Failed),
        Some(job.id),
        json!({ "error": error }),
        now,
    )
    .await?;
    // The raw error stays on the ticket for operators; recipients get a
    // neutral reason they can quote.
    transfer.reason = Some(format!(
        "an internal error stopped the processing (job {})",
        job.id
    ));
    let subscription_ids = transfers::subscription_ids(&mut **tx, transfer_id).await?;
    queue_mails(
        mailer,
        tx,
        &transfer,
        &subscription_ids,
        TransferMail::Failed,
        now,
    )
    .await
}

/// A replay of a transfer's step is pointless once the ticket has left the
/// states its jobs work in; a failed one is resumed by its own route.
pub async fn step_still_needed(tx: &mut Tx<'_>, transfer_id: Uuid) -> sqlx::Result<StillNeeded> {
    let status = transfers::find_transfer(&mut **tx, transfer_id)
        .await?
        .map(|t| t.status);
    Ok(match status {
        None | Some(TransferStatus::Submitted | TransferStatus::CleaningRoles) => StillNeeded::Yes,
        Some(TransferStatus::Failed) => StillNeeded::No(format!(
            "transfer {transfer_id} is failed: resume it with POST /v1/transfers/{transfer_id}/retry"
        )),
        Some(other) => StillNeeded::No(format!(
            "transfer {transfer_id} is {other}: this step is over"
        )),
    })
}
