use fulfil::app::Components;
use serde_json::Value;

use crate::support::{new_order, spawn_with, test_settings};

#[tokio::test]
async fn same_key_and_body_returns_the_first_response_and_one_order() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let body = new_order("virtual", 2);

    let first = app.post("/v1/license-orders", &token, "key-1", &body).await;
    let second = app.post("/v1/license-orders", &token, "key-1", &body).await;

    assert_eq!(first.status(), 202);
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        second.json::<Value>().await.unwrap()
    );
    assert_eq!(app.count("select count(*) from license_orders").await, 1);
    assert_eq!(app.count("select count(*) from jobs").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn same_key_with_another_body_is_422() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    app.post(
        "/v1/license-orders",
        &token,
        "key-1",
        &new_order("virtual", 2),
    )
    .await;
    let reused = app
        .post(
            "/v1/license-orders",
            &token,
            "key-1",
            &new_order("virtual", 3),
        )
        .await;

    assert_eq!(reused.status(), 422);
    let problem: Value = reused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:idempotency-key-reused");
    assert_eq!(app.count("select count(*) from license_orders").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn keys_are_scoped_to_the_calling_token() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let acme = app.portal_with_customer("acme", "cust-1").await;
    let globex = app.portal_with_customer("globex", "cust-2").await;
    let mut globex_order = new_order("virtual", 1);
    globex_order["customer_id"] = "cust-2".into();

    let a = app
        .post(
            "/v1/license-orders",
            &acme,
            "shared-key",
            &new_order("virtual", 1),
        )
        .await;
    let b = app
        .post("/v1/license-orders", &globex, "shared-key", &globex_order)
        .await;

    assert_eq!(a.status(), 202);
    assert_eq!(b.status(), 202);
    assert_eq!(app.count("select count(*) from license_orders").await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_make_one_order() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let body = new_order("virtual", 1);

    for round in 0..10 {
        let key = format!("race-{round}");
        let requests = (0..4).map(|_| app.post("/v1/license-orders", &token, &key, &body));
        let statuses: Vec<u16> = futures::future::join_all(requests)
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        // Each answer is the first response or "still in flight".
        assert!(
            statuses.iter().all(|s| *s == 202 || *s == 409),
            "{statuses:?}"
        );
        assert!(statuses.contains(&202));
    }

    assert_eq!(app.count("select count(*) from license_orders").await, 10);
    app.cleanup().await;
}
