//! Names and declarations: one durable direct exchange for jobs, one
//! durable quorum queue per job kind, and a dead-letter exchange and queue
//! for what the broker itself gives up on (the delivery limit).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::job::JobKind;
use crate::settings::AmqpSettings;

/// Held while a connection of this process declares the topology.
/// RabbitMQ 3.10 answers the declaration of a quorum queue that another
/// connection is still creating as if the queue ran; a consume on it
/// then fails (`noproc`) and the broker closes the connection with
/// INTERNAL_ERROR. When `fulfil serve` started on a fresh broker, its
/// fourteen connections declared at once and one of them now and then
/// lost that race: it reconnected, but only after an ERROR in the log.
/// In turn, the first declaration of each queue returns once the queue
/// runs, and the others find it running.
static DECLARING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    delivery_limit: u32,
    queue_expires_ms: Option<u64>,
}

impl Topology {
    pub fn new(settings: &AmqpSettings) -> Topology {
        Topology {
            prefix: settings.prefix.clone(),
            delivery_limit: settings.delivery_limit,
            queue_expires_ms: settings.queue_expires.map(|d| d.as_millis() as u64),
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}jobs", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}dead", self.prefix)
    }

    pub fn queue(&self, kind: JobKind) -> String {
        format!("{}{}", self.prefix, kind.as_str())
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}dead-letters", self.prefix)
    }

    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = JobKind::ALL.iter().map(|k| self.queue(*k)).collect();
        queues.push(self.dead_letter_queue());
        queues
    }

    fn base_queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        if let Some(ms) = self.queue_expires_ms {
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms as i64));
        }
        args
    }

    /// Declares everything; idempotent, and cheap enough to run on every
    /// (re)connect so that a fresh broker is never published to before its
    /// queues exist. The connections of one process declare one at a time
    /// (see [`DECLARING`]).
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let _turn = DECLARING.lock().await;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        let queue_options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                queue_options,
                self.base_queue_arguments(),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue().into(),
                self.dead_letter_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for &kind in JobKind::ALL {
            let mut args = self.base_queue_arguments();
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(self.delivery_limit.into()),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.dead_letter_exchange().into()),
            );
            // At-least-once dead-lettering (3.10+) keeps a message until the
            // dead-letter queue confirmed it; it requires reject-publish.
            args.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
            args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
            channel
                .queue_declare(self.queue(kind).into(), queue_options, args)
                .await?;
            channel
                .queue_bind(
                    self.queue(kind).into(),
                    self.exchange().into(),
                    kind.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }
}
