//! Registrations: the mailed one-time link, read back from the mail the
//! file transport wrote, completes once; a reused link answers 409, an
//! expired one 410.

use chrono::{DateTime, TimeDelta, Utc};
use fulfil::app::Components;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::issuance::decoded_text;
use crate::support::{TestApp, spawn_with, test_settings, wait_for};

fn t0() -> DateTime<Utc> {
    "2030-03-01T09:00:00Z".parse().unwrap()
}

async fn register(app: &TestApp, token: &str, email: &str) -> Value {
    let body = json!({ "email": email, "locale": "en" });
    let response = app
        .post(
            "/v1/registrations",
            token,
            &Uuid::new_v4().to_string(),
            &body,
        )
        .await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

/// The link token from the registration mail sent to `email`.
async fn link_token_mailed_to(app: &TestApp, email: &str) -> String {
    let mut text = None;
    let arrived = wait_for(std::time::Duration::from_secs(30), || {
        text = app
            .mail_files()
            .iter()
            .map(|raw| decoded_text(raw))
            .find(|t| t.contains(email) && t.contains("token="));
        std::future::ready(text.is_some())
    })
    .await;
    assert!(arrived, "a registration mail to {email}");
    let text = text.unwrap();
    let start = text.find("token=").unwrap() + "token=".len();
    text[start..].split_whitespace().next().unwrap().to_owned()
}

async fn complete(app: &TestApp, token: &str, link_token: &str) -> reqwest::Response {
    let path = format!("/v1/registrations/{link_token}/completion");
    app.post(&path, token, &Uuid::new_v4().to_string(), &json!({}))
        .await
}

async fn sent(app: &TestApp, template: &str) -> i64 {
    app.count(&format!(
        "select count(*) from mails where template = '{template}' and status = 'sent'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailed_link_completes_once_then_the_service_start_is_mailed() {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    let app = spawn_with(settings, Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let accepted = register(&app, &portal, "new@cust.example").await;
    assert_eq!(accepted["status"], "pending");
    assert!(
        !accepted.to_string().contains("reg_"),
        "the link token reaches only the mailbox: {accepted}"
    );

    let link_token = link_token_mailed_to(&app, "new@cust.example").await;
    assert!(link_token.starts_with("reg_"), "{link_token}");
    let done = complete(&app, &portal, &link_token).await;
    assert_eq!(done.status(), 200);
    let view: Value = done.json().await.unwrap();
    assert_eq!(view["status"], "completed");

    let reused = complete(&app, &portal, &link_token).await;
    assert_eq!(reused.status(), 409);
    let problem: Value = reused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:registration-link-used");
    assert!(!problem.to_string().contains(&link_token), "{problem}");

    let id = accepted["registration_id"].as_str().unwrap();
    let path = format!("/v1/registrations/{id}/service-start");
    let body = json!({ "services": ["chat"] });
    let started = app.post(&path, &portal, "start-1", &body).await;
    assert_eq!(started.status(), 200);
    let stranger = app.portal_token("globex").await;
    assert_eq!(complete(&app, &stranger, "reg_nothing").await.status(), 404);

    let all_sent = wait_for(std::time::Duration::from_secs(30), || async {
        sent(&app, "registration").await == 1
            && sent(&app, "registration_completed").await == 1
            && sent(&app, "service_started").await == 1
    })
    .await;
    assert!(
        all_sent,
        "registration, completion and start mails sent once each"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_answers_410_and_completes_nothing() {
    let mut settings = test_settings();
    settings.clock.now = Some(t0());
    let mut app = spawn_with(settings, Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let accepted = register(&app, &portal, "late@cust.example").await;
    let link_token = link_token_mailed_to(&app, "late@cust.example").await;

    app.travel_to(t0() + TimeDelta::hours(3) + TimeDelta::minutes(1))
        .await;
    let late = complete(&app, &portal, &link_token).await;
    assert_eq!(late.status(), 410);
    let problem: Value = late.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:fulfil:problem:registration-link-expired"
    );
    let id = accepted["registration_id"].as_str().unwrap();
    let view: Value = app
        .get(&format!("/v1/registrations/{id}"), &portal)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "expired");
    assert_eq!(complete(&app, &portal, &link_token).await.status(), 410);
    assert_eq!(
        app.count("select count(*) from mails where template = 'registration_completed'")
            .await,
        0
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailed_link_opens_a_sign_up_page_that_completes_the_registration_once() {
    let app = spawn_with(test_settings(), Components::everything()).await;
    let portal = app.portal_token("acme").await;
    let registration = register(&app, &portal, "page@cust.example").await;

    // The link as mailed, with the default link_base, opens a page here.
    let link_token = link_token_mailed_to(&app, "page@cust.example").await;
    let link_base = &app.settings.registration.link_base;
    assert_eq!(link_base, "http://127.0.0.1:8080/register?token=");
    let path = format!("/register?token={link_token}");
    let page = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/register\""),
        "{html}"
    );

    // The button completes it, once.
    let press = || {
        app.client
            .post(app.url("/register"))
            .form(&[("token", link_token.as_str())])
            .send()
    };
    let first = press().await.unwrap();
    let second = press().await.unwrap();

    assert_eq!(first.status(), 200);
    assert!(
        first
            .text()
            .await
            .unwrap()
            .contains("Registration complete")
    );
    assert_eq!(second.status(), 409);
    let id = registration["registration_id"].as_str().unwrap();
    let view: Value = app
        .get(&format!("/v1/registrations/{id}"), &portal)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "completed");
    assert!(
        wait_for(std::time::Duration::from_secs(20), || async {
            sent(&app, "registration_completed").await == 1
        })
        .await
    );
    app.cleanup().await;
}
