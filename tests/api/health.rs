use std::time::Duration;

use fulfil::app::Components;
use serde_json::Value;

use crate::support::{
    DatabaseOutage, new_order, spawn_process_with, spawn_with, test_settings, wait_for,
};

#[tokio::test]
async fn health_readiness_and_openapi_are_served() {
    let app = spawn_with(test_settings(), Components::api_only()).await;

    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let openapi: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        serde_json::json!({"database": "up", "broker": "up"})
    );
    for path in [
        "/v1/license-orders",
        "/v1/license-orders/{id}/additions",
        "/v1/license-orders/{id}/vm-count",
        "/v1/license-orders/{id}/cancellations",
        "/v1/ops/audit",
        "/v1/partners/{id}",
        "/v1/customers/{id}",
        "/v1/users/{id}",
        "/v1/subscriptions/{id}",
        "/v1/role-assignments/{id}",
        "/v1/reseller-relationships/{partner_id}/{customer_id}",
        "/v1/jobs/{id}",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} is documented");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn readiness_fails_when_the_broker_is_unreachable() {
    let mut settings = test_settings();
    settings.amqp.url =
        secrecy::SecretString::from("amqp://guest:guest@127.0.0.1:1/%2f".to_owned());
    settings.outbox.relay = false;
    let app = spawn_with(settings, Components::api_only()).await;

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();

    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["broker"], "down");
    app.cleanup().await;
}

/// The value of one series in Prometheus text, e.g. `fulfil_mails_total{outcome="sent"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// A `fulfil worker` process has no API, yet only it sees its jobs and
/// mails: with `http.metrics_addr` it serves them at `/metrics` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_serves_its_own_counts_at_the_metrics_addr() {
    let settings = test_settings();
    let app = spawn_with(settings.clone(), Components::api_only()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let _worker = spawn_process_with(
        &settings,
        &["worker", "license.new", "mail.send"],
        &[("FULFIL__HTTP__METRICS_ADDR", metrics_addr.as_str())],
        std::process::Stdio::null(),
    );
    let token = app.portal_with_customer("acme", "cust-1").await;
    app.active_order(&token, &new_order("virtual", 1)).await;

    let url = format!("http://{metrics_addr}/metrics");
    let scrape = || async {
        let response = app.client.get(&url).send().await.ok()?;
        assert_eq!(response.status(), 200);
        response.text().await.ok()
    };
    let counted = wait_for(Duration::from_secs(30), || async {
        let sent = app
            .count("select count(*) from mails where status = 'sent'")
            .await;
        let Some(text) = scrape().await else {
            return false;
        };
        sent > 0
            && sample(&text, "fulfil_mails_total{outcome=\"sent\"}") == Some(sent as f64)
            && sample(
                &text,
                "fulfil_jobs_total{kind=\"license.new\",outcome=\"succeeded\"}",
            ) == Some(1.0)
    })
    .await;
    let text = scrape().await.expect("the worker answers /metrics");
    assert!(
        counted,
        "the worker's own job and mail counts, exactly: {text}"
    );
    assert_eq!(
        sample(&text, "fulfil_queue_waiting{kind=\"license.new\"}"),
        Some(0.0),
        "and the database's figures"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_order_after_the_database_dropped_every_connection_is_accepted() {
    // Arrange: orders one after the other have opened every connection
    // the order placer keeps (outside the pool, which checks each
    // checkout; the placer takes its connections in turn).
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    for key in ["before-1", "before-2"] {
        let before = app
            .post("/v1/license-orders", &token, key, &new_order("virtual", 1))
            .await;
        assert_eq!(before.status(), 202);
    }
    let outage = DatabaseOutage::of(&app.settings).await;

    // Act: every connection to the database is dropped, as a restart of
    // PostgreSQL does; the database itself stays up.
    outage.drop_connections().await;
    let after = app
        .post(
            "/v1/license-orders",
            &token,
            "after",
            &new_order("virtual", 1),
        )
        .await;

    // Assert: the placer's broken connection is replaced and the order
    // placed once.
    assert_eq!(after.status(), 202);
    assert_eq!(app.count("select count(*) from license_orders").await, 3);
    outage.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn while_the_database_is_unreachable_intake_answers_503_with_retry_after() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    assert_eq!(app.get("/v1/customers/cust-1", &token).await.status(), 200);
    let outage = DatabaseOutage::of(&app.settings).await;

    // Act: the database refuses connections and drops the open ones.
    outage.refuse_connections().await;
    outage.drop_connections().await;
    let down = app
        .post(
            "/v1/license-orders",
            &token,
            "while-down",
            &new_order("virtual", 1),
        )
        .await;
    let read = app.get("/v1/customers/cust-1", &token).await;
    outage.allow_connections().await;

    // Assert: a retryable 503, not a 500; once it is back, all is well.
    for response in [down, read] {
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let again = app
        .post(
            "/v1/license-orders",
            &token,
            "while-down",
            &new_order("virtual", 1),
        )
        .await;
    assert_eq!(
        again.status(),
        202,
        "the same request succeeds once the database is back"
    );
    outage.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_declares_every_error_status_as_problem_json() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let document: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let mut gaps = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let mut needed = vec!["500", "503"];
            if operation.get("security").is_some() {
                needed.extend(["401", "403", "429"]);
            }
            if method == "post" || method == "put" {
                needed.extend(["400", "413", "415"]);
            }
            for status in needed {
                if !responses.contains_key(status) {
                    gaps.push(format!("{method} {path}: no {status}"));
                }
            }
            for (status, response) in responses {
                if response["description"]
                    .as_str()
                    .unwrap_or("")
                    .trim()
                    .is_empty()
                {
                    gaps.push(format!("{method} {path} {status}: no description"));
                }
                let error = status.starts_with('4') || status.starts_with('5');
                if error
                    && response["content"]
                        .get("application/problem+json")
                        .is_none()
                {
                    gaps.push(format!("{method} {path} {status}: not problem+json"));
                }
            }
        }
    }
    assert!(gaps.is_empty(), "{}", gaps.join("\n"));
    app.cleanup().await;
}
