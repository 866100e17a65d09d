//! Deliveries become attempts: parse each envelope, lock the jobs, run the
//! handler of each in one transaction, commit, and say how to settle each
//! delivery.
//!
//! Several deliveries of one kind share a transaction when the handler
//! allows it ([`JobHandler::batching`]): one commit for the lot instead of
//! three per job. The handler takes them as a set when it can, in a few
//! statements for all; otherwise, or when the set fails as a whole, each
//! job runs inside its own savepoint, so a failing job rolls back only its
//! own writes and the others commit. A batch whose transaction breaks (a
//! timed-out handler, a lost connection, a failed commit) committed
//! nothing, and its jobs run again one by one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::{Batching, JobContext, JobHandler};
use crate::job::{Envelope, JobError};
use crate::retry::delay_for_attempt;
use crate::store::jobs::{self, FailureOutcome, JobRow, Succeeded};
use crate::store::{self, Tx, dead_letters};

/// What to tell the broker about the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Settled: done, recorded for retry, or dead-lettered.
    Ack,
    /// Nothing could be recorded (the database is away): hand it back.
    Requeue,
}

/// A delivery as the attempt sees it: the body, and the AMQP message id
/// by which an operator finds it among the dead letters.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub data: &'a [u8],
    pub message_id: Option<&'a str>,
}

/// A delivery whose envelope names a job this worker runs.
struct Runnable<'a> {
    /// Index of the delivery in the caller's slice.
    slot: usize,
    message: Message<'a>,
    envelope: Envelope,
}

/// Runs a handler's deliveries, together where it allows; one disposition
/// per delivery, in order.
pub async fn process(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    deliveries: &[Message<'_>],
) -> Vec<Disposition> {
    let ctx = &ctx.for_attempts();
    let mut dispositions = vec![Disposition::Ack; deliveries.len()];
    let mut runnable = Vec::with_capacity(deliveries.len());
    for (slot, &message) in (0..).zip(deliveries) {
        match admit(ctx, handler, queue, message).await {
            Ok(envelope) => runnable.push(Runnable {
                slot,
                message,
                envelope,
            }),
            Err(settled) => dispositions[slot] = settled,
        }
    }
    if runnable.len() > 1 && handler.batching() != Batching::Alone {
        run_together(ctx, handler, queue, runnable, &mut dispositions).await;
    } else {
        for job in runnable {
            let slot = job.slot;
            dispositions[slot] = run_alone(ctx, handler, queue, job).await;
        }
    }
    dispositions
}

/// Checks that a delivery is a job of this handler's kind and version;
/// anything else is dead-lettered here and settled.
async fn admit(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    message: Message<'_>,
) -> Result<Envelope, Disposition> {
    let envelope: Envelope = match serde_json::from_slice(message.data) {
        Ok(envelope) => envelope,
        Err(error) => {
            let reason = format!("message is not a job envelope: {error}");
            return Err(dead_letter_raw(ctx, queue, message, &reason).await);
        }
    };
    let kind = handler.kind();
    if envelope.kind != kind.as_str() {
        let reason = format!(
            "job kind {:?} does not belong on queue {queue}",
            envelope.kind
        );
        return Err(dead_letter_raw(ctx, queue, message, &reason).await);
    }
    if envelope.version != kind.version() {
        let reason = format!(
            "envelope version {} of {} is unknown to this worker (it reads version {})",
            envelope.version,
            kind,
            kind.version()
        );
        tracing::warn!(job_id = %envelope.job_id, %reason, "dead-lettering");
        let body = String::from_utf8_lossy(message.data);
        let stored = jobs::dead_letter_unrunnable(
            &ctx.pool,
            envelope.job_id,
            &reason,
            queue,
            &body,
            message.message_id,
            ctx.clock.now(),
        )
        .await;
        return Err(settle(stored));
    }
    Ok(envelope)
}

/// How an attempt at a batch ended.
enum Tried {
    /// The transaction committed (or was never needed); each job has its
    /// outcome.
    Done(Vec<Outcome>),
    /// The transaction broke and nothing committed. `timed_out` names the
    /// job whose handler overran its time, if that was the cause.
    Broken {
        timed_out: Option<usize>,
        error: JobError,
    },
}

/// What became of one job of a committed batch.
enum Outcome {
    Succeeded {
        took: Duration,
    },
    /// Finished before, or a stale attempt: nothing to do.
    Skipped,
    /// No job row has the envelope's id.
    Unknown,
    Failed {
        error: JobError,
        started_at: DateTime<Utc>,
    },
}

async fn run_together(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    mut batch: Vec<Runnable<'_>>,
    dispositions: &mut [Disposition],
) {
    // Locks are taken in one order by every batch, so two batches touching
    // the same rows wait for each other rather than deadlock.
    // Copies of one job come out highest attempt first: that copy is the
    // one that may run, the others are stale.
    batch.sort_by_key(|job| (job.envelope.job_id, std::cmp::Reverse(job.envelope.attempt)));
    match attempt(ctx, handler, &batch).await {
        Tried::Done(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                dispositions[job.slot] = conclude(ctx, handler, queue, &job, outcome).await;
            }
        }
        Tried::Broken { timed_out, error } => {
            tracing::warn!(jobs = batch.len(), error = %error, "a batch broke; running its jobs one by one");
            for (index, job) in (0..).zip(batch) {
                let slot = job.slot;
                dispositions[slot] = if timed_out == Some(index) {
                    // Running it again would only wait as long again.
                    let failed = Outcome::Failed {
                        error: timed_out_error(ctx),
                        started_at: ctx.clock.now(),
                    };
                    conclude(ctx, handler, queue, &job, failed).await
                } else {
                    run_alone(ctx, handler, queue, job).await
                };
            }
        }
    }
}

async fn run_alone(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    job: Runnable<'_>,
) -> Disposition {
    let batch = std::slice::from_ref(&job);
    let outcome = match attempt(ctx, handler, batch).await {
        Tried::Done(mut outcomes) => outcomes.pop().expect("one outcome per job"),
        Tried::Broken {
            error: JobError::Retryable(error),
            timed_out: None,
        } if is_unreachable(&error) => {
            tracing::warn!(job_id = %job.envelope.job_id, error = format!("{error:#}"), "cannot reach the database; handing the job back");
            return Disposition::Requeue;
        }
        Tried::Broken { error, .. } => Outcome::Failed {
            error,
            started_at: ctx.clock.now(),
        },
    };
    conclude(ctx, handler, queue, &job, outcome).await
}

/// A set's transaction (see [`store::BEGIN_WITH_GENERIC_PLANS`]) with the
/// set's savepoint.
const BEGIN_SET: &str = concat!(store::begin_with_generic_plans!(), "; savepoint set");

/// One transaction for the batch: mark the jobs running (in a commit of
/// its own, except for kinds that run as sets), lock them, run
/// the handler (on the set, or on each job in a savepoint when there are
/// several), record the successes and commit.
async fn attempt(ctx: &JobContext, handler: &dyn JobHandler, batch: &[Runnable<'_>]) -> Tried {
    let broken = |error: sqlx::Error| Tried::Broken {
        timed_out: None,
        error: JobError::Retryable(error.into()),
    };
    // What an earlier, rolled-back attempt of the batch handed off does
    // not exist.
    ctx.handoff.discard();
    let ids: Vec<uuid::Uuid> = batch.iter().map(|job| job.envelope.job_id).collect();
    let uncounted = uncounted_deliveries(handler);
    if uncounted == 0
        && let Err(error) = jobs::mark_running(&ctx.pool, &ids, ctx.clock.now()).await
    {
        return broken(error);
    }
    let sets = handler.batching() == Batching::Sets;
    let as_set = batch.len() > 1 && sets;
    let begun = if as_set {
        // A batch that may run as a set opens the set's savepoint with the
        // transaction, in the same round trip; unused, it costs nothing.
        ctx.pool.begin_with(BEGIN_SET).await
    } else if sets {
        ctx.pool.begin_with(store::BEGIN_WITH_GENERIC_PLANS).await
    } else {
        ctx.pool.begin().await
    };
    let mut tx = match begun {
        Ok(tx) => tx,
        Err(error) => return broken(error),
    };
    let rows = match jobs::lock_many(&mut tx, &ids).await {
        Ok(rows) => rows,
        Err(error) => return broken(error),
    };
    // What needs no run is settled now; the rest is due, in batch order.
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    let mut due: Vec<(usize, &JobRow)> = Vec::with_capacity(batch.len());
    for (index, job) in batch.iter().enumerate() {
        let envelope = &job.envelope;
        let settled = match rows.iter().find(|row| row.id == envelope.job_id) {
            None => Some(Outcome::Unknown),
            // A second copy in the same batch: the first one speaks for it.
            Some(_) if index > 0 && batch[index - 1].envelope.job_id == envelope.job_id => {
                Some(Outcome::Skipped)
            }
            Some(row) => already_settled(row, envelope).or_else(|| {
                due.push((index, row));
                None
            }),
        };
        outcomes.push(settled);
    }
    let mut succeeded = Vec::new();
    let mut ran = false;
    if as_set && due.len() > 1 {
        match run_set(ctx, handler, &mut tx, &due).await {
            Ok(Some((results, started_at))) => {
                for ((index, job), result) in due.iter().zip(results) {
                    outcomes[*index] = Some(finished(
                        ctx,
                        batch,
                        &mut succeeded,
                        (*index, uncounted),
                        job,
                        result,
                        started_at,
                    ));
                }
                ran = true;
            }
            // The set is rolled back: its jobs run in savepoints below.
            Ok(None) => ctx.handoff.discard(),
            Err(tried) => return tried,
        }
    }
    if !ran {
        let together = due.len() > 1;
        let timeout = ctx.settings.jobs.timeout;
        let mut in_savepoint = false;
        for &(index, job) in &due {
            let envelope = &batch[index].envelope;
            if together {
                // One round trip closes the previous job's savepoint and
                // opens this one's.
                let sql = if in_savepoint {
                    "release savepoint job; savepoint job"
                } else {
                    "savepoint job"
                };
                if let Err(error) = savepoint(&mut tx, sql).await {
                    return broken(error);
                }
                in_savepoint = true;
            }
            let started_at = ctx.clock.now();
            let span = tracing::info_span!("job", job_id = %envelope.job_id, kind = %envelope.kind, attempt = envelope.attempt);
            let handled = tokio::time::timeout(timeout, handler.handle(ctx, job, &mut tx))
                .instrument(span)
                .await;
            match handled {
                Ok(Err(error)) if together => {
                    // Only this job's writes go; the savepoint also clears
                    // an aborted transaction, so the batch carries on.
                    if let Err(rollback) = savepoint(&mut tx, "rollback to savepoint job").await {
                        return broken(rollback);
                    }
                    outcomes[index] = Some(Outcome::Failed { error, started_at });
                }
                Ok(Err(error)) => {
                    // Alone: roll back first, the failure is recorded under
                    // the same job lock that this transaction still holds.
                    let _ = tx.rollback().await;
                    return Tried::Done(vec![Outcome::Failed { error, started_at }]);
                }
                Ok(Ok(())) => {
                    outcomes[index] = Some(finished(
                        ctx,
                        batch,
                        &mut succeeded,
                        (index, uncounted),
                        job,
                        Ok(()),
                        started_at,
                    ));
                }
                Err(_elapsed) => {
                    // The handler was dropped mid-statement: the
                    // connection's state is unknown, so the whole
                    // transaction goes.
                    let _ = tx.rollback().await;
                    return Tried::Broken {
                        timed_out: Some(index),
                        error: timed_out_error(ctx),
                    };
                }
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| outcome.expect("every job of the batch has an outcome"))
        .collect();
    match complete(tx, &succeeded, ctx.clock.now()).await {
        Ok(()) => {
            ctx.handoff.release();
            Tried::Done(outcomes)
        }
        Err(error) => Tried::Broken {
            timed_out: None,
            error: error.into(),
        },
    }
}

/// The outcome of a job that ran; a success joins the batch's successes,
/// with the deliveries of it that `mark_running` did not count.
fn finished(
    ctx: &JobContext,
    batch: &[Runnable<'_>],
    succeeded: &mut Vec<Succeeded>,
    (index, uncounted): (usize, i32),
    job: &JobRow,
    result: Result<(), JobError>,
    started_at: DateTime<Utc>,
) -> Outcome {
    match result {
        Ok(()) => {
            succeeded.push(Succeeded {
                id: job.id,
                attempt: batch[index].envelope.attempt,
                started_at,
                uncounted,
            });
            Outcome::Succeeded {
                took: elapsed_since(ctx, started_at),
            }
        }
        Err(error) => Outcome::Failed { error, started_at },
    }
}

/// Runs the due jobs as one set, behind the savepoint `set` that the
/// transaction opened with. `Ok(None)`: the set failed as a whole and is
/// rolled back to the savepoint, so the jobs can run one by one in the
/// same transaction. A set that overruns the time of one job breaks the
/// transaction, and its jobs run alone.
async fn run_set(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    tx: &mut Tx<'_>,
    due: &[(usize, &JobRow)],
) -> Result<Option<(Vec<Result<(), JobError>>, DateTime<Utc>)>, Tried> {
    let broken = |error: sqlx::Error| Tried::Broken {
        timed_out: None,
        error: JobError::Retryable(error.into()),
    };
    let jobs: Vec<&JobRow> = due.iter().map(|&(_, job)| job).collect();
    let started_at = ctx.clock.now();
    let span = tracing::info_span!("job set", kind = %handler.kind(), jobs = jobs.len());
    let handled = tokio::time::timeout(
        ctx.settings.jobs.timeout,
        handler.handle_set(ctx, &jobs, tx),
    )
    .instrument(span)
    .await;
    match handled {
        Ok(Ok(results)) if results.len() == jobs.len() => Ok(Some((results, started_at))),
        Ok(Ok(_)) | Ok(Err(_)) => {
            if let Ok(Err(error)) = &handled {
                tracing::debug!(jobs = jobs.len(), %error, "a set failed as a whole; running its jobs one by one");
            }
            savepoint(tx, "rollback to savepoint set")
                .await
                .map_err(broken)?;
            Ok(None)
        }
        Err(_elapsed) => Err(Tried::Broken {
            timed_out: None,
            error: timed_out_error(ctx),
        }),
    }
}

/// Opens, closes or rolls back to a job's savepoint.
async fn savepoint(tx: &mut Tx<'_>, sql: &'static str) -> sqlx::Result<()> {
    // A plain string goes by the simple protocol, which takes two
    // statements in one message.
    sqlx::Executor::execute(&mut **tx, sql).await.map(drop)
}

/// Records the batch's successes and commits them with the work.
async fn complete(mut tx: Tx<'_>, succeeded: &[Succeeded], now: DateTime<Utc>) -> sqlx::Result<()> {
    jobs::mark_succeeded(&mut tx, succeeded, now).await?;
    tx.commit().await
}

/// Deliveries an attempt leaves to be counted when it is recorded: none
/// where `mark_running` counted them up front, in a commit of its own so
/// that operators see the job running. Kinds that run as sets skip that
/// commit: their jobs take moments, and each of them paid for that commit
/// and a row version more (every index of `jobs` written again); such a
/// job goes from queued (or retrying) to succeeded in the transaction that
/// does it.
fn uncounted_deliveries(handler: &dyn JobHandler) -> i32 {
    i32::from(handler.batching() == Batching::Sets)
}

/// A delivery of a job that needs no attempt: finished already, or an
/// attempt whose failure is already recorded (its successor is scheduled).
fn already_settled(job: &JobRow, envelope: &Envelope) -> Option<Outcome> {
    if job.status.is_final() {
        tracing::debug!(job_id = %job.id, status = %job.status, "duplicate delivery of a finished job");
        return Some(Outcome::Skipped);
    }
    if envelope.attempt <= job.attempts {
        tracing::debug!(job_id = %job.id, "stale delivery of an attempt already recorded");
        return Some(Outcome::Skipped);
    }
    None
}

/// Settles one job of a committed batch: logs a success, records a
/// failure, dead-letters a delivery that names no job.
async fn conclude(
    ctx: &JobContext,
    handler: &dyn JobHandler,
    queue: &str,
    job: &Runnable<'_>,
    outcome: Outcome,
) -> Disposition {
    let envelope = &job.envelope;
    match outcome {
        Outcome::Succeeded { took } => {
            crate::meters::job_finished(handler.kind().as_str(), "succeeded", took);
            tracing::info!(job_id = %envelope.job_id, kind = %envelope.kind, attempt = envelope.attempt,
                elapsed_ms = took.as_millis() as u64, "job succeeded");
            Disposition::Ack
        }
        Outcome::Skipped => {
            if uncounted_deliveries(handler) > 0 {
                // Only a figure for operators: not worth a redelivery.
                if let Err(error) = jobs::count_delivery(&ctx.pool, envelope.job_id).await {
                    tracing::warn!(job_id = %envelope.job_id, %error, "cannot count a duplicate delivery");
                }
            }
            Disposition::Ack
        }
        Outcome::Unknown => {
            let reason = format!("no job {} exists", envelope.job_id);
            dead_letter_raw(ctx, queue, job.message, &reason).await
        }
        Outcome::Failed { error, started_at } => {
            let span = tracing::info_span!("job", job_id = %envelope.job_id, kind = %envelope.kind, attempt = envelope.attempt);
            record_failure(
                ctx,
                handler,
                envelope,
                queue,
                job.message,
                error,
                started_at,
            )
            .instrument(span)
            .await
        }
    }
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
    queue: &str,
    message: Message<'_>,
    error: JobError,
    started_at: DateTime<Utc>,
) -> Disposition {
    let retry_in = match &error {
        JobError::Retryable(_) => Some(retry_delay(ctx, envelope.attempt)),
        JobError::Fatal(_) => None,
    };
    let reason = error.to_string();
    let body = String::from_utf8_lossy(message.data);
    let now = ctx.clock.now();
    let took = elapsed_since(ctx, started_at);
    let failure = jobs::Failure {
        id: envelope.job_id,
        attempt: envelope.attempt,
        started_at,
        error: &reason,
        retry_in,
        queue,
        body: &body,
        message_id: message.message_id,
        uncounted: uncounted_deliveries(handler),
    };
    match jobs::record_failure(&ctx.pool, failure, now).await {
        Ok(FailureOutcome::RetryIn(delay)) => {
            crate::meters::job_finished(&envelope.kind, "retried", took);
            tracing::warn!(error = %reason, retry_in = ?delay, "job failed; will retry");
            Disposition::Ack
        }
        Ok(FailureOutcome::Dead) => {
            crate::meters::job_finished(&envelope.kind, "dead", took);
            tracing::error!(error = %reason, "job dead-lettered");
            if let Err(hook_error) = run_on_dead(ctx, handler, envelope.job_id, &reason).await {
                tracing::error!(error = %hook_error, "recording the dead job's failure failed");
            }
            Disposition::Ack
        }
        Ok(FailureOutcome::AlreadyDone) => Disposition::Ack,
        Err(db_error) => {
            tracing::warn!(error = %reason, %db_error, "cannot record the failure; handing the job back");
            Disposition::Requeue
        }
    }
}

fn timed_out_error(ctx: &JobContext) -> JobError {
    let timeout = ctx.settings.jobs.timeout;
    JobError::Retryable(anyhow::anyhow!(
        "attempt timed out after {timeout:?} and was abandoned"
    ))
}

/// A database that cannot be reached: the delivery goes back to the
/// broker rather than spending an attempt.
fn is_unreachable(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<sqlx::Error>()
        .is_some_and(crate::store::is_unavailable)
}

/// Wall time since the attempt started. The business clock may be moved
/// (`clock.now`) but runs at wall speed, so the difference is real.
fn elapsed_since(ctx: &JobContext, started_at: DateTime<Utc>) -> Duration {
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
async fn dead_letter_raw(
    ctx: &JobContext,
    queue: &str,
    message: Message<'_>,
    reason: &str,
) -> Disposition {
    tracing::warn!(%queue, %reason, "dead-lettering a message that is not a runnable job");
    let body = String::from_utf8_lossy(message.data);
    let stored =
        dead_letters::insert_unattached(&ctx.pool, queue, reason, &body, message.message_id).await;
    settle(stored)
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
