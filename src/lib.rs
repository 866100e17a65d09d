//! fulfil: background fulfilment for cloud and software resale portals.
//!
//! Intake (HTTP) stores each accepted request with its job in PostgreSQL;
//! the outbox relay publishes jobs to RabbitMQ; workers carry them out and
//! queue mail, which the mail worker sends. The scheduler fires the cron
//! sweeps that move trials along their timeline and watch SLA deadlines;
//! operators see it all in the ops API, `/metrics` and the `/ops` page.

pub mod app;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod dashboard;
pub mod enqueue;
pub mod fields;
pub mod intake;
pub mod job;
pub mod licensing;
pub mod locale;
pub mod mail;
pub mod meters;
pub mod ops;
pub mod registrations;
pub mod retry;
pub mod runtime;
pub mod scheduler;
pub mod settings;
pub mod shutdown;
pub mod store;
pub mod sweeps;
pub mod telemetry;
pub mod transfers;
pub mod trials;

/// One module per job kind; kept at the top of the tree so the workers are
/// the first thing a reader finds.
#[path = "../workers/mod.rs"]
pub mod workers;
