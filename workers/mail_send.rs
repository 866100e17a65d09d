//! `mail.send`: sends stored mails and marks them sent. A crash after the
//! send and before the commit sends it again with the same Message-ID (the
//! file transport overwrites the same file; an SMTP peer can dedupe).

use async_trait::async_trait;
use uuid::Uuid;

use crate::job::{JobError, SetOutcome, StillNeeded};
use crate::mail::queue::MailSendArgs;
use crate::mail::stored::hand_over;
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

    /// Locks the mails, sends those not sent yet side by side, and marks
    /// the ones handed over sent: two statements for the set. A mail that
    /// fails to send stays unsent, and its job alone fails.
    ///
    /// Side by side, because a file mail is written with an fsync of its
    /// own and an SMTP mail waits for the server's answer: one after the
    /// other, a set of sixteen waited for the disk sixteen times, while
    /// the attempt slot (and its connection) stayed taken. A set is at
    /// most `jobs.batch_size` mails.
    async fn work_set(
        &self,
        ctx: &JobContext,
        jobs: &[(&JobRow, MailSendArgs)],
        tx: &mut Tx<'_>,
    ) -> SetOutcome {
        let ids: Vec<Uuid> = jobs.iter().map(|(_, args)| args.mail_id).collect();
        let claims = mails::claim_unsent(tx, &ids).await?;
        let sends = ids.iter().zip(claims).map(|(&mail_id, claim)| async move {
            match claim {
                mails::Claim::Unsent(mail) => send(ctx, mail).await.map(|()| Some(mail_id)),
                mails::Claim::AlreadySent => Ok(None),
                mails::Claim::Missing => {
                    Err(JobError::fatal(format!("mail {mail_id} does not exist")))
                }
            }
        });
        let results = futures::future::join_all(sends).await;
        let sent: Vec<Uuid> = results
            .iter()
            .filter_map(|result| *result.as_ref().ok()?)
            .collect();
        if !sent.is_empty() {
            mails::mark_sent(tx, &sent, ctx.clock.now()).await?;
        }
        Ok(results.into_iter().map(|result| result.map(drop)).collect())
    }
}

async fn send(ctx: &JobContext, mail: mails::MailRow) -> Result<(), JobError> {
    hand_over(&*ctx.mail_transport, &ctx.settings.mail.from, mail).await
}
