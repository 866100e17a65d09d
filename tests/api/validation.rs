use fulfil::app::Components;
use serde_json::{Value, json};

use crate::support::{new_order, spawn_with, test_settings};

async fn assert_nothing_stored(app: &crate::support::TestApp) {
    for table in [
        "license_orders",
        "license_requests",
        "licenses",
        "jobs",
        "outbox",
        "idempotency_keys",
    ] {
        assert_eq!(
            app.count(&format!("select count(*) from {table}")).await,
            0,
            "{table} stays empty"
        );
    }
}

#[tokio::test]
async fn bad_input_is_a_400_problem_naming_each_field_and_stores_nothing() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut invalid = new_order("hypervisor", 0);
    invalid["vm_count"] = Value::Null;
    invalid["contact"]["email"] = json!("not-an-address");
    invalid["contact"]["locale"] = json!("fr");

    let response = app.post("/v1/license-orders", &token, "k1", &invalid).await;

    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:validation");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["quantity", "vm_count", "contact.email", "contact.locale"] {
        assert!(fields.contains(&field), "{field} is named: {problem}");
    }
    assert_nothing_stored(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn malformed_json_missing_and_unknown_fields_are_refused() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    let garbage = app
        .client
        .post(app.url("/v1/license-orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "g")
        .header("content-type", "application/json")
        .body("{\"customer_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    assert_eq!(
        garbage.json::<Value>().await.unwrap()["type"],
        "urn:fulfil:problem:malformed-json"
    );

    let mut missing = new_order("virtual", 1);
    missing.as_object_mut().unwrap().remove("usage");
    let response = app.post("/v1/license-orders", &token, "m", &missing).await;
    assert_eq!(response.status(), 400);
    let problem = response.json::<Value>().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "usage", "{problem}");
    assert_eq!(problem["errors"][0]["message"], "is required", "{problem}");

    let mut mistyped = new_order("virtual", 1);
    mistyped["quantity"] = json!("two");
    let response = app.post("/v1/license-orders", &token, "t", &mistyped).await;
    assert_eq!(response.status(), 400);
    let problem = response.json::<Value>().await.unwrap();
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert_eq!(problem["errors"][0]["field"], "quantity", "{problem}");
    assert!(message.contains("a whole number"), "{message}");
    assert!(!message.contains("i32"), "no Rust type names: {message}");

    let mut unknown = new_order("virtual", 1);
    unknown["colour"] = json!("blue");
    assert_eq!(
        app.post("/v1/license-orders", &token, "u", &unknown)
            .await
            .status(),
        400
    );
    assert_nothing_stored(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn start_or_cancellation_dates_cannot_be_requested() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut dated = new_order("virtual", 1);
    dated["start_date"] = json!("2027-01-01");

    let response = app.post("/v1/license-orders", &token, "d", &dated).await;

    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:date-not-allowed");
    assert_nothing_stored(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_post_without_idempotency_key_is_refused() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    let response = app
        .client
        .post(app.url("/v1/license-orders"))
        .bearer_auth(&token)
        .json(&new_order("virtual", 1))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["type"],
        "urn:fulfil:problem:idempotency-key-missing"
    );
    assert_nothing_stored(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let mut settings = test_settings();
    settings.http.body_limit_bytes = 1024;
    let app = spawn_with(settings, Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut huge = new_order("virtual", 1);
    huge["contact"]["name"] = json!("x".repeat(4096));

    let response = app.post("/v1/license-orders", &token, "big", &huge).await;

    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_nothing_stored(&app).await;
    app.cleanup().await;
}

#[tokio::test]
async fn only_a_json_object_with_a_json_content_type_is_read() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let send = |content_type: &'static str, body: String| {
        app.client
            .post(app.url("/v1/license-orders"))
            .header("authorization", format!("bearer {token}"))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let order = new_order("virtual", 1).to_string();

    let text = send("text/plain", order.clone()).await.unwrap();
    let form = send("application/x-www-form-urlencoded", order.clone())
        .await
        .unwrap();
    let array = send("application/json", format!("[{order}]"))
        .await
        .unwrap();

    for (response, status, slug) in [
        (text, 415, "unsupported-media-type"),
        (form, 415, "unsupported-media-type"),
        (array, 400, "body-not-object"),
    ] {
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], format!("urn:fulfil:problem:{slug}"));
    }
    assert_nothing_stored(&app).await;

    // The scheme is case-insensitive: a lowercase "bearer" with a JSON
    // body (and a charset) is accepted.
    let accepted = send("application/json; charset=utf-8", order)
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    app.cleanup().await;
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem() {
    let app = spawn_with(test_settings(), Components::api_only()).await;

    let response = app
        .client
        .delete(app.url("/v1/license-orders"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 405);
    assert!(response.headers().contains_key("allow"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 405);
    assert_eq!(problem["type"], "urn:fulfil:problem:method-not-allowed");
    app.cleanup().await;
}
