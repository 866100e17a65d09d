//! Sending stored mails: what the `mail.send` worker and the local sender
//! both do with the mails they are given, in their own transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::JobError;
use crate::store::Tx;
use crate::store::mails::{self, MailRow};

use super::message::{Attachment, OutgoingMail, recipient};
use super::transport::{MailTransport, SendError};

/// What became of one mail given to [`send_unsent`].
pub enum Sending {
    /// Handed over, and marked sent in the transaction.
    Sent,
    /// Sent before: nothing to do.
    AlreadySent,
    /// No such mail.
    Missing,
    /// The transport refused it; it stays unsent.
    Failed(JobError),
}

/// Locks the mails, sends those not sent yet together
/// ([`MailTransport::send_all`]), and marks the ones handed over sent: two
/// statements however many there are. Per id, in order, what became of
/// it. The caller commits.
///
/// Together, so that the transport shares the waiting between them: SMTP
/// sends them side by side, each waiting for the server's answer; the
/// file transport writes them all in one trip to the blocking pool and
/// syncs the directory once. Sent and awaited one at a time, a set of
/// sixteen held the attempt slot (and its connection) sixteen trips long.
pub async fn send_unsent(
    tx: &mut Tx<'_>,
    transport: &dyn MailTransport,
    from: &str,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Sending>> {
    let claims = mails::claim_unsent(tx, ids).await?;
    let mut outcomes: Vec<Option<Sending>> = Vec::with_capacity(claims.len());
    let mut outgoing = Vec::new();
    for claim in claims {
        outcomes.push(match claim {
            mails::Claim::Unsent(mail) => match outgoing_mail(from, mail) {
                Ok(mail) => {
                    outgoing.push(mail);
                    None
                }
                Err(error) => Some(Sending::Failed(error)),
            },
            mails::Claim::AlreadySent => Some(Sending::AlreadySent),
            mails::Claim::Missing => Some(Sending::Missing),
        });
    }
    let mut handed_over = transport.send_all(&outgoing).await.into_iter();
    let outcomes: Vec<Sending> = outcomes
        .into_iter()
        .zip(ids)
        .map(|(outcome, mail_id)| {
            outcome.unwrap_or_else(|| {
                let sent = handed_over.next().expect("one result per mail sent");
                crate::meters::mail_handed_over(if sent.is_ok() { "sent" } else { "failed" });
                match sent {
                    Ok(()) => Sending::Sent,
                    Err(error) => Sending::Failed(send_error(*mail_id, error)),
                }
            })
        })
        .collect();
    let sent: Vec<Uuid> = ids
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| matches!(outcome, Sending::Sent))
        .map(|(id, _)| *id)
        .collect();
    if !sent.is_empty() {
        mails::mark_sent(tx, &sent, now).await?;
    }
    Ok(outcomes)
}

/// The stored mail as sent from `from`; an unreadable one is fatal.
fn outgoing_mail(from: &str, mail: MailRow) -> Result<OutgoingMail, JobError> {
    let mail_id = mail.id;
    let attachments: Vec<Attachment> = serde_json::from_value(mail.attachments)
        .map_err(|e| JobError::fatal(format!("mail {mail_id} has unreadable attachments: {e}")))?;
    Ok(OutgoingMail {
        message_id: mail.message_id,
        from: from.to_owned(),
        to: recipient(&mail.recipient, mail.recipient_name.as_deref()),
        subject: mail.subject,
        body: mail.body,
        attachments,
    })
}

/// A transport error that may pass is retryable; a refusal for good is
/// fatal.
fn send_error(mail_id: Uuid, error: SendError) -> JobError {
    if error.is_transient() {
        JobError::Retryable(anyhow::anyhow!("sending mail {mail_id}: {error}"))
    } else {
        JobError::Fatal(anyhow::anyhow!("sending mail {mail_id}: {error}"))
    }
}
