use fulfil::app::Components;
use fulfil::intake::order_placer::place_batch;
use fulfil::job::JobKind;
use fulfil::store::idempotency::KeyState;
use fulfil::store::licenses::{self, PlaceOrder};
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

#[tokio::test]
async fn concurrent_new_orders_each_get_their_own_answer_and_rows() {
    // Arrange: sixteen POSTs at once, so the placer writes them in shared
    // statements: twelve orders of 1 to 3 keys, two twins of the first,
    // and two for a customer the partner does not hold. No relay, so the
    // outbox keeps the rows it would delete once published.
    let mut settings = test_settings();
    settings.outbox.relay = false;
    let app = spawn_with(settings, Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut unknown = new_order("virtual", 1);
    unknown["customer_id"] = "cust-nobody".into();
    let mut requests: Vec<(String, Value)> = (0..12)
        .map(|i| (format!("order-{i}"), new_order("virtual", 1 + i % 3)))
        .collect();
    requests.push(("order-0".into(), new_order("virtual", 1)));
    requests.push(("order-0".into(), new_order("virtual", 1)));
    requests.push(("unknown-0".into(), unknown.clone()));
    requests.push(("unknown-1".into(), unknown));

    // Act
    let answers = futures::future::join_all(
        requests
            .iter()
            .map(|(key, body)| app.post("/v1/license-orders", &token, key, body)),
    )
    .await;

    // Assert: each answer is its own request's, with its own rows.
    let mut first_order_ids = Vec::new();
    for ((key, body), answer) in requests.iter().zip(answers) {
        let status = answer.status().as_u16();
        if key.starts_with("unknown") {
            assert_eq!(status, 404, "{key}");
            continue;
        }
        if key == "order-0" {
            assert!(status == 202 || status == 409, "{key}: {status}");
            if status == 409 {
                continue;
            }
        } else {
            assert_eq!(status, 202, "{key}");
        }
        let accepted: Value = answer.json().await.unwrap();
        let order_id: uuid::Uuid = accepted["order_id"].as_str().unwrap().parse().unwrap();
        if key == "order-0" {
            first_order_ids.push(order_id);
        }
        let keys: i64 = sqlx::query_scalar(
            "select count(*) from licenses l join license_requests r on r.id = l.request_id
             where l.order_id = $1 and r.id = $2 and r.job_id = $3",
        )
        .bind(order_id)
        .bind(
            accepted["request_id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        )
        .bind(
            accepted["job_id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(keys, body["quantity"].as_i64().unwrap(), "{key}");
    }
    first_order_ids.dedup();
    assert_eq!(
        first_order_ids.len(),
        1,
        "every 202 of a key names one order"
    );
    assert_eq!(app.count("select count(*) from license_orders").await, 12);
    assert_eq!(app.count("select count(*) from licenses").await, 24);
    assert_eq!(app.count("select count(*) from jobs").await, 12);
    assert_eq!(app.count("select count(*) from outbox").await, 12);
    assert_eq!(app.count("select count(*) from audit_events").await, 24);
    assert_eq!(app.count("select count(*) from idempotency_keys").await, 12);
    app.cleanup().await;
}

#[tokio::test]
async fn a_batch_the_database_refuses_is_placed_order_by_order() {
    // Arrange: three orders for one statement, the last a twin of the
    // first (same key and body), so the statement as a whole fails.
    let app = spawn_with(test_settings(), Components::api_only()).await;
    app.portal_with_customer("acme", "cust-1").await;
    let token_id: uuid::Uuid =
        sqlx::query_scalar("select id from api_tokens where partner_id = 'acme'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let order = |key: &str, quantity: i32| {
        let now = chrono::Utc::now();
        PlaceOrder {
            id: uuid::Uuid::now_v7(),
            partner_id: "acme".into(),
            customer_id: "cust-1".into(),
            usage: "virtual".into(),
            vm_count: None,
            quantity,
            contact_name: "Hanako Sato".into(),
            contact_email: "hanako@example.com".into(),
            contact_locale: "en".into(),
            request_id: uuid::Uuid::now_v7(),
            sla_deadline: now,
            job_id: uuid::Uuid::now_v7(),
            job_kind: JobKind::new("license.new"),
            job_payload: serde_json::json!({}),
            max_attempts: 3,
            token_id,
            idempotency_key: key.into(),
            fingerprint: vec![quantity as u8],
            response_status: 202,
            response_body: serde_json::json!({ "key": key }),
            audit_details: [serde_json::json!({}), serde_json::json!({})],
            now,
        }
    };
    let batch = vec![order("a", 1), order("b", 2), order("a", 1)];
    let mut conn = app.pool.acquire().await.unwrap();
    let refused = licenses::place_orders(&mut conn, &batch).await;
    // Its locks are released once the connection answers the next query.
    sqlx::query("select 1").execute(&mut *conn).await.unwrap();
    drop(conn);
    assert!(refused.is_err(), "twins in one statement fail it");
    assert_eq!(app.count("select count(*) from license_orders").await, 0);

    // Act
    let mut conn = app.pool.acquire().await.unwrap();
    let placed = place_batch(&mut conn, &batch).await;
    drop(conn);

    // Assert: the first and second are written; the twin finds the first's
    // saved response.
    let states: Vec<_> = placed
        .iter()
        .map(|p| match &p.as_ref().unwrap().key {
            KeyState::Fresh => "fresh".to_owned(),
            KeyState::Saved(saved) => format!("saved {}", saved.response_body["key"]),
            KeyState::Busy => "busy".to_owned(),
        })
        .collect();
    assert_eq!(states, ["fresh", "fresh", "saved \"a\""]);
    assert_eq!(app.count("select count(*) from license_orders").await, 2);
    assert_eq!(app.count("select count(*) from licenses").await, 3);
    app.cleanup().await;
}
