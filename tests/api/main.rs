//! Black-box tests through the HTTP API, the real RabbitMQ and the real
//! PostgreSQL: one fresh database and AMQP prefix per test.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod batches;
mod bola;
mod cancellations;
mod cli;
mod delivery;
mod directory;
mod handoff;
mod health;
mod idempotency;
mod idle;
mod issuance;
mod operations;
mod order_changes;
mod registrations;
mod relationships;
mod relay;
mod sla;
mod statistics;
mod transfer_forms;
mod transfers;
mod trial_changes;
mod trials;
mod validation;
