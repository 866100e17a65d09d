//! Layered configuration: built-in defaults < `config/default.toml` <
//! `config/$FULFIL_ENV.toml` < `FULFIL__SECTION__KEY` environment variables.
//! URLs that may carry passwords are `SecretString`s, so they never print.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::locale::Locale;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub http: HttpSettings,
    pub jobs: JobSettings,
    pub outbox: OutboxSettings,
    pub mail: MailSettings,
    pub license: LicenseSettings,
    pub scheduler: SchedulerSettings,
    pub transfers: TransferSettings,
    pub trial: TrialSettings,
    pub registration: RegistrationSettings,
    pub relationships: RelationshipSettings,
    pub ops: OpsSettings,
    #[serde(default)]
    pub clock: ClockSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a starting process waits for PostgreSQL (down, restarting)
    /// before it gives up, retrying with backoff meanwhile.
    #[serde(with = "humantime_serde")]
    pub startup_wait: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: SecretString,
    pub prefix: String,
    pub prefetch: u16,
    pub delivery_limit: u32,
    /// Deletes a queue unused this long (`x-expires`). Unset in production;
    /// tests set it so that their throw-away queues clean themselves up.
    #[serde(default, with = "humantime_serde")]
    pub queue_expires: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// Also serve `/metrics` here; for processes without the API.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub body_limit_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    pub max_attempts: i32,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Deliveries of one kind that may share a transaction.
    pub batch_size: usize,
    /// Attempts (batches) running at once per process, across all kinds;
    /// 0: two per core, within what the pool allows
    /// (max_connections − max(max/4, 2)).
    #[serde(default)]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboxSettings {
    pub relay: bool,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    pub batch_size: i64,
    /// How long a mail that this process hands to its own sender stays
    /// its own, without a job; past it, a relay gives the mail its
    /// `mail.send` job. `0s` hands nothing over (see `mail::handoff`).
    #[serde(with = "humantime_serde")]
    pub handoff_grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    File,
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    pub dir: PathBuf,
    pub smtp_url: SecretString,
    pub from: String,
    pub service_name: String,
    #[serde(deserialize_with = "crate::locale::deserialize_tag")]
    pub default_locale: Locale,
    pub message_id_domain: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LicenseSettings {
    #[serde(default)]
    pub signing_key: Option<SecretString>,
    pub signing_key_file: PathBuf,
    pub sla: SlaSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SlaSettings {
    #[serde(with = "humantime_serde")]
    pub new: Duration,
    #[serde(with = "humantime_serde")]
    pub additional: Duration,
    #[serde(with = "humantime_serde")]
    pub vm_count: Duration,
    #[serde(with = "humantime_serde")]
    pub cancellation: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TransferSettings {
    /// A ticket not carried out within this long expires.
    #[serde(with = "humantime_serde")]
    pub expire_after: Duration,
    /// A transfer form not completed and submitted within this long of its
    /// opening expires; its one-time link works as long.
    #[serde(with = "humantime_serde")]
    pub form_valid: Duration,
    /// The page the customer admin opens to complete a transfer form; the
    /// link is this with the token appended.
    pub form_link_base: String,
}

/// The trial lifecycle's offsets (SPEC §1.3).
#[derive(Debug, Clone, Deserialize)]
pub struct TrialSettings {
    /// The first notice goes out this long before `ends_at`.
    #[serde(with = "humantime_serde")]
    pub notice_before: Duration,
    /// After `ends_at`, the trial can still be converted or extended this long.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// One extension moves the end this far past the later of now and the end.
    #[serde(with = "humantime_serde")]
    pub extension_step: Duration,
    pub max_extensions: i32,
    /// Calling numbers of a purged trial stay reserved this long.
    #[serde(with = "humantime_serde")]
    pub number_hold: Duration,
    /// The portal's purchase page; notices link to it with the trial id appended.
    pub purchase_link_base: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RegistrationSettings {
    /// How long the one-time link in the registration mail works.
    #[serde(with = "humantime_serde")]
    pub link_valid: Duration,
    /// The portal's sign-up page; the link is this with the token appended.
    pub link_base: String,
    /// Mail domains that get no link, only the "application not completed" mail.
    #[serde(default)]
    pub refused_domains: Vec<String>,
}

/// Invitations that grant access (SPEC §1.5): a customer's acceptance of
/// a reseller relationship, a reseller's acceptance of a partnership.
#[derive(Debug, Clone, Deserialize)]
pub struct RelationshipSettings {
    /// How long an invitation's one-time link works.
    #[serde(with = "humantime_serde")]
    pub invite_valid: Duration,
    /// The page a customer admin opens to accept or decline a reseller
    /// relationship; the link is this with the token appended.
    pub link_base: String,
    /// The page a reseller's admin opens to accept a partnership.
    pub partnership_link_base: String,
}

/// What operators hear and see (issue 6).
#[derive(Debug, Clone, Deserialize)]
pub struct OpsSettings {
    /// The operators' address: SLA alerts go here.
    pub email: String,
    /// A license request not done this long before its SLA deadline is
    /// announced as at risk.
    #[serde(with = "humantime_serde")]
    pub sla_margin: Duration,
    /// The default window of `GET /v1/ops/sla` and the dashboard.
    #[serde(with = "humantime_serde")]
    pub sla_window: Duration,
    /// A dashboard sign-in lasts this long.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark the dashboard's cookie `Secure` (serve `/ops` over HTTPS only).
    pub secure_cookie: bool,
}

/// Cron expressions (with seconds, UTC) of the sweeps; the scheduler fires
/// each one once per tick across all replicas.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerSettings {
    pub enabled: bool,
    pub trial_notices: String,
    pub trial_purges: String,
    pub number_releases: String,
    pub sla_watch: String,
    /// Scheduled runs' rows in `sweep_runs` older than this are deleted
    /// (manual runs, which carry the operator's token, are kept).
    #[serde(with = "humantime_serde")]
    pub keep_runs: Duration,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClockSettings {
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

/// RabbitMQ's default `consumer_timeout`: a delivery held longer than this
/// closes the channel, so a job attempt must always end well before it.
pub const BROKER_ACK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Parses a cron expression the way the scheduler reads it: six fields,
/// seconds first (`sec min hour day-of-month month day-of-week`).
pub fn parse_schedule(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
        .map_err(|e| format!("not a cron expression with seconds (e.g. \"0 */10 * * * *\"): {e}"))
}

const BUILT_IN: &str = include_str!("../config/default.toml");

impl Settings {
    /// Loads the layers, reading `config/` below the working directory.
    pub fn load() -> anyhow::Result<Settings> {
        Self::load_from(&std::env::current_dir()?.join("config"))
    }

    pub fn load_from(config_dir: &std::path::Path) -> anyhow::Result<Settings> {
        let environment = std::env::var("FULFIL_ENV").unwrap_or_else(|_| "local".into());
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(BUILT_IN, config::FileFormat::Toml))
            .add_source(config::File::from(config_dir.join("default.toml")).required(false))
            .add_source(config::File::from(config_dir.join(&environment)).required(false))
            .add_source(
                config::Environment::with_prefix("FULFIL")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    // FULFIL__REGISTRATION__REFUSED_DOMAINS=a.example,b.example
                    .list_separator(",")
                    .with_list_parse_key("registration.refused_domains"),
            )
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("configuration is invalid")?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that would break a guarantee instead of failing
    /// later in a way nobody connects to the cause.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.jobs.timeout < BROKER_ACK_TIMEOUT,
            "jobs.timeout ({:?}) must be shorter than the broker's ack timeout ({:?})",
            self.jobs.timeout,
            BROKER_ACK_TIMEOUT
        );
        anyhow::ensure!(
            self.jobs.max_attempts > 0,
            "jobs.max_attempts must be at least 1"
        );
        anyhow::ensure!(self.amqp.prefetch > 0, "amqp.prefetch must be at least 1");
        anyhow::ensure!(
            self.amqp.delivery_limit > 0,
            "amqp.delivery_limit must be at least 1"
        );
        anyhow::ensure!(
            self.http.rate_limit_per_second > 0 && self.http.rate_limit_burst > 0,
            "http.rate_limit_per_second and http.rate_limit_burst must be at least 1"
        );
        anyhow::ensure!(
            self.trial.max_extensions >= 0,
            "trial.max_extensions must not be negative"
        );
        anyhow::ensure!(
            !self.trial.extension_step.is_zero() && !self.registration.link_valid.is_zero(),
            "trial.extension_step and registration.link_valid must be longer than zero"
        );
        anyhow::ensure!(
            !self.relationships.invite_valid.is_zero() && !self.transfers.form_valid.is_zero(),
            "relationships.invite_valid and transfers.form_valid must be longer than zero"
        );
        anyhow::ensure!(
            self.ops.email.contains('@'),
            "ops.email must be a mail address, not {:?}",
            self.ops.email
        );
        anyhow::ensure!(
            !self.ops.sla_window.is_zero(),
            "ops.sla_window must be longer than zero"
        );
        for (key, expression) in [
            ("scheduler.trial_notices", &self.scheduler.trial_notices),
            ("scheduler.trial_purges", &self.scheduler.trial_purges),
            ("scheduler.number_releases", &self.scheduler.number_releases),
            ("scheduler.sla_watch", &self.scheduler.sla_watch),
        ] {
            parse_schedule(expression)
                .map_err(|e| anyhow::anyhow!("{key} = {expression:?}: {e}"))?;
        }
        url::Url::parse(self.database.url.expose_secret())
            .map_err(|e| anyhow::anyhow!("database.url is not a URL: {e}"))?;
        url::Url::parse(self.amqp.url.expose_secret())
            .map_err(|e| anyhow::anyhow!("amqp.url is not a URL: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_defaults_load_and_validate() {
        let dir = std::env::temp_dir().join(format!("fulfil-settings-{}", uuid::Uuid::new_v4()));
        let settings = Settings::load_from(&dir).expect("defaults load");
        assert_eq!(settings.http.addr.port(), 8080);
        assert_eq!(settings.license.sla.additional, Duration::from_secs(1800));
        assert_eq!(settings.mail.transport, MailTransportKind::File);
    }

    #[test]
    fn a_job_timeout_reaching_the_brokers_ack_timeout_is_refused() {
        let dir = std::env::temp_dir().join(format!("fulfil-settings-{}", uuid::Uuid::new_v4()));
        let mut settings = Settings::load_from(&dir).expect("defaults load");
        settings.jobs.timeout = BROKER_ACK_TIMEOUT;
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("jobs.timeout"), "{error}");
    }

    #[test]
    fn secrets_do_not_print() {
        let dir = std::env::temp_dir().join(format!("fulfil-settings-{}", uuid::Uuid::new_v4()));
        let settings = Settings::load_from(&dir).expect("defaults load");
        let printed = format!("{settings:?}");
        assert!(!printed.contains("guest:guest"), "{printed}");
    }
}
