//! The SLA watch and the SLA report (issue 6): a license request that no
//! worker picks up is announced to the operators once when it comes within
//! the margin of its deadline and once when it breaches, however often
//! the watch runs; `GET /v1/ops/sla` counts it against the request that
//! was done in time; `/metrics` shows both.

use chrono::{DateTime, TimeDelta, Utc};
use fulfil::app::Components;
use fulfil::job::JobKind;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, new_order, spawn_with, test_settings, wait_for};

async fn watch(app: &TestApp, token: &str) -> Value {
    let response = app
        .post(
            "/v1/sweeps/sla-watch",
            token,
            &Uuid::new_v4().to_string(),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn sla_mails(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        "select split_part(cause, ':', 1), recipient from mails
         where template = 'sla_alert' order by created_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_request_is_announced_at_risk_then_breached_once_each() {
    let mut settings = test_settings();
    settings.license.sla.new = std::time::Duration::from_secs(3600);
    settings.ops.email = "ops@fulfil.example".into();
    let mut on_time = spawn_with(settings.clone(), Components::everything()).await;
    let portal = on_time.portal_with_customer("acme", "cust-1").await;
    let operator = on_time.token(Role::Operator, None).await;
    on_time
        .active_order(&portal, &new_order("virtual", 1))
        .await;
    on_time.stop().await;

    // No license.new worker from here on: the next order's request waits.
    let mut components = Components::everything();
    components
        .workers
        .retain(|kind| *kind != JobKind::LicenseNew);
    let mut app = spawn_with(settings, components).await;
    let accepted = app.order(&portal, &new_order("virtual", 2)).await;
    let deadline: DateTime<Utc> = accepted["sla_deadline"].as_str().unwrap().parse().unwrap();

    let early = watch(&app, &operator).await;
    assert_eq!(
        early["due"], 0,
        "an hour from its deadline nothing is due: {early}"
    );

    app.travel_to(deadline - TimeDelta::minutes(5)).await;
    let dry = app
        .post(
            "/v1/sweeps/sla-watch",
            &operator,
            "dry",
            &json!({ "dry_run": true }),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(dry["due"], 1, "{dry}");
    assert_eq!(dry["items"][0]["entity_type"], "license_request");
    assert!(sla_mails(&app).await.is_empty(), "a dry run mails nobody");
    let at_risk = watch(&app, &operator).await;
    assert_eq!(
        (at_risk["due"].as_u64(), at_risk["published"].as_u64()),
        (Some(1), Some(1)),
        "{at_risk}"
    );
    let again = watch(&app, &operator).await;
    assert_eq!(again["due"], 0, "announced once: {again}");

    app.travel_to(deadline + TimeDelta::minutes(1)).await;
    let (first, second) = tokio::join!(watch(&app, &operator), watch(&app, &operator));
    assert_eq!(
        first["published"].as_u64().unwrap() + second["published"].as_u64().unwrap(),
        1,
        "two watches at once announce the breach once: {first} {second}"
    );
    assert_eq!(
        sla_mails(&app).await,
        [
            ("sla_at_risk".to_owned(), "ops@fulfil.example".to_owned()),
            ("sla_breached".to_owned(), "ops@fulfil.example".to_owned())
        ]
    );
    let sent = wait_for(std::time::Duration::from_secs(30), || async {
        app.mail_files()
            .iter()
            .filter(|mail| mail.contains("SLA breached: new request"))
            .count()
            == 1
    })
    .await;
    assert!(
        sent,
        "the breach mail reached the operators: {:?}",
        app.mail_files()
    );

    let report: Value = app
        .get("/v1/ops/sla?window=1d", &operator)
        .await
        .json()
        .await
        .unwrap();
    let rows = report["attainment"].as_array().unwrap();
    let acme_new = rows
        .iter()
        .find(|row| row["portal"] == "acme" && row["kind"] == "new")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        (&acme_new["met"], &acme_new["breached"], &acme_new["open"]),
        (&json!(1), &json!(1), &json!(0)),
        "{report}"
    );
    assert_eq!(acme_new["attainment"], 0.5);
    assert!(acme_new["p50_secs"].as_f64().unwrap() < 60.0, "{report}");
    let overall = rows.last().unwrap();
    assert!(
        overall["portal"].is_null() && overall["met"] == 1,
        "{report}"
    );
    assert_eq!(report["open_breaches"].as_array().unwrap().len(), 1);
    assert_eq!(report["open_breaches"][0]["job_status"], "queued");
    let bad = app.get("/v1/ops/sla?window=soon", &operator).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(app.get("/v1/ops/sla", &portal).await.status(), 403);

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "fulfil_sla_open_breaches 1",
        "fulfil_queue_waiting{kind=\"license.new\"} 1",
        "fulfil_dead_letters_open{kind=\"mail.send\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    for series in [
        "fulfil_sla_alerts_total{stage=\"breached\"}",
        "fulfil_jobs_total{kind=\"mail.send\",outcome=\"succeeded\"}",
        "fulfil_job_duration_seconds_bucket{kind=\"license.new\",outcome=\"succeeded\",le=\"",
        "fulfil_mails_total{outcome=\"sent\"}",
        "fulfil_http_requests_total{method=\"GET\",route=\"/v1/ops/sla\",status=\"400\"}",
        "fulfil_outbox_lag_seconds ",
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    assert!(!metrics.contains(&portal) && !metrics.contains(&operator));
    app.cleanup().await;
}
