//! The outbox relay: publishes committed jobs to RabbitMQ as persistent
//! messages and marks their rows only after the broker confirmed them. A
//! crash between confirm and mark publishes a row twice, never zero times;
//! workers treat the second copy as a duplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::topology::Topology;
use crate::settings::Settings;
use crate::store::{self, dead_letters, outbox};

pub struct Relay {
    pool: PgPool,
    settings: Settings,
    topology: Topology,
    wake: RelayWake,
}

/// Wakes this process's relay after a commit that wrote rows due now, in
/// place of the `fulfil_outbox` notification.
///
/// A transaction that notifies takes a lock that every notifying
/// transaction of the cluster waits for, and holds it until its commit is
/// flushed: the intake's group commits queued behind each other's WAL
/// flush. And every listening session read every notification in a
/// transaction of its own (the bench's commits per order: 0.57 with
/// notifications, 0.28 without). A session that carries
/// [`RelayWake::SETTING`] is not notified for (see the outbox trigger);
/// it wakes the relay of its own process instead. Only a process that
/// runs a relay may set it, so a row written elsewhere (a process without
/// one, `fulfil dead-letters replay`) still notifies the relays of the
/// others.
#[derive(Clone, Default)]
pub struct RelayWake(Arc<Notify>);

impl RelayWake {
    /// The session setting the outbox trigger reads.
    pub const SETTING: (&'static str, &'static str) = ("fulfil.wakes_relay", "on");

    /// A commit wrote rows due now: the relay claims them without waiting
    /// for its poll. Wakes held while the relay is busy collapse into one.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await;
    }
}

impl Relay {
    pub fn new(pool: PgPool, settings: Settings, wake: RelayWake) -> Relay {
        let topology = Topology::new(&settings.amqp);
        Relay {
            pool,
            settings,
            topology,
            wake,
        }
    }

    /// Runs until `shutdown`, reconnecting to the broker whenever it goes.
    pub async fn run(self, shutdown: CancellationToken) {
        let lost = "outbox relay lost its connection";
        let mut link = super::Reconnect::new(&self.settings.amqp, "fulfil-relay", lost);
        while let Some(connection) = link.connect(&shutdown).await {
            let session = self.publish_until_shutdown(&connection, &shutdown).await;
            if !link.ended(connection, session, &shutdown).await {
                break;
            }
        }
    }

    async fn publish_until_shutdown(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.topology
            .declare(&channel)
            .await
            .context("declaring the topology")?;
        let mut listener = self.listen().await;
        tracing::info!("outbox relay publishing");
        let mut stale_mails_checked = Instant::now();
        loop {
            if stale_mails_checked.elapsed() >= self.settings.outbox.poll_interval {
                stale_mails_checked = Instant::now();
                self.queue_stale_mails().await;
            }
            let published = self.publish_batch(&channel).await?;
            if published as i64 >= self.settings.outbox.batch_size {
                continue;
            }
            let poll = self.settings.outbox.poll_interval;
            let wait = match outbox::next_due_in(&self.pool).await {
                Ok(Some(due)) => due.min(poll),
                _ => poll,
            };
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Closed here, not when dropped: a dropped channel asks
                    // lapin to close it later, and if the connection is
                    // closing by then, lapin logs the refusal as an ERROR.
                    let _ = channel.close(200, "relay stopping".into()).await;
                    return Ok(());
                }
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.woken() => coalesce(&mut listener).await,
                notified = recv(&mut listener) => {
                    if notified {
                        coalesce(&mut listener).await;
                    } else {
                        // Fall back to polling until the listener is rebuilt.
                        listener = self.listen().await;
                    }
                }
            }
        }
    }

    /// Mails handed to a process's own sender that it did not send in
    /// their grace get their jobs here, to be published like any other.
    async fn queue_stale_mails(&self) {
        let max_attempts = self.settings.jobs.max_attempts;
        if let Err(error) = store::mails::queue_stale_handoffs(&self.pool, max_attempts).await {
            tracing::warn!(%error, "cannot look for mails whose handoff ran out");
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen("fulfil_outbox").await.ok()?;
        Some(listener)
    }

    /// Publishes one batch of due rows in one transaction. Returns how many.
    async fn publish_batch(&self, channel: &Channel) -> anyhow::Result<usize> {
        let mut tx = self
            .pool
            .begin_with(store::BEGIN_WITH_GENERIC_PLANS)
            .await?;
        let due = outbox::claim_due(&mut tx, self.settings.outbox.batch_size).await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let exchange = self.topology.exchange();
        // `basic_publish` queues a message's frames for the connection's
        // I/O thread, wakes it, and returns once they are written. Awaited
        // one after another, every message cost a round trip to that
        // thread (a wake and two context switches each); polled together,
        // the batch's frames are queued first and written together.
        let publishes = due.iter().map(|message| {
            let properties = BasicProperties::default()
                .with_message_id(message.envelope.job_id.to_string().into())
                .with_type(message.envelope.kind.clone().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            let options = BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            };
            let exchange = exchange.clone();
            async move {
                let body = serde_json::to_vec(&message.envelope)?;
                let confirm = channel
                    .basic_publish(
                        exchange.into(),
                        message.envelope.kind.clone().into(),
                        options,
                        &body,
                        properties,
                    )
                    .await?;
                anyhow::Ok(confirm)
            }
        });
        let confirms = futures::future::try_join_all(publishes).await?;
        for (message, confirm) in due.iter().zip(confirms) {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                // Unroutable: no queue takes this kind. Retrying cannot help,
                // and holding the row back would block every row behind it.
                Confirmation::Ack(Some(_)) => {
                    let body = serde_json::to_string(&message.envelope)?;
                    let message_id = message.envelope.job_id.to_string();
                    dead_letters::insert(
                        &mut *tx,
                        dead_letters::NewDeadLetter {
                            job_id: Some(message.envelope.job_id),
                            kind: Some(&message.envelope.kind),
                            queue: &exchange,
                            reason: &format!(
                                "no queue is bound for job kind {:?}",
                                message.envelope.kind
                            ),
                            body: &body,
                            attempts: message.envelope.attempt - 1,
                            message_id: Some(&message_id),
                        },
                    )
                    .await?;
                }
                Confirmation::Nack(_) => anyhow::bail!("the broker refused a message (nack)"),
                Confirmation::NotRequested => anyhow::bail!("publisher confirms are off"),
            }
        }
        let ids: Vec<i64> = due.iter().map(|m| m.outbox_id).collect();
        outbox::delete_published(&mut tx, &ids).await?;
        tx.commit().await?;
        tracing::debug!(count = ids.len(), "published jobs");
        Ok(ids.len())
    }
}

/// Under load every commit that writes a job notifies; claiming once per
/// notification cost two or three transactions per job. Waiting this long
/// after the first lets the commits of the next few milliseconds share
/// one claim, for at most this much latency.
const COALESCE: Duration = Duration::from_millis(5);

/// Lets notifications gather for [`COALESCE`], then drops the ones that
/// arrived meanwhile: the next claim publishes their rows too.
async fn coalesce(listener: &mut Option<PgListener>) {
    tokio::time::sleep(COALESCE).await;
    if let Some(listener) = listener {
        while listener.next_buffered().is_some() {}
    }
}

/// Waits for a notification; `false` when the listener is gone or broke.
async fn recv(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
