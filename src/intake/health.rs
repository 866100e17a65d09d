//! Liveness (`/healthz`: the process answers), readiness (`/readyz`:
//! PostgreSQL and RabbitMQ both reachable now) and the Prometheus figures
//! (`/metrics`, unauthenticated like the probes: it holds counts, never
//! ids, keys or tokens).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let limit = Duration::from_secs(3);
    let database = tokio::time::timeout(
        limit,
        sqlx::query!("select 1 as one").fetch_one(&state.pool),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let broker = match tokio::time::timeout(
        limit,
        crate::broker::connect(&state.settings.amqp, "fulfil-readyz"),
    )
    .await
    {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "readiness probe".into()).await;
            true
        }
        _ => false,
    };
    let status = if database && broker {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "up" } else { "down" };
    (
        status,
        Json(json!({ "database": word(database), "broker": word(broker) })),
    )
}

pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    crate::ops::metrics::scrape(&state.pool, state.clock.now()).await
}

/// Counts every answer by method, route template and status. The template,
/// not the path: a path may carry a one-time registration token.
pub async fn count_requests(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    crate::meters::http_answered(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
