//! The consumer loop of one job kind: connect, declare, consume with a
//! bounded prefetch, run the deliveries in batches, ack after commit (see
//! [`super::acks`] for how the acks are sent).
//! A lost connection rebuilds everything with backoff; shutdown stops
//! consuming, lets in-flight attempts finish within the grace period, and
//! hands back (by closing the channel) whatever did not.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::OptionFuture;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::acks::{PendingAcks, Settled};
use super::attempt::Disposition;
use super::{DeliveryProcessor, JobContext};
use crate::broker::topology::Topology;

/// Consumes the processor's queue until `shutdown`.
pub async fn run(
    ctx: JobContext,
    processor: Arc<dyn DeliveryProcessor>,
    shutdown: CancellationToken,
) {
    let topology = Topology::new(&ctx.settings.amqp);
    let queue = processor.queue(&topology);
    let name = format!("fulfil-worker-{}", processor.name());
    let lost = format!("worker of {queue} lost the broker");
    let mut link = crate::broker::Reconnect::new(&ctx.settings.amqp, &name, &lost);
    while let Some(connection) = link.connect(&shutdown).await {
        let session = consume(&ctx, &processor, &topology, &queue, &connection, &shutdown).await;
        if !link.ended(connection, session, &shutdown).await {
            break;
        }
    }
    tracing::info!(%queue, "worker stopped");
}

async fn consume(
    ctx: &JobContext,
    processor: &Arc<dyn DeliveryProcessor>,
    topology: &Topology,
    queue: &str,
    connection: &Connection,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let channel = connection.create_channel().await?;
    topology.declare(&channel).await?;
    channel
        .basic_qos(ctx.settings.amqp.prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("{}-{}", processor.name(), uuid::Uuid::new_v4().simple());
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            tag.clone().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%queue, prefetch = ctx.settings.amqp.prefetch, "worker consuming");

    // Deliveries wait here for an attempt slot; whoever gets a slot takes
    // as many as the processor runs together, so under load one
    // transaction carries several jobs and at low load none waits for
    // company.
    let limit = processor.batch_limit(&ctx.settings);
    let start_batch = |in_flight: &mut InFlight,
                       waiting: &mut VecDeque<Delivery>,
                       permit: OwnedSemaphorePermit| {
        let batch: Vec<Delivery> = waiting.drain(..waiting.len().min(limit)).collect();
        let tags = batch.iter().map(|d| d.delivery_tag).collect();
        let task = run_batch(
            ctx.clone(),
            processor.clone(),
            queue.to_owned(),
            batch,
            permit,
        );
        let id = in_flight.tasks.spawn(task).id();
        in_flight.tags.insert(id, tags);
    };
    let mut waiting: VecDeque<Delivery> = VecDeque::new();
    let mut slot: Option<Pin<Box<SlotWait>>> = None;
    let mut in_flight = InFlight::default();
    let mut pending = PendingAcks::default();
    let failure = loop {
        if slot.is_none() && !waiting.is_empty() {
            slot = Some(Box::pin(ctx.attempts.clone().acquire_owned()));
        }
        tokio::select! {
            // Deliveries already received are taken in before a slot is
            // handed out, so a batch holds everything that is waiting.
            biased;
            _ = shutdown.cancelled() => break None,
            Some(joined) = in_flight.tasks.join_next_with_id(), if !in_flight.tasks.is_empty() => {
                settle(&channel, &mut pending, &mut in_flight, joined).await;
            }
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => {
                    pending.delivered(delivery.delivery_tag);
                    waiting.push_back(delivery);
                }
                Some(Err(error)) => break Some(anyhow::Error::from(error)),
                None => break Some(anyhow::anyhow!("the broker cancelled the consumer")),
            },
            Some(permit) = OptionFuture::from(slot.as_mut()), if slot.is_some() => {
                slot = None;
                // Closed only if the process is going away.
                let Ok(permit) = permit else { continue };
                start_batch(&mut in_flight, &mut waiting, permit);
            }
        }
    };

    if let Some(error) = failure {
        // Let running attempts finish their commits; their deliveries come
        // back on the next connection and are recognised as done.
        in_flight.tasks.detach_all();
        return Err(error);
    }
    let _ = channel
        .basic_cancel(tag.into(), BasicCancelOptions::default())
        .await;
    let grace = ctx.settings.jobs.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        // Prefetched deliveries are in-flight work too: finish them. A
        // slot already asked for is awaited, not asked for again: the
        // pending request holds its place, and the permit it is granted.
        while !waiting.is_empty() {
            let acquired = match slot.take() {
                Some(asked) => asked.await,
                None => ctx.attempts.clone().acquire_owned().await,
            };
            let Ok(permit) = acquired else { break };
            start_batch(&mut in_flight, &mut waiting, permit);
        }
        while let Some(joined) = in_flight.tasks.join_next_with_id().await {
            settle(&channel, &mut pending, &mut in_flight, joined).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = in_flight.tasks.len(),
            ?grace,
            "jobs still running at the end of the grace period go back to the queue"
        );
        in_flight.tasks.abort_all();
    }
    let _ = channel.close(200, "worker stopping".into()).await;
    Ok(())
}

type SlotWait = dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send;

/// The batches running, and the delivery tags of each.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<Vec<(u64, Settled)>>,
    tags: HashMap<Id, Vec<u64>>,
}

/// Records how a batch settled its deliveries and sends the acks that are
/// due. The deliveries of a batch that panicked are handed back first:
/// left unsettled they would hold their place in the prefetch window, and
/// an ack with `multiple` must not pass over them.
async fn settle(
    channel: &Channel,
    pending: &mut PendingAcks,
    in_flight: &mut InFlight,
    joined: Result<(Id, Vec<(u64, Settled)>), JoinError>,
) {
    let settled = match joined {
        Ok((id, settled)) => {
            in_flight.tags.remove(&id);
            settled
        }
        Err(error) => {
            tracing::error!(%error, "a job task panicked; its deliveries go back to the queue");
            let tags = in_flight.tags.remove(&error.id()).unwrap_or_default();
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            let handed_back = tags.iter().map(|&tag| channel.basic_nack(tag, requeue));
            for nacked in futures::future::join_all(handed_back).await {
                if let Err(error) = nacked {
                    tracing::warn!(%error, "could not hand a delivery back");
                }
            }
            tags.into_iter()
                .map(|tag| (tag, Settled::WithBroker))
                .collect()
        }
    };
    for (tag, how) in settled {
        pending.settle(tag, how);
    }
    let acks = pending.take();
    let run = acks
        .up_to
        .map(|tag| channel.basic_ack(tag, BasicAckOptions { multiple: true }));
    let each = acks
        .each
        .iter()
        .map(|&tag| channel.basic_ack(tag, BasicAckOptions::default()));
    for acked in futures::future::join_all(run.into_iter().chain(each)).await {
        if let Err(error) = acked {
            // The broker redelivers them; the job rows know they are done.
            tracing::warn!(%error, "could not settle deliveries");
        }
    }
}

/// Runs one batch in its attempt slot; says how each delivery of it was
/// settled, for the consumer loop to ack.
async fn run_batch(
    ctx: JobContext,
    processor: Arc<dyn DeliveryProcessor>,
    queue: String,
    batch: Vec<Delivery>,
    permit: OwnedSemaphorePermit,
) -> Vec<(u64, Settled)> {
    let dispositions = processor.process(&ctx, &queue, &batch).await;
    drop(permit);
    let mut settled = Vec::with_capacity(batch.len());
    let mut requeue = Vec::new();
    for (delivery, disposition) in batch.into_iter().zip(dispositions) {
        match disposition {
            Disposition::Ack => settled.push((delivery.delivery_tag, Settled::Done)),
            Disposition::Requeue => requeue.push(delivery),
        }
    }
    if requeue.is_empty() {
        return settled;
    }
    // Give the database a moment before the broker hands them out again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for delivery in requeue {
        let handed_back = delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await;
        if let Err(error) = handed_back {
            tracing::warn!(%error, "could not hand a delivery back");
        }
        settled.push((delivery.delivery_tag, Settled::WithBroker));
    }
    settled
}
