use fulfil::app::Components;
use fulfil::store::tokens::Role;
use serde_json::Value;

use crate::support::{new_order, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn requests_without_a_valid_token_are_401_problems() {
    let app = spawn_with(test_settings(), Components::api_only()).await;

    let missing = app
        .client
        .post(app.url("/v1/license-orders"))
        .json(&new_order("virtual", 1))
        .send()
        .await
        .unwrap();
    let wrong = app
        .post(
            "/v1/license-orders",
            "ful_not-a-real-token",
            "k",
            &new_order("virtual", 1),
        )
        .await;

    for response in [missing, wrong] {
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "urn:fulfil:problem:unauthorized");
    }
    assert_eq!(app.count("select count(*) from license_orders").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn tokens_of_the_wrong_role_are_403() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let scheduler = app.token(Role::Scheduler, None).await;

    let response = app
        .post(
            "/v1/license-orders",
            &scheduler,
            "k",
            &new_order("virtual", 1),
        )
        .await;

    assert_eq!(response.status(), 403);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("portal"));
    assert_eq!(app.count("select count(*) from license_orders").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_portal_cannot_see_or_change_another_partners_order() {
    let app = spawn_app().await;
    let acme = app.portal_with_customer("acme", "cust-1").await;
    let globex = app.portal_token("globex").await;
    let operator = app.token(Role::Operator, None).await;
    let accepted = app.order(&acme, &new_order("hypervisor", 1)).await;
    let order_id = accepted["order_id"].as_str().unwrap();
    app.until_active(&acme, order_id).await;

    let read = app
        .get(&format!("/v1/license-orders/{order_id}"), &globex)
        .await;
    let job = app
        .get(accepted["job_url"].as_str().unwrap(), &globex)
        .await;
    let add = app
        .post(
            &format!("/v1/license-orders/{order_id}/additions"),
            &globex,
            "k1",
            &serde_json::json!({"quantity": 1}),
        )
        .await;
    let vm = app
        .post(
            &format!("/v1/license-orders/{order_id}/vm-count"),
            &globex,
            "k2",
            &serde_json::json!({"vm_count": 9}),
        )
        .await;

    for response in [read, job, add, vm] {
        assert_eq!(
            response.status(),
            404,
            "another partner's order does not exist for globex"
        );
    }
    assert_eq!(
        app.count("select count(*) from license_requests").await,
        1,
        "nothing changed"
    );
    assert_eq!(
        app.get(&format!("/v1/license-orders/{order_id}"), &operator)
            .await
            .status(),
        200,
        "operators see all"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_token_past_its_rate_limit_gets_429_and_others_are_unaffected() {
    let mut settings = test_settings();
    settings.http.rate_limit_per_second = 1;
    settings.http.rate_limit_burst = 3;
    let app = spawn_with(settings, Components::api_only()).await;
    let noisy = app.portal_with_customer("acme", "cust-1").await;
    let quiet = app.portal_token("globex").await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.get("/v1/jobs/00000000-0000-0000-0000-000000000000", &noisy)
                .await,
        );
    }
    let limited = statuses
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("the burst runs out");
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        app.get("/v1/jobs/00000000-0000-0000-0000-000000000000", &quiet)
            .await
            .status(),
        404
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_although_its_lookup_was_cached() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let operator = app.token(Role::Operator, None).await;
    // Two requests: the second one is answered from the process's cache.
    for _ in 0..2 {
        assert_eq!(app.get("/v1/ops/audit", &operator).await.status(), 200);
    }

    sqlx::query("update api_tokens set revoked_at = now() where role = 'operator'")
        .execute(&app.pool)
        .await
        .unwrap();

    // The cache hears of the revocation through NOTIFY, a moment after
    // the commit: poll for it with a deadline.
    let refused = crate::support::wait_for(std::time::Duration::from_secs(5), || async {
        app.get("/v1/ops/audit", &operator).await.status() == 401
    })
    .await;
    assert!(refused, "the revoked token is refused");
    app.cleanup().await;
}
