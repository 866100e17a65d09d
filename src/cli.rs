//! The `fulfil` command line: one binary, a subcommand per role.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fulfil",
    version,
    about = "Background fulfilment for resale portals: intake API, workers, outbox relay, scheduler.",
    long_about = "Background fulfilment for resale portals.\n\n\
        Upstream portals post requests to the intake API; each accepted request is stored with its \
        job in PostgreSQL and published to RabbitMQ; workers issue license keys and send mail.\n\n\
        Configuration: config/default.toml, then config/$FULFIL_ENV.toml, then FULFIL__SECTION__KEY \
        environment variables (e.g. FULFIL__DATABASE__URL, FULFIL__AMQP__URL, FULFIL__HTTP__ADDR)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: the API, every worker, the relay and the scheduler (the one-machine default).
    Serve,
    /// Run only the intake API (and the outbox relay).
    Api,
    /// Run workers: all job kinds, or only those named (e.g. `fulfil worker license.new mail.send`).
    Worker {
        // The kinds come from the registry, so the help cannot fall behind it.
        #[arg(help = format!("Job kinds: {}.", crate::workers::kind_list()))]
        kinds: Vec<String>,
    },
    /// Fire the cron sweeps (scheduler.trial_notices, .trial_purges, .number_releases, .sla_watch).
    ///
    /// Run as many replicas as you like: each tick of each schedule runs once, on the replica
    /// that claims it first in PostgreSQL. Schedules follow wall time (UTC); the sweeps judge
    /// what is due by the business clock (clock.now).
    Scheduler,
    /// Run one sweep now and print what it found.
    ///
    /// Each due trial gets one job, which the workers carry out (and re-check under lock).
    /// Example: fulfil sweep trial-purges --dry-run
    Sweep(SweepArgs),
    /// Create the database if needed and apply migrations, then exit.
    Migrate,
    /// Per job queue: ready messages and consumers (broker), jobs waiting and running, the oldest
    /// waiting job's age, and open dead letters (database).
    Queues(QueuesArgs),
    /// List dead letters, or replay them.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// License keys and certificates.
    #[command(subcommand)]
    License(LicenseCommand),
}

#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// Refresh every N seconds until Ctrl-C.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Dead letters not yet replayed, newest first, with their reason and attempts.
    List {
        /// Only this job kind (e.g. license.new).
        #[arg(long)]
        kind: Option<String>,
        /// Only those since this instant (RFC 3339).
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Run dead jobs again, after checking their entity still needs the work.
    ///
    /// Each replayed job gets jobs.max_attempts more attempts. Example:
    /// fulfil dead-letters replay --kind mail.send --dry-run
    Replay {
        /// Only this job kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only these dead letters (or jobs), by id; repeatable.
        #[arg(long = "id")]
        ids: Vec<uuid::Uuid>,
        /// Show what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many replays per second.
        #[arg(long, default_value_t = 20)]
        rate: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    pub sweep: crate::sweeps::Sweep,
    /// List what would happen to each due trial; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only its hash is stored.
    ///
    /// Example: fulfil token create --role portal --partner acme --name "ACME portal"
    Create(TokenCreate),
    /// List tokens, newest first: id, name, role, partner, created, revoked (never a secret).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id: it answers 401 from now on, and its dashboard sessions end.
    Revoke {
        /// The token's id, as `fulfil token list` shows it.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreate {
    /// portal (acts for one partner), operator, or scheduler.
    #[arg(long)]
    pub role: String,
    /// The partner a portal token acts for (created if unknown).
    #[arg(long)]
    pub partner: Option<String>,
    /// A label for people reading the token list.
    #[arg(long, default_value = "unnamed")]
    pub name: String,
    /// Requests per second for this token (default: http.rate_limit_per_second).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Check a license key (its check character, offline; its status when the
    /// database is reachable) or a license certificate (its Ed25519 signature, offline).
    ///
    /// A revoked key is not valid: the command exits 1. Verify never creates a signing key;
    /// elsewhere than where fulfil runs, pass --public-key (from `fulfil license public-key`).
    Verify(LicenseVerify),
    /// Print the public key that verifies license certificates (base64), for
    /// `fulfil license verify CERT --public-key KEY` on another machine.
    PublicKey {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct LicenseVerify {
    /// A license key (XXXXX-XXXXX-XXXXX-XXXXX-XXXXX) or a certificate (fulfil-cert-v1.…).
    pub input: String,
    /// The signer's public key (base64, from `fulfil license public-key`); default: derived
    /// from the configured signing key, which must exist.
    #[arg(long)]
    pub public_key: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}
