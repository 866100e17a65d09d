//! Moves what the broker dead-lettered (a message redelivered past the
//! queue's delivery limit, typically because it crashed its worker every
//! time) into the dead-letters table, where operators see and replay it.

use async_trait::async_trait;
use lapin::message::Delivery;
use lapin::types::AMQPValue;

use super::attempt::Disposition;
use super::{DeliveryProcessor, JobContext};
use crate::broker::topology::Topology;
use crate::job::Envelope;
use crate::store::jobs;

pub struct DeadLetterIntake;

#[async_trait]
impl DeliveryProcessor for DeadLetterIntake {
    fn name(&self) -> String {
        "dead-letters".into()
    }

    fn queue(&self, topology: &Topology) -> String {
        topology.dead_letter_queue()
    }

    async fn process(
        &self,
        ctx: &JobContext,
        _queue: &str,
        incoming: &[Delivery],
    ) -> Vec<Disposition> {
        let mut settled = Vec::with_capacity(incoming.len());
        for delivery in incoming {
            settled.push(file(ctx, delivery).await);
        }
        settled
    }
}

/// Files one broker dead letter, with the job it names when it parses.
async fn file(ctx: &JobContext, delivery: &Delivery) -> Disposition {
    let (queue, reason) = death_of(delivery);
    let body = String::from_utf8_lossy(&delivery.data);
    let reason = format!("the broker dead-lettered it from {queue}: {reason}");
    let stored = match serde_json::from_slice::<Envelope>(&delivery.data) {
        Ok(envelope) => {
            jobs::dead_letter_unrunnable(
                &ctx.pool,
                envelope.job_id,
                &reason,
                &queue,
                &body,
                message_id(delivery),
                ctx.clock.now(),
            )
            .await
        }
        Err(_) => {
            crate::store::dead_letters::insert_unattached(
                &ctx.pool,
                &queue,
                &reason,
                &body,
                message_id(delivery),
            )
            .await
        }
    };
    match stored {
        Ok(()) => {
            tracing::error!(%queue, %reason, "message dead-lettered by the broker");
            Disposition::Ack
        }
        Err(error) => {
            tracing::warn!(%error, "cannot store a broker dead letter yet");
            Disposition::Requeue
        }
    }
}

/// The AMQP message id the delivery carries, if any.
pub(super) fn message_id(delivery: &Delivery) -> Option<&str> {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|id| id.as_str())
}

/// The queue and reason from the first `x-death` entry.
fn death_of(delivery: &Delivery) -> (String, String) {
    let unknown = || ("unknown queue".to_owned(), "unknown reason".to_owned());
    let Some(headers) = delivery.properties.headers() else {
        return unknown();
    };
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return unknown();
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        return unknown();
    };
    let text = |key: &str| match death.inner().get(key) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        _ => "unknown".to_owned(),
    };
    let reason = match text("reason").as_str() {
        "delivery_limit" => "redelivered past the delivery limit".to_owned(),
        other => other.to_owned(),
    };
    (text("queue"), reason)
}
