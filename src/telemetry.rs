//! Tracing set-up: readable lines locally, JSON when `FULFIL_LOG_FORMAT=json`.
//! Colour only on a terminal, so log files hold no escape codes.
//!
//! lapin's own log is off by default: it reports every closed connection
//! as an ERROR, a clean shutdown included, while our reconnect loops log
//! each loss of the broker once, at WARN, with its cause (a `RUST_LOG`
//! that names lapin turns it back on).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let wanted = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let directives = if wanted.contains("lapin") {
        wanted
    } else {
        format!("{wanted},lapin=off")
    };
    let filter =
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    let json = std::env::var("FULFIL_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests spawn many apps in one process) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
