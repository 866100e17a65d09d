//! One delivery, one attempt: parse the envelope, lock the job, run the
//! handler in a transaction, commit, and say whether to ack.

use std::time::Duration;

use tracing::Instrument;

use super::{JobContext, JobHandler};
use crate::job::{Envelope, JobError};
use crate::retry::delay_for_attempt;
use crate::store::dead_letters;
use crate::store::jobs::{self, FailureOutcome};

/// What to tell the broker about the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Settled: done, recorded for retry, or dead-lettered.
    Ack,
    /// Nothing could be recorded (the database is away): hand it back.
    Requeue,
}

pub async fn process(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    data: &[u8],
) -> Disposition {
    let envelope: Envelope = match serde_json::from_slice(data) {
        Ok(envelope) => envelope,
        Err(error) => {
            let reason = format!("message is not a job envelope: {error}");
            return dead_letter_raw(ctx, queue, data, &reason).await;
        }
    };
    let span = tracing::info_span!("job", job_id = %envelope.job_id, kind = %envelope.kind, attempt = envelope.attempt);
    run(ctx, handler, queue, data, envelope)
        .instrument(span)
        .await
}

async fn run(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    data: &[u8],
    envelope: Envelope,
) -> Disposition {
    let kind = handler.kind();
    let body = String::from_utf8_lossy(data);
    if envelope.kind != kind.as_str() {
        let reason = format!(
            "job kind {:?} does not belong on queue {queue}",
            envelope.kind
        );
        return dead_letter_raw(ctx, queue, data, &reason).await;
    }
    if envelope.version != kind.version() {
        let reason = format!(
            "envelope version {} of {} is unknown to this worker (it reads version {})",
            envelope.version,
            kind,
            kind.version()
        );
        tracing::warn!(%reason, "dead-lettering");
        return settle(
            jobs::dead_letter_unrunnable(
                &ctx.pool,
                envelope.job_id,
                &reason,
                queue,
                &body,
                ctx.clock.now(),
            )
            .await,
        );
    }

    let started_at = ctx.clock.now();
    if let Err(error) = jobs::mark_running(&ctx.pool, envelope.job_id, started_at).await {
        tracing::warn!(%error, "cannot reach the database; handing the job back");
        return Disposition::Requeue;
    }
    let mut tx = match ctx.pool.begin().await {
        Ok(tx) => tx,
        Err(error) => {
            tracing::warn!(%error, "cannot reach the database; handing the job back");
            return Disposition::Requeue;
        }
    };
    let job = match jobs::lock(&mut tx, envelope.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            drop(tx);
            let reason = format!("no job {} exists", envelope.job_id);
            return dead_letter_raw(ctx, queue, data, &reason).await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot lock the job; handing it back");
            return Disposition::Requeue;
        }
    };
    if job.status == "succeeded" || job.status == "dead" {
        tracing::debug!(status = %job.status, "duplicate delivery of a finished job");
        return Disposition::Ack;
    }
    if envelope.attempt <= job.attempts {
        // This attempt already failed and its successor is scheduled.
        tracing::debug!("stale delivery of an attempt already recorded");
        return Disposition::Ack;
    }

    let timeout = ctx.settings.jobs.timeout;
    let handled = tokio::time::timeout(timeout, handler.handle(ctx, &job, &mut tx)).await;
    let outcome = match handled {
        Ok(Ok(())) => commit_success(ctx, tx, &envelope, started_at).await,
        failed => {
            // Roll back first: the failure is recorded under the same job
            // lock that this transaction still holds.
            let _ = tx.rollback().await;
            Err(match failed {
                Ok(Err(error)) => error,
                _ => JobError::Retryable(anyhow::anyhow!(
                    "attempt timed out after {timeout:?} and was abandoned"
                )),
            })
        }
    };
    match outcome {
        Ok(()) => {
            let took = elapsed_since(ctx, started_at);
            crate::meters::job_finished(kind.as_str(), "succeeded", took);
            tracing::info!(elapsed_ms = took.as_millis() as u64, "job succeeded");
            Disposition::Ack
        }
        Err(error) => {
            record_failure(ctx, handler, &envelope, started_at, queue, &body, error).await
        }
    }
}

async fn commit_success(
    ctx: &JobContext,
    mut tx: crate::store::Tx<'_>,
    envelope: &Envelope,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), JobError> {
    jobs::mark_succeeded(
        &mut tx,
        envelope.job_id,
        envelope.attempt,
        started_at,
        ctx.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn run_on_dead(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    job_id: uuid::Uuid,
    error: &str,
) -> Result<(), JobError> {
    let mut tx = ctx.pool.begin().await?;
    let Some(job) = jobs::lock(&mut tx, job_id).await? else {
        return Ok(());
    };
    handler.on_dead(ctx, &job, &mut tx, error).await?;
    tx.commit().await?;
    Ok(())
}

async fn record_failure(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    envelope: &Envelope,
    started_at: chrono::DateTime<chrono::Utc>,
    queue: &str,
    body: &str,
    error: JobError,
) -> Disposition {
    let retry_in = match &error {
        JobError::Retryable(_) => Some(retry_delay(ctx, envelope.attempt)),
        JobError::Fatal(_) => None,
    };
    let message = error.to_string();
    let failure = jobs::Failure {
        id: envelope.job_id,
        attempt: envelope.attempt,
        started_at,
        error: &message,
        retry_in,
        queue,
        body,
    };
    let took = elapsed_since(ctx, started_at);
    match jobs::record_failure(&ctx.pool, failure, ctx.clock.now()).await {
        Ok(FailureOutcome::RetryIn(delay)) => {
            crate::meters::job_finished(&envelope.kind, "retried", took);
            tracing::warn!(error = %message, retry_in = ?delay, "job failed; will retry");
            Disposition::Ack
        }
        Ok(FailureOutcome::Dead) => {
            crate::meters::job_finished(&envelope.kind, "dead", took);
            tracing::error!(error = %message, "job dead-lettered");
            if let Err(hook_error) = run_on_dead(ctx, handler, envelope.job_id, &message).await {
                tracing::error!(error = %hook_error, "recording the dead job's failure failed");
            }
            Disposition::Ack
        }
        Ok(FailureOutcome::AlreadyDone) => Disposition::Ack,
        Err(db_error) => {
            tracing::warn!(error = %message, %db_error, "cannot record the failure; handing the job back");
            Disposition::Requeue
        }
    }
}

/// Wall time since the attempt started. The business clock may be moved
/// (`clock.now`) but runs at wall speed, so the difference is real.
fn elapsed_since(ctx: &JobContext, started_at: chrono::DateTime<chrono::Utc>) -> Duration {
    (ctx.clock.now() - started_at).to_std().unwrap_or_default()
}

fn retry_delay(ctx: &JobContext, attempt: i32) -> Duration {
    let jobs = &ctx.settings.jobs;
    delay_for_attempt(
        jobs.backoff_base,
        jobs.backoff_max,
        attempt.saturating_sub(1).max(0) as u32,
    )
}

/// Records a message that is no job at all; it is acked once stored.
async fn dead_letter_raw(ctx: &JobContext, queue: &str, data: &[u8], reason: &str) -> Disposition {
    tracing::warn!(%queue, %reason, "dead-lettering a message that is not a runnable job");
    let body = String::from_utf8_lossy(data);
    settle(dead_letters::insert_unattached(&ctx.pool, queue, reason, &body).await)
}

fn settle(stored: sqlx::Result<()>) -> Disposition {
    match stored {
        Ok(()) => Disposition::Ack,
        Err(error) => {
            tracing::warn!(%error, "cannot store the dead letter; handing the message back");
            Disposition::Requeue
        }
    }
}
