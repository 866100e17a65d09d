//! Mail: templates in Japanese and English and the typed context each is
//! filled in with, message building with a deterministic Message-ID, the
//! transports (a directory of `.eml` files, or SMTP), and queueing a mail
//! with the state change that causes it.

pub mod contexts;
pub mod handoff;
pub mod message;
pub mod queue;
pub mod stored;
pub mod templates;
pub mod transport;

use std::sync::Arc;

pub use crate::locale::Locale;

use crate::settings::{MailSettings, MailTransportKind};
use secrecy::ExposeSecret;

/// The transport the settings ask for.
pub fn transport_from_settings(
    settings: &MailSettings,
) -> anyhow::Result<Arc<dyn transport::MailTransport>> {
    Ok(match settings.transport {
        MailTransportKind::File => Arc::new(transport::FileTransport::new(settings.dir.clone())),
        MailTransportKind::Smtp => Arc::new(
            transport::SmtpTransport::from_url(settings.smtp_url.expose_secret())
                .map_err(|e| anyhow::anyhow!("mail.smtp_url: {e}"))?,
        ),
    })
}
