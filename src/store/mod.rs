//! PostgreSQL: connecting (creating the database when it is missing),
//! migrations, and the SQL of each concern in its own module. Functions
//! that are part of a unit of work take the caller's transaction.

pub mod activity;
pub mod audit;
pub mod customer_services;
pub mod dead_letters;
pub mod directory;
pub mod idempotency;
pub mod jobs;
pub mod licenses;
pub mod mails;
pub mod ops_sessions;
pub mod outbox;
pub mod registrations;
pub mod relationships;
pub mod sla;
pub mod statistics;
pub mod status;
pub mod sweeps;
pub mod tokens;
pub mod transfer_forms;
pub mod transfers;
pub mod trial_changes;
pub mod trials;

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::settings::DatabaseSettings;

pub type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

/// [`BEGIN_WITH_GENERIC_PLANS`] as a literal, for `concat!` by callers
/// that open more in the same round trip.
macro_rules! begin_with_generic_plans {
    () => {
        "begin; set local plan_cache_mode = force_generic_plan; set local enable_seqscan = off"
    };
}
pub(crate) use begin_with_generic_plans;

/// Begins a transaction whose statements run on the plan each connection
/// prepared once (`plan_cache_mode = force_generic_plan`, for this
/// transaction only), for units of work whose statements take arrays of
/// ids. A generic plan reckons an array at ten elements, which looks dearer
/// on paper than a custom plan for the one or two ids at hand, so
/// PostgreSQL planned such statements afresh at nearly every call: at 500
/// orders/s the workers' statements spent 1.9 s planning against 5.2 s
/// executing (the key fill planned 1,256 times in 1,359 calls).
///
/// A kept plan is made again only when a table's statistics change, and a
/// plan made while a table was small may read all of it as it grows; so
/// sequential scans are off too (`enable_seqscan`, which only makes them
/// look dear: a table with no usable index is still read). For statements
/// that look rows up by key and whose plan no parameter decides: a filter
/// such as `$1 is null or entity_id = $1` needs a custom plan for its index.
pub const BEGIN_WITH_GENERIC_PLANS: &str = begin_with_generic_plans!();

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn connect_options(settings: &DatabaseSettings) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = settings
        .url
        .expose_secret()
        .parse()
        .context("database.url is not a PostgreSQL URL")?;
    Ok(options.log_statements(tracing::log::LevelFilter::Debug))
}

/// A pool on the configured database, which must exist.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = connect_options(settings)?;
    let database = options.get_database().unwrap_or("postgres").to_owned();
    pool_options(settings)
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to PostgreSQL database {database:?}"))
}

/// Every checkout is checked with a round trip (sqlx's default): after
/// PostgreSQL restarts, the first request must not meet a dead connection.
/// Checking only connections idle for a second saved that round trip
/// under load, but answered 503 to requests right after a restart.
fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(10))
}

/// A pool on the configured database, which must exist and carry this
/// build's schema: what every command but `serve`/`migrate` (and the other
/// long-running processes) opens, so that a mistyped URL is an error, not a
/// new, empty database and an empty answer.
pub async fn open_existing(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options = connect_options(settings)?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let pool = match pool_options(settings).connect_with(options).await {
        Ok(pool) => pool,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            anyhow::bail!(
                "database {name:?} does not exist: check database.url (FULFIL__DATABASE__URL), \
                 or create it with `fulfil migrate`"
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("connecting to PostgreSQL database {name:?}"));
        }
    };
    // Runtime-checked: _sqlx_migrations is the migrator's table, not our
    // schema, and its absence (42P01) is an answer here, not a bug.
    let applied: Result<Option<i64>, sqlx::Error> =
        sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
            .fetch_one(&pool)
            .await;
    let needed = MIGRATOR.iter().map(|m| m.version).max();
    match applied {
        Ok(version) if version >= needed => Ok(pool),
        Ok(_) => anyhow::bail!(
            "database {name:?} has an older fulfil schema than this build: run `fulfil migrate`"
        ),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => anyhow::bail!(
            "database {name:?} has no fulfil schema: check database.url (FULFIL__DATABASE__URL), \
             or run `fulfil migrate`"
        ),
        Err(e) => Err(e).context("reading the schema version"),
    }
}

/// Creates the configured database when it does not exist yet.
/// `name` as an SQL identifier, for the DDL and maintenance statements
/// that cannot take it as a parameter.
fn quoted_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The database that `database.url` names.
pub fn database_name(settings: &DatabaseSettings) -> anyhow::Result<String> {
    Ok(connect_options(settings)?
        .get_database()
        .context("database.url names no database")?
        .to_owned())
}

pub async fn ensure_database(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let options = connect_options(settings)?;
    let name = database_name(settings)?;
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("connecting to PostgreSQL (maintenance database \"postgres\")")?;
    let exists: bool = sqlx::query_scalar!(
        r#"select exists (select 1 from pg_database where datname = $1) as "exists!""#,
        &name,
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // Runtime-checked: DDL with the database name as an identifier.
        match sqlx::query(&format!("create database {}", quoted_identifier(&name)))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it first: that is what we wanted.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("42P04") || e.code().as_deref() == Some("23505") => {
            }
            Err(e) => return Err(e).context(format!("creating database {name:?}")),
        }
    }
    admin.close().await.ok();
    Ok(())
}

/// A read-only transaction that sees one snapshot of the database. Views
/// built from several queries read through it, so a job committing between
/// two of them cannot make the view contradict itself (a request shown done
/// beside the keys it has not revoked yet).
pub async fn snapshot(pool: &PgPool) -> sqlx::Result<Tx<'static>> {
    pool.begin_with("begin isolation level repeatable read read only")
        .await
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("running database migrations")
}

/// Whether a database error means "cannot reach PostgreSQL now" (down,
/// restarting, refusing connections) rather than a bug or bad data.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // 57P01..03: admin/crash shutdown, cannot connect now; 08: connection
        // exceptions; 55000 with this message: connections switched off.
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("57P0")
                || code.starts_with("08")
                || (code == "55000" && e.message().contains("not currently accepting connections"))
        }),
        _ => false,
    }
}

/// Whether an error, through its causes, is a [`is_unavailable`] one.
pub fn unavailable_in(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_unavailable)
    })
}

/// Creates the database if needed, connects and migrates: what the
/// long-running processes and `migrate` do first. PostgreSQL down or
/// restarting is waited for, with backoff and a WARN per retry, for
/// `database.startup_wait`; any other error ends it at once.
pub async fn prepare(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let deadline = tokio::time::Instant::now() + settings.startup_wait;
    let mut backoff =
        crate::retry::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let attempt = async {
            ensure_database(settings).await?;
            let pool = connect(settings).await?;
            migrate(&pool).await?;
            anyhow::Ok(pool)
        };
        match attempt.await {
            Ok(pool) => return Ok(pool),
            Err(error) if unavailable_in(&error) && tokio::time::Instant::now() < deadline => {
                let delay = backoff.next_delay();
                tracing::warn!(error = format!("{error:#}"), retry_in = ?delay,
                    "PostgreSQL is not reachable yet; waiting for it");
                tokio::time::sleep(delay).await;
            }
            Err(error) if unavailable_in(&error) => {
                return Err(error.context(format!(
                    "PostgreSQL was still unreachable after database.startup_wait ({})",
                    humantime::format_duration(settings.startup_wait)
                )));
            }
            Err(error) => return Err(error),
        }
    }
}
