//! `mail.send`: sends one stored mail and marks it sent. A crash after the
//! send and before the commit sends it again with the same Message-ID (the
//! file transport overwrites the same file; an SMTP peer can dedupe).

use async_trait::async_trait;

use crate::job::{JobError, StillNeeded};
use crate::mail::message::{Attachment, OutgoingMail};
use crate::mail::queue::MailSendArgs;
use crate::runtime::{JobContext, Worker};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::mails;

pub struct MailSend;

#[async_trait]
impl Worker for MailSend {
    type Args = MailSendArgs;

    fn batches(&self) -> bool {
        true
    }

    async fn still_needed(
        &self,
        tx: &mut Tx<'_>,
        args: &MailSendArgs,
    ) -> sqlx::Result<StillNeeded> {
        Ok(match mails::is_sent(tx, args.mail_id).await? {
            Some(true) => StillNeeded::No("the mail was sent meanwhile".to_owned()),
            _ => StillNeeded::Yes,
        })
    }

    async fn work(
        &self,
        ctx: &JobContext,
        _job: &JobRow,
        MailSendArgs { mail_id }: MailSendArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let mail = match mails::claim_unsent(tx, mail_id, ctx.clock.now()).await? {
            mails::Claim::Unsent(mail) => mail,
            mails::Claim::AlreadySent => return Ok(()),
            mails::Claim::Missing => {
                return Err(JobError::fatal(format!("mail {mail_id} does not exist")));
            }
        };
        let attachments: Vec<Attachment> =
            serde_json::from_value(mail.attachments).map_err(|e| {
                JobError::fatal(format!("mail {mail_id} has unreadable attachments: {e}"))
            })?;
        let outgoing = OutgoingMail {
            message_id: mail.message_id,
            from: ctx.settings.mail.from.clone(),
            to: crate::mail::message::recipient(&mail.recipient, mail.recipient_name.as_deref()),
            subject: mail.subject,
            body: mail.body,
            attachments,
        };
        let sent = ctx.mail_transport.send(&outgoing).await;
        crate::meters::mail_handed_over(if sent.is_ok() { "sent" } else { "failed" });
        sent.map_err(|error| {
            if error.is_transient() {
                JobError::Retryable(anyhow::anyhow!("sending mail {mail_id}: {error}"))
            } else {
                JobError::Fatal(anyhow::anyhow!("sending mail {mail_id}: {error}"))
            }
        })?;
        Ok(())
    }
}
