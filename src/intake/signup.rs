//! The sign-up page the registration mail links to by default
//! (`registration.link_base`, `GET /register?token=…`): the application
//! form, whose button completes the registration with it. The one-time token from the person's mailbox
//! is the proof, so the page needs no API token; a portal with a sign-up
//! page of its own posts the token to `POST /v1/registrations/{token}/completion`
//! instead. No JavaScript; logs name the route, never the token.

use std::collections::HashMap;

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

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

/// The application form: one field per part of the application, named
/// as [`application_from_form`] reads them.
const FORM: &str = r#"<form method="post" action="/register">
<input type="hidden" name="token" value="{token}">
<fieldset><legend>Cloud services</legend>
<p><label><input type="checkbox" name="aws" value="on"> AWS</label>
<select name="aws_account" aria-label="AWS account"><option value="new">new account</option><option value="transfer">transfer an existing account</option></select>
<select name="aws_plan" aria-label="AWS plan"><option value="standard">standard</option><option value="fixed_ticket">fixed ticket</option><option value="direct_contract">direct contract (transfer only)</option></select></p>
<p><label><input type="checkbox" name="google_cloud" value="on"> Google Cloud (new)</label>
<label>admin Google account <input type="email" name="google_admin_email"></label></p>
</fieldset>
<fieldset><legend>Organisation</legend>
<p><label>Name <input name="organisation_name" required></label></p>
<p><label>Corporate number <input name="organisation_corporate_number" pattern="[0-9]{13}"></label></p>
<p><label>Address <input name="organisation_address" required></label></p>
<p><label>Phone <input type="tel" name="organisation_phone" required></label></p>
</fieldset>
<fieldset><legend>Contact person</legend>
<p><label>Name <input name="contact_name" required></label></p>
<p><label>Department <input name="contact_department"></label></p>
<p><label>Phone <input type="tel" name="contact_phone" required></label></p>
</fieldset>
<fieldset><legend>Billing contact</legend>
<p><label><input type="checkbox" name="billing_same" value="on" checked> same as the contact person</label></p>
<p><label>Name <input name="billing_name"></label> <label>Mail <input type="email" name="billing_email"></label> <label>Phone <input type="tel" name="billing_phone"></label></p>
<p><label>With both clouds, split the invoices <select name="split_invoices"><option value="">-</option><option value="yes">yes</option><option value="no">no</option></select></label></p>
</fieldset>
<fieldset><legend>Emergency contact</legend>
<p><label><input type="checkbox" name="emergency_same" value="on" checked> same as the contact person</label></p>
<p><label>Name <input name="emergency_name"></label> <label>Mail <input type="email" name="emergency_email"></label> <label>Phone <input type="tel" name="emergency_phone"></label></p>
</fieldset>
<p><label><input type="checkbox" name="consent_terms" value="on"> I accept the terms of service</label></p>
<p><label><input type="checkbox" name="consent_privacy" value="on"> I accept the privacy policy</label></p>
<button type="submit">Apply</button></form>"#;

/// `GET /register?token=…`: what the link opens.
pub async fn show(Query(link): Query<LinkToken>) -> Response {
    if link.token.trim().is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "No sign-up link",
            "<p>Open the link from your registration mail.</p>",
        );
    }
    let form = FORM.replace("{token}", &escape(link.token.trim()));
    page(
        StatusCode::OK,
        "Complete your registration",
        &format!(
            "<p>Fill in your application; we review it and mail you when the service starts. The link works once.</p>{}",
            form
        ),
    )
}

/// The form's fields as the JSON application `POST
/// /v1/registrations/{token}/completion` takes, so both are held to the
/// same rules. An unticked box is `false`; an empty field is absent.
fn application_from_form(form: &HashMap<String, String>) -> serde_json::Value {
    let text = |name: &str| {
        form.get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let ticked = |name: &str| text(name).is_some();
    let person = |prefix: &str| {
        json!({
            "name": text(&format!("{prefix}_name")).unwrap_or_default(),
            "email": text(&format!("{prefix}_email")).unwrap_or_default(),
            "phone": text(&format!("{prefix}_phone")).unwrap_or_default(),
        })
    };
    let mut services = serde_json::Map::new();
    if ticked("aws") {
        services.insert(
            "aws".into(),
            json!({ "account": text("aws_account"), "plan": text("aws_plan") }),
        );
    }
    if ticked("google_cloud") {
        services.insert(
            "google_cloud".into(),
            json!({ "admin_email": text("google_admin_email").unwrap_or_default() }),
        );
    }
    let mut billing = json!({ "same_as_contact": ticked("billing_same") });
    if !ticked("billing_same") {
        billing["contact"] = person("billing");
    }
    if let Some(split) = text("split_invoices") {
        billing["split_invoices"] = json!(split == "yes");
    }
    let mut emergency = json!({ "same_as_contact": ticked("emergency_same") });
    if !ticked("emergency_same") {
        emergency["contact"] = person("emergency");
    }
    json!({
        "services": services,
        "organisation": {
            "name": text("organisation_name").unwrap_or_default(),
            "corporate_number": text("organisation_corporate_number"),
            "address": text("organisation_address").unwrap_or_default(),
            "phone": text("organisation_phone").unwrap_or_default(),
        },
        "contact": {
            "name": text("contact_name").unwrap_or_default(),
            "department": text("contact_department"),
            "phone": text("contact_phone").unwrap_or_default(),
        },
        "billing": billing,
        "emergency": emergency,
        "consents": { "terms": ticked("consent_terms"), "privacy": ticked("consent_privacy") },
    })
}

/// `POST /register` (the page's button): applies with the form.
pub async fn complete(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    let token_hash = hash_secret(token);
    let body = Bytes::from(application_from_form(&form).to_string());
    let outcome = async {
        let mut tx = state.pool.begin().await?;
        let outcome = complete_link(&state, &mut tx, &token_hash, None, &body).await;
        if outcome.is_ok() {
            tx.commit().await?;
        }
        outcome
    }
    .await;
    match outcome {
        Ok(LinkOutcome::Applied(registration)) => page(
            StatusCode::OK,
            "Application received",
            &format!(
                "<p>Thank you. We review your application; a confirmation is on its way to {}.</p>",
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
        Err(ApiError::Validation(errors)) => {
            let items: String = errors
                .iter()
                .map(|e| {
                    format!(
                        "<li data-field=\"{0}\"><code>{0}</code> {1}</li>",
                        escape(&e.field),
                        escape(&e.message)
                    )
                })
                .collect();
            page(
                StatusCode::BAD_REQUEST,
                "Please check your application",
                &format!(
                    "<ul>{items}</ul><p>Nothing was used up: go back, correct it and apply again.</p>"
                ),
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
