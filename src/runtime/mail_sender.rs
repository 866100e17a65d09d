//! The local sender: sends the mails this process's workers hand over
//! after their commits (see `mail::handoff`), without a job. A batch is
//! one transaction: lock the mails, send those not sent yet together,
//! mark the ones handed over sent, and give the ones that failed their
//! `mail.send` job, which retries them and dead-letters them as any job.
//!
//! A batch that cannot reach the database leaves its mails as they are:
//! once their handoff grace runs out, a relay gives them their jobs
//! (`store::mails::queue_stale_handoffs`). So does a process that dies
//! with mails in hand.

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::JobContext;
use crate::mail::handoff::HandedOff;
use crate::mail::stored::{Sending, send_unsent};
use crate::store::{self, mails};

/// Sends the mails handed over on `handed_off` until `shutdown`, then
/// those already handed over, within `jobs.shutdown_grace`.
pub async fn run(
    ctx: JobContext,
    mut handed_off: mpsc::Receiver<HandedOff>,
    shutdown: CancellationToken,
) {
    let mut sending = JoinSet::new();
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(_) = sending.join_next(), if !sending.is_empty() => continue,
            received = handed_off.recv() => match received {
                Some(mail) => mail,
                None => break,
            },
        };
        if !start_batch(&ctx, first, &mut handed_off, &mut sending).await {
            break;
        }
    }

    // Mails handed over are committed work: send them too. Transactions
    // still running keep their places and may yet fill them, so the
    // channel ends once they are over; none takes a new place.
    handed_off.close();
    let grace = ctx.settings.jobs.shutdown_grace;
    let finished = tokio::time::timeout(grace, async {
        while let Some(first) = handed_off.recv().await {
            if !start_batch(&ctx, first, &mut handed_off, &mut sending).await {
                break;
            }
        }
        while sending.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            ?grace,
            "mails not sent by the end of the grace period get their jobs from a relay"
        );
        sending.abort_all();
    }
    tracing::info!("mail sender stopped");
}

/// Takes an attempt slot, then sends `first` and the mails that arrived
/// meanwhile (they join the batch); `false` when the slots are closed, as
/// the process goes away.
async fn start_batch(
    ctx: &JobContext,
    first: HandedOff,
    handed_off: &mut mpsc::Receiver<HandedOff>,
    sending: &mut JoinSet<()>,
) -> bool {
    let Ok(slot) = ctx.attempts.clone().acquire_owned().await else {
        return false;
    };
    let batch = take_batch(first, handed_off, ctx.settings.jobs.batch_size);
    sending.spawn(send_batch(ctx.clone(), batch, slot));
    true
}

/// `first` and whatever else is waiting, up to `limit` mails.
fn take_batch(
    first: HandedOff,
    handed_off: &mut mpsc::Receiver<HandedOff>,
    limit: usize,
) -> Vec<Uuid> {
    let mut batch = vec![first.mail_id];
    while batch.len() < limit.max(1) {
        match handed_off.try_recv() {
            Ok(mail) => batch.push(mail.mail_id),
            Err(_) => break,
        }
    }
    batch
}

async fn send_batch(ctx: JobContext, ids: Vec<Uuid>, _slot: OwnedSemaphorePermit) {
    if let Err(error) = try_send_batch(&ctx, &ids).await {
        tracing::warn!(
            error = %error,
            mails = ids.len(),
            "handed-over mails not sent: a relay gives them their jobs after the handoff grace"
        );
    }
}

async fn try_send_batch(ctx: &JobContext, ids: &[Uuid]) -> sqlx::Result<()> {
    let mut tx = ctx.pool.begin_with(store::BEGIN_WITH_GENERIC_PLANS).await?;
    let transport = &*ctx.mail_transport;
    let from = &ctx.settings.mail.from;
    let outcomes = send_unsent(&mut tx, transport, from, ids, ctx.clock.now()).await?;
    // A mail sent by its job meanwhile needs nothing; a missing one was
    // never committed, which a handover follows only.
    let failed: Vec<(Uuid, Option<String>)> = ids
        .iter()
        .zip(outcomes)
        .filter_map(|(&mail_id, outcome)| match outcome {
            Sending::Failed(error) => Some((mail_id, Some(format!("{error:#}")))),
            Sending::Sent | Sending::AlreadySent | Sending::Missing => None,
        })
        .collect();
    if !failed.is_empty() {
        let max_attempts = ctx.settings.jobs.max_attempts;
        mails::queue_jobs(&mut tx, &failed, max_attempts).await?;
    }
    tx.commit().await?;
    if !failed.is_empty() {
        tracing::warn!(
            mails = failed.len(),
            "mails not sent now are queued as jobs"
        );
    }
    Ok(())
}
