use fulfil::app::Components;
use fulfil::licensing::certificate;
use serde_json::json;

use crate::support::{new_order, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn addition_issues_more_keys_on_an_active_order() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("virtual", 1)).await;

    let response = app
        .post(
            &format!("/v1/license-orders/{order_id}/additions"),
            &token,
            "add-1",
            &json!({ "quantity": 2 }),
        )
        .await;

    assert_eq!(response.status(), 202);
    let accepted: serde_json::Value = response.json().await.unwrap();
    let order = app.until_active(&token, &order_id).await;
    assert_eq!(order["licenses"].as_array().unwrap().len(), 3);
    let addition = order["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "additional")
        .unwrap();
    assert_eq!(addition["id"], accepted["request_id"]);
    // The addition's SLA is 30 minutes from acceptance.
    let accepted_at: chrono::DateTime<chrono::Utc> =
        addition["accepted_at"].as_str().unwrap().parse().unwrap();
    let deadline: chrono::DateTime<chrono::Utc> =
        addition["sla_deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline - accepted_at, chrono::Duration::minutes(30));
    assert_eq!(addition["sla_met"], true);
    app.cleanup().await;
}

#[tokio::test]
async fn vm_count_increase_raises_the_count_and_resigns_the_certificate() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("hypervisor", 1)).await;

    let lower = app
        .post(
            &format!("/v1/license-orders/{order_id}/vm-count"),
            &token,
            "vm-0",
            &json!({ "vm_count": 4 }),
        )
        .await;
    assert_eq!(lower.status(), 422, "a count that is not higher is refused");
    let response = app
        .post(
            &format!("/v1/license-orders/{order_id}/vm-count"),
            &token,
            "vm-1",
            &json!({ "vm_count": 12 }),
        )
        .await;

    assert_eq!(response.status(), 202);
    let order = app.until_active(&token, &order_id).await;
    let license = &order["licenses"][0];
    assert_eq!(license["vm_count"], 12);
    let public_key = fulfil::licensing::load_signer(&app.settings.license)
        .unwrap()
        .public_key();
    let claims =
        certificate::verify(license["certificate"].as_str().unwrap(), &public_key).unwrap();
    assert_eq!(claims.vm_count, Some(12));
    app.cleanup().await;
}

#[tokio::test]
async fn vm_count_on_a_non_hypervisor_order_is_refused() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("bare_metal", 1)).await;

    let response = app
        .post(
            &format!("/v1/license-orders/{order_id}/vm-count"),
            &token,
            "vm",
            &json!({ "vm_count": 9 }),
        )
        .await;

    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:not-hypervisor");
    app.cleanup().await;
}

#[tokio::test]
async fn changes_are_refused_while_the_order_is_preparing_or_another_change_runs() {
    // No workers: the order stays `preparing` and changes stay in progress.
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.order(&token, &new_order("virtual", 1)).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let additions = format!("/v1/license-orders/{order_id}/additions");

    let while_preparing = app
        .post(&additions, &token, "a1", &json!({ "quantity": 1 }))
        .await;
    assert_eq!(while_preparing.status(), 409);
    let problem: serde_json::Value = while_preparing.json().await.unwrap();
    assert_eq!(problem["type"], "urn:fulfil:problem:order-preparing");
    assert!(problem["detail"].as_str().unwrap().contains("wait"));

    // Arrange an active order whose first addition is still in progress.
    sqlx::query("update license_orders set status = 'active', vendor_order_id = 'VO-TEST' where id = $1::uuid")
        .bind(&order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("update license_requests set status = 'done' where order_id = $1::uuid")
        .bind(&order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        app.post(&additions, &token, "a2", &json!({ "quantity": 1 }))
            .await
            .status(),
        202
    );

    let second = app
        .post(&additions, &token, "a3", &json!({ "quantity": 1 }))
        .await;
    assert_eq!(second.status(), 409);
    let problem: serde_json::Value = second.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:fulfil:problem:order-change-in-progress"
    );
    assert_eq!(
        app.count("select count(*) from license_requests").await,
        2,
        "the refused change stored nothing"
    );
    app.cleanup().await;
}
