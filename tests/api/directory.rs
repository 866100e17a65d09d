use fulfil::app::Components;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_with, test_settings};

async fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn directory_app() -> (TestApp, String, String) {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let acme = app.portal_token("acme").await;
    let globex = app.portal_token("globex").await;
    (app, acme, globex)
}

/// acme's world: a customer, a user, a subscription and a role on it.
async fn seed_acme(app: &TestApp, acme: &str) {
    for (path, body) in [
        ("/v1/customers/cust-1", json!({ "name": "Cust One" })),
        (
            "/v1/users/user-1",
            json!({ "customer_id": "cust-1", "email": "user1@example.com", "locale": "en" }),
        ),
        (
            "/v1/subscriptions/sub-1",
            json!({ "customer_id": "cust-1", "product": "Azure plan" }),
        ),
        (
            "/v1/role-assignments/role-1",
            json!({
            "principal_type": "partner", "principal_id": "acme", "role": "admin-agent",
            "scope_type": "subscription", "scope_id": "sub-1" }),
        ),
    ] {
        assert_eq!(put(app, path, acme, &body).await.status(), 201, "{path}");
    }
}

#[tokio::test]
async fn a_portal_upserts_its_directory_idempotently() {
    let (app, acme, _) = directory_app().await;

    let partner = json!({ "name": "ACME", "admin_email": "admin@acme.example", "locale": "en" });
    assert_eq!(
        put(&app, "/v1/partners/acme", &acme, &partner)
            .await
            .status(),
        200,
        "the token's partner exists"
    );
    seed_acme(&app, &acme).await;
    let again = put(
        &app,
        "/v1/customers/cust-1",
        &acme,
        &json!({ "name": "Cust One Renamed" }),
    )
    .await;
    // The partner of record grants another partner a relationship directly.
    let relationship = put(
        &app,
        "/v1/reseller-relationships/globex/cust-1",
        &acme,
        &json!({}),
    )
    .await;
    let relationship_again = put(
        &app,
        "/v1/reseller-relationships/globex/cust-1",
        &acme,
        &json!({}),
    )
    .await;

    assert_eq!(again.status(), 200, "a second PUT updates");
    assert_eq!(relationship.status(), 201);
    assert_eq!(relationship_again.status(), 200);
    let customer: Value = app
        .get("/v1/customers/cust-1", &acme)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        customer,
        json!({ "id": "cust-1", "partner_id": "acme", "name": "Cust One Renamed" })
    );
    let user: Value = app
        .get("/v1/users/user-1", &acme)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["status"], "active");
    let role: Value = app
        .get("/v1/role-assignments/role-1", &acme)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(role["status"], "present");
    let partner: Value = app
        .get("/v1/partners/acme", &acme)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(partner["admin_email"], "admin@acme.example");
    assert_eq!(app.count("select count(*) from customers").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_portal_cannot_write_or_read_outside_its_partners_scope() {
    let (app, acme, globex) = directory_app().await;
    seed_acme(&app, &acme).await;

    let attempts = [
        (
            put(
                &app,
                "/v1/customers/cust-1",
                &globex,
                &json!({ "name": "taken" }),
            )
            .await,
            404,
        ),
        (
            put(
                &app,
                "/v1/customers/cust-2",
                &globex,
                &json!({ "partner_id": "acme" }),
            )
            .await,
            403,
        ),
        (
            put(&app, "/v1/partners/acme", &globex, &json!({ "name": "x" })).await,
            403,
        ),
        (
            put(
                &app,
                "/v1/users/user-2",
                &globex,
                &json!({ "customer_id": "cust-1", "email": "x@example.com" }),
            )
            .await,
            404,
        ),
        (
            put(
                &app,
                "/v1/users/user-1",
                &globex,
                &json!({ "customer_id": "cust-1", "email": "x@example.com" }),
            )
            .await,
            404,
        ),
        (
            put(
                &app,
                "/v1/subscriptions/sub-1",
                &globex,
                &json!({ "customer_id": "cust-1", "product": "x" }),
            )
            .await,
            404,
        ),
        (
            put(
                &app,
                "/v1/role-assignments/role-2",
                &globex,
                &json!({
            "principal_type": "partner", "principal_id": "globex", "role": "admin",
            "scope_type": "customer", "scope_id": "cust-1" }),
            )
            .await,
            404,
        ),
        (
            put(
                &app,
                "/v1/reseller-relationships/acme/cust-1",
                &globex,
                &json!({}),
            )
            .await,
            403,
        ),
        (app.get("/v1/customers/cust-1", &globex).await, 404),
        (app.get("/v1/users/user-1", &globex).await, 404),
        (app.get("/v1/subscriptions/sub-1", &globex).await, 404),
        (app.get("/v1/role-assignments/role-1", &globex).await, 404),
        (app.get("/v1/partners/acme", &globex).await, 404),
    ];

    for (i, (response, expected)) in attempts.into_iter().enumerate() {
        assert_eq!(response.status(), expected, "attempt {i}");
    }
    let customer: Value = app
        .get("/v1/customers/cust-1", &acme)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(customer["name"], "Cust One", "nothing of acme's changed");
    assert_eq!(app.count("select count(*) from users").await, 1);
    assert_eq!(app.count("select count(*) from role_assignments").await, 1);

    // globex cannot grant itself access; the customer can.
    assert_eq!(
        put(
            &app,
            "/v1/reseller-relationships/globex/cust-1",
            &globex,
            &json!({})
        )
        .await
        .status(),
        403
    );
    assert_eq!(app.get("/v1/customers/cust-1", &globex).await.status(), 404);
    app.grant_relationship(&globex, &acme, "cust-1").await;
    // A reseller relationship lets globex see the customer, not rewrite it.
    assert_eq!(app.get("/v1/customers/cust-1", &globex).await.status(), 200);
    assert_eq!(
        put(
            &app,
            "/v1/customers/cust-1",
            &globex,
            &json!({ "name": "taken" })
        )
        .await
        .status(),
        404
    );
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_directory_writes_are_400_problems_and_store_nothing() {
    let (app, acme, _) = directory_app().await;

    let bad_id = put(&app, "/v1/customers/not%20ok", &acme, &json!({})).await;
    let bad_user = put(
        &app,
        "/v1/users/u",
        &acme,
        &json!({ "customer_id": "cust-1", "email": "nope", "locale": "de" }),
    )
    .await;
    let unknown_field = put(&app, "/v1/customers/c", &acme, &json!({ "colour": "red" })).await;
    let bad_role = put(&app, "/v1/role-assignments/r", &acme, &json!({
        "principal_type": "robot", "principal_id": "x", "role": "", "scope_type": "planet", "scope_id": "y" })).await;

    for response in [bad_id, bad_user, unknown_field, bad_role] {
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    for table in ["customers", "users", "role_assignments"] {
        assert_eq!(
            app.count(&format!("select count(*) from {table}")).await,
            0,
            "{table}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn operators_write_for_any_partner_and_must_name_it() {
    let (app, _, _) = directory_app().await;
    let operator = app.token(Role::Operator, None).await;

    let named = put(
        &app,
        "/v1/customers/cust-9",
        &operator,
        &json!({ "partner_id": "globex" }),
    )
    .await;
    let unnamed = put(&app, "/v1/customers/cust-10", &operator, &json!({})).await;
    let unknown_partner = put(
        &app,
        "/v1/customers/cust-11",
        &operator,
        &json!({ "partner_id": "nobody" }),
    )
    .await;

    assert_eq!(named.status(), 201);
    assert_eq!(unnamed.status(), 400);
    assert_eq!(unknown_partner.status(), 400);
    app.cleanup().await;
}

#[tokio::test]
async fn partners_and_tokens_are_never_deleted_so_orders_need_not_lock_them() {
    // Arrange: an order names its partner and token without a foreign key
    // (20261206000023): what keeps those references whole is that the
    // rows stay.
    let (app, acme, _globex) = directory_app().await;
    seed_acme(&app, &acme).await;
    let tokens = app.count("select count(*) from api_tokens").await;

    // Act
    let deleted_partner = sqlx::query("delete from partners where id = 'acme'")
        .execute(&app.pool)
        .await;
    let renamed_partner = sqlx::query("update partners set id = 'acme-2' where id = 'acme'")
        .execute(&app.pool)
        .await;
    let deleted_tokens = sqlx::query("delete from api_tokens")
        .execute(&app.pool)
        .await;

    // Assert: each refused as a reference that would dangle, nothing changed.
    for refused in [deleted_partner, renamed_partner, deleted_tokens] {
        let error = refused.expect_err("refused");
        let code = error.as_database_error().and_then(|e| e.code());
        assert_eq!(code.as_deref(), Some("23503"), "{error}");
    }
    assert_eq!(
        app.count("select count(*) from partners where id = 'acme'")
            .await,
        1
    );
    assert_eq!(app.count("select count(*) from api_tokens").await, tokens);
    let still = app
        .client
        .get(app.url("/v1/customers/cust-1"))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
    app.cleanup().await;
}
