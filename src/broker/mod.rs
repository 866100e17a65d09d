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

/// The reconnect loop every long-lived AMQP user (each consumer, the
/// relay) runs:
///
/// ```ignore
/// let mut link = Reconnect::new(&settings.amqp, "fulfil-relay", "the relay lost the broker");
/// while let Some(connection) = link.connect(&shutdown).await {
///     let session = work(&connection).await;
///     if !link.ended(connection, session, &shutdown).await { break; }
/// }
/// ```
///
/// A failed session is logged and followed by a backoff that starts over
/// once a session had lasted, so a broker restart costs one short pause
/// and a broken broker is not hammered.
pub struct Reconnect<'a> {
    settings: &'a AmqpSettings,
    name: &'a str,
    lost: &'a str,
    backoff: Backoff,
    started: std::time::Instant,
}

impl<'a> Reconnect<'a> {
    pub fn new(settings: &'a AmqpSettings, name: &'a str, lost: &'a str) -> Reconnect<'a> {
        Reconnect {
            settings,
            name,
            lost,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            started: std::time::Instant::now(),
        }
    }

    /// The next connection, or `None` once `shutdown` fired.
    pub async fn connect(&mut self, shutdown: &CancellationToken) -> Option<Connection> {
        let connection = connect_with_backoff(self.settings, self.name, shutdown).await?;
        self.started = std::time::Instant::now();
        Some(connection)
    }

    /// Closes the session's connection; whether to connect again: only
    /// after a failed session, once its backoff passed without `shutdown`.
    pub async fn ended(
        &mut self,
        connection: Connection,
        session: anyhow::Result<()>,
        shutdown: &CancellationToken,
    ) -> bool {
        let _ = connection.close(200, "stopping".into()).await;
        let Err(error) = session else {
            return false;
        };
        let delay = self.backoff.after_session(self.started.elapsed());
        tracing::warn!(error = format!("{error:#}"), retry_in = ?delay, "{}; reconnecting", self.lost);
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
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
