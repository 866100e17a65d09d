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

#[tokio::test]
async fn list_pages_outside_the_documented_range_are_a_400_not_a_clamp() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let operator = app.token(fulfil::store::tokens::Role::Operator, None).await;

    for (query, field) in [
        ("/v1/ops/audit?limit=0", "limit"),
        ("/v1/ops/audit?limit=1001", "limit"),
        ("/v1/ops/audit?before=0", "before"),
        ("/v1/ops/dead-letters?limit=0", "limit"),
        // A NUL cannot reach PostgreSQL text: it was a 500.
        ("/v1/ops/dead-letters?kind=mail%00send", "kind"),
    ] {
        let response = app.get(query, &operator).await;

        assert_eq!(response.status(), 400, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    let in_range = app.get("/v1/ops/audit?limit=1000", &operator).await;
    assert_eq!(in_range.status(), 200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_post_without_idempotency_key_is_a_400_before_any_lookup() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_token("acme").await;

    let response = app
        .client
        .post(app.url("/v1/role-cleanups"))
        .bearer_auth(&token)
        .json(&json!({ "customer_id": "nobody", "partner_id": "acme", "subscription_ids": [] }))
        .send()
        .await
        .unwrap();

    // It was a 404 (no such customer): the missing key went unnoticed.
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:fulfil:problem:idempotency-key-missing"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_relationship_for_the_partner_of_record_is_a_conflict_with_the_stored_customer() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;

    let response = app
        .client
        .put(app.url("/v1/reseller-relationships/acme/cust-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    // The request's shape is fine (it was a 400); the stored customer's
    // partner of record refuses it.
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:partner-of-record");
    app.cleanup().await;
}

#[tokio::test]
async fn a_role_name_is_measured_in_characters_as_the_schema_says() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    // 100 characters of four bytes each: within maxLength 100.
    let role = "𝑻".repeat(100);
    let body = |role: &str| {
        json!({ "principal_type": "partner", "principal_id": "acme", "role": role,
                "scope_type": "customer", "scope_id": "cust-1" })
    };
    let put = |body: Value| {
        app.client
            .put(app.url("/v1/role-assignments/r-1"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };

    let accepted = put(body(&role)).await.unwrap();
    let too_long = put(body(&"𝑻".repeat(101))).await.unwrap();

    assert!(accepted.status().is_success(), "{}", accepted.status());
    assert_eq!(too_long.status(), 400);
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_states_the_rules_the_handlers_check() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];

    let audit = doc["paths"]["/v1/ops/audit"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(
        audit
            .iter()
            .all(|p| p["in"] == "query" && p["required"] != true),
        "list filters are optional query parameters: {audit:?}"
    );
    // A field that takes one of a few words says so as an enum.
    let order = &schemas["NewOrderRequest"]["allOf"][0]["properties"];
    assert_eq!(
        order["usage"]["enum"],
        serde_json::json!(["virtual", "bare_metal", "hypervisor"])
    );
    let locale = &order["contact"];
    let contact = match locale.get("$ref").and_then(Value::as_str) {
        Some(reference) => &schemas[reference.rsplit('/').next().unwrap()],
        None => locale,
    };
    assert_eq!(
        contact["properties"]["locale"]["enum"],
        serde_json::json!(["ja", "en", null]),
        "a nullable choice keeps null: {contact}"
    );
    let services = &schemas["TrialRequest"]["properties"]["services"]["items"];
    assert_eq!(services["pattern"], "^[a-z0-9._-]{1,64}$");
    let ids = &schemas["TransferRequest"]["properties"]["subscription_ids"]["items"];
    assert_eq!(ids["pattern"], "^[A-Za-z0-9._-]{1,64}$");
    let cancellation = schemas["CancellationRequest"]["allOf"][1]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(cancellation.len(), 3, "exactly one of three ways");
    let usage = schemas["NewOrderRequest"]["allOf"][1]["oneOf"][0].clone();
    assert_eq!(usage["properties"]["usage"]["enum"], json!(["hypervisor"]));
    assert_eq!(usage["required"], json!(["vm_count"]));
    assert!(schemas["ReplayBody"]["allOf"][1]["anyOf"].is_array());
    app.cleanup().await;
}

#[tokio::test]
async fn a_contact_name_is_measured_in_characters_as_the_schema_says() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut order = new_order("virtual", 1);
    // 200 characters, 800 bytes: within maxLength 200 (it was a 400).
    order["contact"]["name"] = json!("𝑻".repeat(200));

    let response = app.post("/v1/license-orders", &token, "k1", &order).await;

    assert_eq!(response.status(), 202);
    app.cleanup().await;
}
