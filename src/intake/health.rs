//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`:
//! PostgreSQL and RabbitMQ both reachable now).

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
    let database = tokio::time::timeout(limit, sqlx::query("select 1").execute(&state.pool))
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
