//! `mail.send`: sends stored mails and marks them sent. A crash after the
//! send and before the commit sends it again with the same Message-ID (the
//! file transport overwrites the same file; an SMTP peer can dedupe).

use async_trait::async_trait;
use uuid::Uuid;

use crate::job::{JobError, SetOutcome, StillNeeded};
use crate::mail::queue::MailSendArgs;
use crate::mail::stored::{Sending, send_unsent};
use crate::runtime::{Batching, JobContext, Worker, only};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::mails;

pub struct MailSend;

#[async_trait]
impl Worker for MailSend {
    type Args = MailSendArgs;

    fn batching(&self) -> Batching {
        Batching::Sets
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
        job: &JobRow,
        args: MailSendArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        only(self.work_set(ctx, &[(job, args)], tx).await)
    }

    /// Sends the set's mails together ([`send_unsent`]). A mail that
    /// fails to send stays unsent, and its job alone fails. A set is at
    /// most `jobs.batch_size` mails.
    async fn work_set(
        &self,
        ctx: &JobContext,
        jobs: &[(&JobRow, MailSendArgs)],
        tx: &mut Tx<'_>,
    ) -> SetOutcome {
        let ids: Vec<Uuid> = jobs.iter().map(|(_, args)| args.mail_id).collect();
        let transport = &*ctx.mail_transport;
        let from = &ctx.settings.mail.from;
        let outcomes = send_unsent(tx, transport, from, &ids, ctx.clock.now()).await?;
        Ok(ids
            .iter()
            .zip(outcomes)
            .map(|(mail_id, outcome)| match outcome {
                Sending::Sent | Sending::AlreadySent => Ok(()),
                Sending::Missing => Err(JobError::fatal(format!("mail {mail_id} does not exist"))),
                Sending::Failed(error) => Err(error),
            })
            .collect())
    }
}
