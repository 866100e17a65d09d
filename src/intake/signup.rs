//! The sign-up page the registration mail links to by default
//! (`registration.link_base`, `GET /register?token=…`): one button that
//! completes the registration. The one-time token from the person's mailbox
//! is the proof, so the page needs no API token; a portal with a sign-up
//! page of its own posts the token to `POST /v1/registrations/{token}/completion`
//! instead. No JavaScript; logs name the route, never the token.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::problem::ApiError;
use super::registrations::{LinkOutcome, complete_link, link_expired};
use crate::store::tokens::hash_secret;

#[derive(Debug, Deserialize)]
pub struct LinkToken {
    #[serde(default)]
    token: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let service = "Registration";
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · {service}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 36rem; margin: 3rem auto\">\
         <h1>{title}</h1>{body}</body></html>\n"
    );
    let mut response = (status, Html(html)).into_response();
    // The page holds a one-time token: keep it out of caches.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `GET /register?token=…`: what the link opens.
pub async fn show(Query(link): Query<LinkToken>) -> Response {
    if link.token.trim().is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "No sign-up link",
            "<p>Open the link from your registration mail.</p>",
        );
    }
    page(
        StatusCode::OK,
        "Complete your registration",
        &format!(
            "<p>Confirm that you asked to register. The link works once.</p>\
             <form method=\"post\" action=\"/register\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <button type=\"submit\">Complete registration</button></form>",
            escape(link.token.trim())
        ),
    )
}

/// `POST /register` (the page's button): completes the registration.
pub async fn complete(State(state): State<AppState>, Form(link): Form<LinkToken>) -> Response {
    let token_hash = hash_secret(link.token.trim());
    let outcome = async {
        let mut tx = state.pool.begin().await?;
        let outcome = complete_link(&state, &mut tx, &token_hash, None).await;
        if outcome.is_ok() {
            tx.commit().await?;
        }
        outcome
    }
    .await;
    match outcome {
        Ok(LinkOutcome::Completed(registration)) => page(
            StatusCode::OK,
            "Registration complete",
            &format!(
                "<p>Thank you. A confirmation is on its way to {}.</p>",
                escape(&registration.email)
            ),
        ),
        Ok(LinkOutcome::Expired(registration)) => {
            let detail = link_expired(&registration).to_string();
            page(
                StatusCode::GONE,
                "This link has expired",
                &format!("<p>{}</p>", escape(&detail)),
            )
        }
        Err(error @ (ApiError::Conflict { .. } | ApiError::NotFound(_))) => {
            let status = if matches!(error, ApiError::Conflict { .. }) {
                StatusCode::CONFLICT
            } else {
                StatusCode::NOT_FOUND
            };
            page(
                status,
                "This link cannot be used",
                &format!("<p>{}</p>", escape(&error.to_string())),
            )
        }
        Err(error) => error.into_response(),
    }
}
