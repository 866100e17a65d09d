//! RabbitMQ: connecting with backoff, the topology every process declares,
//! and the outbox relay that publishes jobs with publisher confirms.
//!
//! lapin's own connection recovery is not used: a lost connection ends the
//! loop that owns it, which rebuilds connection, channel and topology.

pub mod relay;
pub mod topology;

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::retry::Backoff;
use crate::settings::AmqpSettings;

/// Connects once; errors never contain the URL (it may hold a password).
pub async fn connect(settings: &AmqpSettings, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.to_owned().into());
    Connection::connect(settings.url.expose_secret(), properties)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to RabbitMQ: {e}"))
}

/// Connects, retrying with backoff until it works or `shutdown` fires.
pub async fn connect_with_backoff(
    settings: &AmqpSettings,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match connect(settings, name).await {
            Ok(connection) => return Some(connection),
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%error, retry_in = ?delay, "RabbitMQ is unreachable");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}
