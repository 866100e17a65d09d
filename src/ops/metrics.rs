//! `GET /metrics`: the process's recorded events (`meters`) and the figures
//! that live in PostgreSQL (queue depth, outbox lag, dead letters, open SLA
//! breaches), read at scrape time so every replica reports the same truth.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::gauge;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::store::{outbox, sla};

/// `/metrics` on its own listener (`http.metrics_addr`), for processes
/// without the API: `fulfil worker` and `fulfil scheduler` count jobs and
/// mails that only they see.
pub fn router(pool: PgPool, clock: Clock) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State((pool, clock)): State<(PgPool, Clock)>| async move {
                scrape(&pool, clock.now()).await
            }),
        )
        .with_state((pool, clock))
}

/// The `/metrics` answer: Prometheus text, or 503 when PostgreSQL cannot
/// be read (a scrape without the queue figures would mislead).
pub async fn scrape(pool: &PgPool, now: chrono::DateTime<chrono::Utc>) -> Response {
    match render(pool, now).await {
        Ok(text) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot read the figures for /metrics");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database cannot be read\n",
            )
                .into_response()
        }
    }
}

/// The Prometheus text: the database's figures read now, then everything.
pub async fn render(pool: &PgPool, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<String> {
    let handle = crate::meters::handle();
    let (kinds, unattached) = super::queues::database_figures(pool).await?;
    for figures in kinds {
        let kind = figures.kind.as_str();
        gauge!("fulfil_queue_waiting", "kind" => kind).set(figures.waiting as f64);
        gauge!("fulfil_queue_running", "kind" => kind).set(figures.running as f64);
        let oldest = figures.oldest_waiting.map_or(0.0, |at| {
            (now - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        gauge!("fulfil_queue_oldest_waiting_seconds", "kind" => kind).set(oldest);
        gauge!("fulfil_dead_letters_open", "kind" => kind).set(figures.dead_letters as f64);
    }
    // Messages that named no job at all have no kind.
    gauge!("fulfil_dead_letters_open", "kind" => "unknown").set(unattached as f64);
    let (unpublished, oldest) = outbox::lag(pool).await?;
    gauge!("fulfil_outbox_unpublished").set(unpublished as f64);
    gauge!("fulfil_outbox_lag_seconds").set(oldest.unwrap_or(0.0).max(0.0));
    gauge!("fulfil_sla_open_breaches").set(sla::count_open_breaches(pool, now).await? as f64);
    handle.run_upkeep();
    Ok(handle.render())
}
