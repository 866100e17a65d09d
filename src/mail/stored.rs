//! Sending stored mails: what the `mail.send` worker and the local sender
//! both do with the mails they are given, in their own transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::JobError;
use crate::store::Tx;
use crate::store::mails::{self, MailRow};

use super::message::{Attachment, OutgoingMail, recipient};
use super::transport::MailTransport;

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

/// Locks the mails, sends those not sent yet side by side, and marks the
/// ones handed over sent: two statements however many there are. Per id,
/// in order, what became of it. The caller commits.
///
/// Side by side, because a file mail is written with an fsync of its own
/// and an SMTP mail waits for the server's answer: one after the other, a
/// set of sixteen waited for the disk sixteen times, while the attempt
/// slot (and its connection) stayed taken.
pub async fn send_unsent(
    tx: &mut Tx<'_>,
    transport: &dyn MailTransport,
    from: &str,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Sending>> {
    let claims = mails::claim_unsent(tx, ids).await?;
    let sends = claims.into_iter().map(|claim| async move {
        match claim {
            mails::Claim::Unsent(mail) => match hand_over(transport, from, mail).await {
                Ok(()) => Sending::Sent,
                Err(error) => Sending::Failed(error),
            },
            mails::Claim::AlreadySent => Sending::AlreadySent,
            mails::Claim::Missing => Sending::Missing,
        }
    });
    let outcomes = futures::future::join_all(sends).await;
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

/// Sends `mail` from `from`. A transport error that may pass is
/// retryable; an unreadable mail or a refusal for good is fatal.
async fn hand_over(
    transport: &dyn MailTransport,
    from: &str,
    mail: MailRow,
) -> Result<(), JobError> {
    let mail_id = mail.id;
    let attachments: Vec<Attachment> = serde_json::from_value(mail.attachments)
        .map_err(|e| JobError::fatal(format!("mail {mail_id} has unreadable attachments: {e}")))?;
    let outgoing = OutgoingMail {
        message_id: mail.message_id,
        from: from.to_owned(),
        to: recipient(&mail.recipient, mail.recipient_name.as_deref()),
        subject: mail.subject,
        body: mail.body,
        attachments,
    };
    let sent = transport.send(&outgoing).await;
    crate::meters::mail_handed_over(if sent.is_ok() { "sent" } else { "failed" });
    sent.map_err(|error| {
        if error.is_transient() {
            JobError::Retryable(anyhow::anyhow!("sending mail {mail_id}: {error}"))
        } else {
            JobError::Fatal(anyhow::anyhow!("sending mail {mail_id}: {error}"))
        }
    })
}
