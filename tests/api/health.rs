use fulfil::app::Components;
use serde_json::Value;

use crate::support::{spawn_with, test_settings};

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
