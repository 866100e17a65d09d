//! Handing a stored mail to the transport: what the `mail.send` worker
//! and the local sender both do with a mail they claimed.

use crate::job::JobError;
use crate::store::mails::MailRow;

use super::message::{Attachment, OutgoingMail, recipient};
use super::transport::MailTransport;

/// Sends `mail` from `from`. A transport error that may pass is
/// retryable; an unreadable mail or a refusal for good is fatal.
pub async fn hand_over(
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
