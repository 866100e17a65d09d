//! The job runtime every worker shares: what a handler is given, how one
//! delivery becomes one attempt, and the consumer loop around it.

mod acks;
pub mod attempt;
pub mod consumer;
pub mod dead_letter_intake;
pub mod mail_sender;
pub mod worker;

pub use worker::{Worker, only};

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgPool;

use lapin::message::Delivery;

use crate::broker::topology::Topology;
use crate::clock::Clock;
use crate::job::{JobError, JobKind, SetOutcome, StillNeeded};
use crate::licensing::certificate::Signer;
use crate::licensing::vendor::VendorAdapter;
use crate::mail::handoff::Handoff;
use crate::mail::queue::Mailer;
use crate::mail::transport::MailTransport;
use crate::settings::Settings;
use crate::store::Tx;
use crate::store::jobs::JobRow;
use attempt::Disposition;

/// Everything a handler may use. Cheap to clone: all shared.
#[derive(Clone)]
pub struct JobContext {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub signer: Arc<Signer>,
    pub vendor: Arc<dyn VendorAdapter>,
    pub mailer: Mailer,
    pub mail_transport: Arc<dyn MailTransport>,
    /// Attempts running at once in this process, across every job kind.
    /// Each holds a database connection, so this stays below the pool size
    /// and leaves connections to the API and the relay; deliveries beyond
    /// it wait in memory (they are prefetched, not lost).
    pub attempts: Arc<tokio::sync::Semaphore>,
    /// The local mail sender, when this process runs `mail.send`.
    pub handoff: Handoff,
}

impl JobContext {
    /// What the issuing license workers need of the context.
    pub fn issuer(&self) -> crate::licensing::issuance::Issuer<'_> {
        crate::licensing::issuance::Issuer {
            signer: &self.signer,
            vendor: &*self.vendor,
            mailer: &self.mailer,
            handoff: &self.handoff,
        }
    }

    /// A copy for one batch of attempts: the mail its transactions hand
    /// off is its own.
    fn for_attempts(&self) -> JobContext {
        JobContext {
            handoff: self.handoff.for_attempt(),
            ..self.clone()
        }
    }
}

/// One job kind's work, as the runtime holds it (a trait object per kind,
/// from the registry). Workers implement the typed [`Worker`] instead and
/// get this by a blanket impl. `handle` runs inside the attempt's
/// transaction, which the runtime commits together with marking the job
/// succeeded: the effects and "done" are one atomic fact.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    fn kind(&self) -> JobKind;

    async fn handle(&self, ctx: &JobContext, job: &JobRow, tx: &mut Tx<'_>)
    -> Result<(), JobError>;

    /// Whether and how several of this kind's jobs share one transaction.
    fn batching(&self) -> Batching;

    /// Handles several jobs at once (see [`Batching::Sets`]).
    async fn handle_set(&self, ctx: &JobContext, jobs: &[&JobRow], tx: &mut Tx<'_>) -> SetOutcome;

    /// Runs once when the job is dead-lettered, in a transaction of its
    /// own, so that the entity it worked on can record the failure (a
    /// transfer becomes `failed`).
    async fn on_dead(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
        error: &str,
    ) -> Result<(), JobError>;

    /// Whether a dead job's entity still needs the work, asked before a
    /// replay (see [`Worker::still_needed`]).
    async fn still_needed(&self, tx: &mut Tx<'_>, job: &JobRow) -> sqlx::Result<StillNeeded>;
}

/// How several deliveries of one kind share a transaction. Anything but
/// `Alone` is only for handlers that lock one entity of their own per job
/// (an order, a mail): a handler that locks several could deadlock with
/// another batch, and would gain little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// One job, one transaction.
    Alone,
    /// One transaction for several jobs, each in its own savepoint: one
    /// commit for the lot.
    Savepoints,
    /// One transaction for several jobs, handled as a set
    /// ([`Worker::work_set`]): a few statements for the lot. Should the
    /// set fail as a whole, its writes are rolled back and its jobs run
    /// again in savepoints.
    Sets,
}

/// Turns deliveries into dispositions, one each, in order; the consumer
/// loop acks or requeues accordingly.
#[async_trait]
pub trait DeliveryProcessor: Send + Sync + 'static {
    /// Names the worker in connection names and consumer tags.
    fn name(&self) -> String;
    fn queue(&self, topology: &Topology) -> String;
    /// How many deliveries one call of `process` may take.
    fn batch_limit(&self, _settings: &Settings) -> usize {
        1
    }
    async fn process(
        &self,
        ctx: &JobContext,
        queue: &str,
        incoming: &[Delivery],
    ) -> Vec<Disposition>;
}

/// Runs a job handler's attempts (a registered handler, which lives for
/// the whole process).
pub struct JobProcessor(pub &'static dyn JobHandler);

#[async_trait]
impl DeliveryProcessor for JobProcessor {
    fn name(&self) -> String {
        self.0.kind().to_string()
    }

    fn queue(&self, topology: &Topology) -> String {
        topology.queue(self.0.kind())
    }

    fn batch_limit(&self, settings: &Settings) -> usize {
        match self.0.batching() {
            Batching::Alone => 1,
            Batching::Savepoints | Batching::Sets => settings.jobs.batch_size.max(1),
        }
    }

    async fn process(
        &self,
        ctx: &JobContext,
        queue: &str,
        incoming: &[Delivery],
    ) -> Vec<Disposition> {
        let messages: Vec<attempt::Message<'_>> = incoming
            .iter()
            .map(|d| attempt::Message {
                data: &d.data,
                message_id: dead_letter_intake::message_id(d),
            })
            .collect();
        attempt::process(ctx, self.0, queue, &messages).await
    }
}

/// Parses a job's payload, or fails the job for good: a payload this
/// version cannot read will not read better next time.
pub fn payload<T: serde::de::DeserializeOwned>(job: &JobRow) -> Result<T, JobError> {
    serde_json::from_value(job.payload.clone())
        .map_err(|e| JobError::fatal(format!("payload of {} job does not parse: {e}", job.kind)))
}
