//! The operators' dashboard at `/ops`: one server-rendered page with the
//! queues, throughput and latency, SLA attainment and open breaches, dead
//! letters with a replay button, and recent failures. It refreshes itself
//! and needs nothing but a browser. A replay from here is the same replay
//! as `POST /v1/ops/dead-letters/replay`: re-checked, rate-limited and
//! audited with the signed-in operator's token. The sign-up review queue
//! (`review`) approves and rejects applications the same way.

mod page;
mod review;
mod session;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use chrono::TimeDelta;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::intake::AppState;
use crate::intake::problem::ApiError;
use crate::store::dead_letters::{self, DeadLetterFilter, Replayed};
use crate::store::{activity, tokens::TokenIdentity};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ops", get(dashboard))
        .route("/ops/login", post(login))
        .route("/ops/logout", post(logout))
        .route("/ops/dead-letters/{id}/replay", post(replay))
        .route("/ops/registrations/{id}/approval", post(review::approve))
        .route("/ops/registrations/{id}/rejection", post(review::reject))
}

#[derive(Debug, Default, Deserialize)]
struct DashboardQuery {
    /// Seconds between refreshes (5 to 300, default 10).
    refresh: Option<u32>,
    /// What the last replay did, shown once after its redirect.
    replayed: Option<u32>,
    skipped: Option<u32>,
    /// What the last review did (`approved`, `rejected`, `refused`).
    reviewed: Option<String>,
}

async fn dashboard(
    State(state): State<AppState>,
    jar: CookieJar,
    query: Result<Query<DashboardQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Some(operator) = session::operator(&state, &jar).await? else {
        return login_page(StatusCode::OK, None);
    };
    // A mangled query string still shows the page, with the defaults.
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let html = render_dashboard(&state, &operator, &query).await?;
    Ok(([("cache-control", "no-store")], Html(html)).into_response())
}

async fn render_dashboard(
    state: &AppState,
    operator: &TokenIdentity,
    query: &DashboardQuery,
) -> anyhow::Result<String> {
    let now = state.clock.now();
    let pool = &state.pool;
    let queues = crate::ops::queues::stats(pool, &state.settings).await?;
    let sla = crate::ops::sla::report(pool, now, state.settings.ops.sla_window).await?;
    let activity = activity::by_kind(pool, now - TimeDelta::hours(1)).await?;
    let failures = activity::recent_failures(pool, 15).await?;
    let open = DeadLetterFilter {
        kind: None,
        since: None,
        ids: &[],
        replayed: Replayed::No,
        limit: 50,
        before: None,
    };
    let dead = dead_letters::list(pool, &open).await?;
    let recent = DeadLetterFilter {
        replayed: Replayed::Yes,
        limit: 10,
        ..open
    };
    let replayed = dead_letters::list(pool, &recent).await?;
    let reviews = review::queue(pool).await?;
    let notice = query.replayed.map(|replayed| {
        let skipped = query.skipped.unwrap_or(0);
        match (replayed, skipped) {
            (1, 0) => "Replayed 1 dead letter: its job is queued again.".to_owned(),
            (n, 0) => format!("Replayed {n} dead letters."),
            (0, _) => "Nothing replayed: the work is no longer needed or was replayed already (see the audit trail).".to_owned(),
            (n, s) => format!("Replayed {n}, skipped {s}."),
        }
    });
    let notice = notice.or_else(|| query.reviewed.as_deref().map(review::notice));
    let stamp = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S").to_string();
    page::render(
        "ops.html",
        json!({
            "operator": operator.name,
            "at": stamp(now),
            "refresh": query.refresh.unwrap_or(10).clamp(5, 300),
            "notice": notice,
            "notice_failed": query.replayed == Some(0) || query.reviewed.as_deref() == Some("refused"),
            "reviews": reviews,
            "queues": queues,
            "activity": activity,
            "sla": sla,
            "sla_since": stamp(sla.since),
            "dead_letters": dead,
            "replayed": replayed,
            "failures": failures,
        }),
    )
}

fn login_page(status: StatusCode, error: Option<&str>) -> Result<Response, ApiError> {
    let html = page::render("login.html", json!({ "error": error }))?;
    Ok((status, [("cache-control", "no-store")], Html(html)).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    if !session::same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "the form was posted from another site".into(),
        ));
    }
    match session::sign_in(&state, jar, &form.token).await? {
        Some((operator, jar)) => {
            tracing::info!(token = %operator.name, "operator signed in to the dashboard");
            Ok((jar, Redirect::to("/ops")).into_response())
        }
        None => login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not an operator token. Check that you pasted all of it."),
        ),
    }
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    if !session::same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "the form was posted from another site".into(),
        ));
    }
    Ok((session::sign_out(&state, jar).await?, Redirect::to("/ops")).into_response())
}

async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    if !session::same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "the form was posted from another site".into(),
        ));
    }
    let Some(operator) = session::operator(&state, &jar).await? else {
        return Ok(Redirect::to("/ops").into_response());
    };
    let report = crate::ops::replay::replay_as(
        &state.pool,
        &state.settings,
        state.clock,
        &operator,
        None,
        &[id],
        false,
    )
    .await?;
    let to = format!(
        "/ops?replayed={}&skipped={}",
        report.replayed, report.skipped
    );
    Ok(Redirect::to(&to).into_response())
}
