//! The typed side of a handler: a `Worker` names its args type and gets
//! them decoded; the blanket impl below turns every worker into the
//! `JobHandler` trait object the runtime and the registry hold.

use async_trait::async_trait;

use super::{Batching, JobContext, JobHandler, payload};
use crate::job::{JobArgs, JobError, JobKind, SetOutcome, StillNeeded};
use crate::store::Tx;
use crate::store::jobs::JobRow;

/// The outcome of a one-job set, for a worker whose `work` is its
/// `work_set` on one job.
pub fn only(outcome: SetOutcome) -> Result<(), JobError> {
    outcome?.pop().unwrap_or(Ok(()))
}

/// One job kind's work, given its args already decoded. The kind is the
/// args type's (`JobArgs::KIND`), so a worker cannot serve the wrong queue.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    type Args: JobArgs;

    /// Runs inside the attempt's transaction (see [`JobHandler::handle`]).
    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        args: Self::Args,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError>;

    /// See [`JobHandler::batching`].
    fn batching(&self) -> Batching {
        Batching::Alone
    }

    /// The set form of [`Worker::work`], for a kind whose `batching` is
    /// [`Batching::Sets`]: the work of several jobs in a few statements
    /// for all. A job that fails must have written nothing, since the
    /// others commit; a statement that fails is an `Err` for the set. The
    /// default has no set form, so the jobs run one by one.
    async fn work_set(
        &self,
        _ctx: &JobContext,
        _jobs: &[(&JobRow, Self::Args)],
        _tx: &mut Tx<'_>,
    ) -> SetOutcome {
        Err(JobError::fatal(format!(
            "{} has no set form",
            <Self::Args as JobArgs>::KIND
        )))
    }

    /// See [`JobHandler::on_dead`].
    async fn on_dead(
        &self,
        _ctx: &JobContext,
        _job: &JobRow,
        _args: Self::Args,
        _tx: &mut Tx<'_>,
        _error: &str,
    ) -> Result<(), JobError> {
        Ok(())
    }

    /// Asked before a dead job is replayed: does its entity still need the
    /// work? Most kinds re-check everything under lock when they run, so
    /// the default is yes; a kind overrides it to spare the operator a
    /// replay that would do nothing, and to say what to do instead.
    async fn still_needed(
        &self,
        _tx: &mut Tx<'_>,
        _args: &Self::Args,
    ) -> sqlx::Result<StillNeeded> {
        Ok(StillNeeded::Yes)
    }
}

#[async_trait]
impl<W: Worker> JobHandler for W {
    fn kind(&self) -> JobKind {
        W::Args::KIND
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        // A payload that does not parse fails the job for good.
        let args = payload::<W::Args>(job)?;
        Worker::work(self, ctx, job, args, tx).await
    }

    fn batching(&self) -> Batching {
        Worker::batching(self)
    }

    async fn handle_set(&self, ctx: &JobContext, jobs: &[&JobRow], tx: &mut Tx<'_>) -> SetOutcome {
        // Each payload is decoded once; one that does not parse fails its
        // job alone.
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut decoded = Vec::with_capacity(jobs.len());
        for &job in jobs {
            match payload::<W::Args>(job) {
                Ok(args) => {
                    decoded.push((job, args));
                    outcomes.push(None);
                }
                Err(error) => outcomes.push(Some(Err(error))),
            }
        }
        let mut worked = Worker::work_set(self, ctx, &decoded, tx).await?.into_iter();
        let outcomes = outcomes
            .into_iter()
            .map(|failed| failed.or_else(|| worked.next()).unwrap_or(Ok(())))
            .collect();
        Ok(outcomes)
    }

    async fn on_dead(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
        error: &str,
    ) -> Result<(), JobError> {
        let args = payload::<W::Args>(job)?;
        Worker::on_dead(self, ctx, job, args, tx, error).await
    }

    async fn still_needed(&self, tx: &mut Tx<'_>, job: &JobRow) -> sqlx::Result<StillNeeded> {
        // A payload this build cannot read names nothing to look at: let
        // the replay run, and the attempt will say why it fails.
        match payload::<W::Args>(job) {
            Ok(args) => Worker::still_needed(self, tx, &args).await,
            Err(_) => Ok(StillNeeded::Yes),
        }
    }
}
