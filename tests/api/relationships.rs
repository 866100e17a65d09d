//! Relationships granted by invitation (SPEC §1.5, §3.9): a reseller asks,
//! the customer accepts through its mailed link; a provider invites, only
//! the reseller accepts. Until then the asking partner sees nothing.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use fulfil::app::Components;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::issuance::decoded_text;
use crate::support::{TestApp, spawn_app, spawn_with, test_settings, token_in, wait_for};

struct World {
    /// cust-1's partner of record; its portal hosts the customer's page.
    acme: String,
    /// asks for a relationship with cust-1.
    globex: String,
    /// an indirect provider.
    initech: String,
    operator: String,
}

async fn world(app: &TestApp) -> World {
    let acme = app.portal_token("acme").await;
    let globex = app.portal_token("globex").await;
    let initech = app.portal_token("initech").await;
    let partner = |name: &str, mail: &str, locale: &str| json!({ "name": name, "admin_email": mail, "locale": locale });
    app.put_ok(
        "/v1/partners/globex",
        &globex,
        &partner("Globex Resale", "admin@globex.example", "en"),
    )
    .await;
    app.put_ok(
        "/v1/partners/initech",
        &initech,
        &partner("Initech Distribution", "admin@initech.example", "ja"),
    )
    .await;
    app.put_ok(
        "/v1/customers/cust-1",
        &acme,
        &json!({ "name": "Cust One" }),
    )
    .await;
    World {
        acme,
        globex,
        initech,
        operator: app.token(Role::Operator, None).await,
    }
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.post(path, token, &Uuid::new_v4().to_string(), body)
        .await
}

async fn ask(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    post(app, "/v1/relationship-requests", token, body).await
}

fn asking_for_cust_1() -> Value {
    json!({ "customer_id": "cust-1", "customer_admin_email": "admin@cust.example", "locale": "en" })
}

async fn answer(app: &TestApp, what: &str, token: &str, link: &str, how: &str) -> u16 {
    let path = format!("/v1/{what}/{link}/{how}");
    post(app, &path, token, &json!({})).await.status().as_u16()
}

async fn sees_customer(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/customers/cust-1", token)
        .await
        .status()
        .as_u16()
}

async fn status_of(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, token).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json::<Value>().await.unwrap()["status"].clone()
}

/// The decoded text of the mail file sent to `to`, once the mail worker
/// has written it.
async fn mail_to(app: &TestApp, to: &str) -> String {
    let header = format!("To: {to}");
    let found = wait_for(Duration::from_secs(20), || async {
        app.mail_files().iter().any(|raw| raw.contains(&header))
    })
    .await;
    assert!(found, "a mail file to {to}");
    let raw = app
        .mail_files()
        .into_iter()
        .find(|raw| raw.contains(&header))
        .unwrap();
    decoded_text(&raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_accepts_a_request_by_mail_and_the_partner_sees_it_from_then_on() {
    let app = spawn_app().await;
    let w = world(&app).await;

    // Asking shows the requester nothing and never returns the link.
    let asked = ask(&app, &w.globex, &asking_for_cust_1()).await;
    assert_eq!(asked.status(), 202);
    let asked: Value = asked.json().await.unwrap();
    assert_eq!(asked["status"], "invited");
    assert!(!asked.to_string().contains("rel_"), "{asked}");
    assert_eq!(sees_customer(&app, &w.globex).await, 404);
    let status_url = asked["status_url"].as_str().unwrap().to_owned();

    // The customer admin gets the link by mail, in its locale.
    let text = mail_to(&app, "admin@cust.example").await;
    assert!(text.contains("Globex Resale"), "{text}");
    let link = token_in(&text, "rel_").expect("the mail carries the link");

    // The requester cannot accept its own request, even holding the link.
    assert_eq!(
        answer(
            &app,
            "relationship-requests",
            &w.globex,
            &link,
            "acceptance"
        )
        .await,
        403
    );
    assert_eq!(sees_customer(&app, &w.globex).await, 404);
    assert_eq!(status_of(&app, &status_url, &w.globex).await, "invited");

    // The portal hosting the customer's page posts the acceptance.
    assert_eq!(
        answer(&app, "relationship-requests", &w.acme, &link, "acceptance").await,
        200
    );
    assert_eq!(sees_customer(&app, &w.globex).await, 200);
    assert_eq!(status_of(&app, &status_url, &w.globex).await, "active");
    let relationship = app
        .get("/v1/reseller-relationships/globex/cust-1", &w.globex)
        .await;
    assert_eq!(relationship.status(), 200);
    let relationship: Value = relationship.json().await.unwrap();
    assert_eq!(relationship["granted_by"], "invitation");

    // A second acceptance is refused and grants nothing more.
    assert_eq!(
        answer(&app, "relationship-requests", &w.acme, &link, "acceptance").await,
        409
    );
    assert_eq!(
        answer(&app, "relationship-requests", &w.acme, &link, "decline").await,
        409
    );
    assert_eq!(
        app.count("select count(*) from reseller_relationships")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "select count(*) from audit_events where action in
               ('relationship_request.status', 'relationship.granted')"
        )
        .await,
        3,
        "invited, active, granted"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_declined_request_grants_nothing() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    assert_eq!(
        ask(&app, &w.globex, &asking_for_cust_1()).await.status(),
        202
    );
    let link = app.link_token("rel_").await;

    assert_eq!(
        answer(&app, "relationship-requests", &w.acme, &link, "decline").await,
        200
    );

    assert_eq!(sees_customer(&app, &w.globex).await, 404);
    assert_eq!(
        answer(&app, "relationship-requests", &w.acme, &link, "acceptance").await,
        409,
        "a declined link cannot be accepted afterwards"
    );
    assert_eq!(
        app.count("select count(*) from reseller_relationships")
            .await,
        0
    );
    // Declined ends the request: the partner may ask again.
    assert_eq!(
        ask(&app, &w.globex, &asking_for_cust_1()).await.status(),
        202
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_not_answered_in_time_expires_at_the_injected_clock() {
    let mut settings = test_settings();
    let start = Utc::now();
    settings.clock.now = Some(start);
    let mut app = spawn_with(settings, Components::api_only()).await;
    let w = world(&app).await;
    let asked: Value = ask(&app, &w.globex, &asking_for_cust_1())
        .await
        .json()
        .await
        .unwrap();
    let status_url = asked["status_url"].as_str().unwrap().to_owned();
    let link = app.link_token("rel_").await;
    assert_eq!(
        ask(&app, &w.globex, &asking_for_cust_1()).await.status(),
        409,
        "one open request per partner and customer"
    );

    app.travel_to(start + TimeDelta::days(7) + TimeDelta::minutes(1))
        .await;

    assert_eq!(status_of(&app, &status_url, &w.globex).await, "expired");
    assert_eq!(
        answer(&app, "relationship-requests", &w.acme, &link, "acceptance").await,
        410
    );
    assert_eq!(sees_customer(&app, &w.globex).await, 404);
    assert_eq!(
        app.count("select count(*) from relationship_requests where status = 'expired'")
            .await,
        1,
        "the expiry is recorded"
    );
    assert_eq!(
        ask(&app, &w.globex, &asking_for_cust_1()).await.status(),
        202,
        "an expired request lets the partner ask again"
    );
    app.cleanup().await;
}

/// initech invites globex; globex's admin gets the link.
async fn invite_globex(app: &TestApp, w: &World) -> (String, String) {
    let invited = post(
        app,
        "/v1/partnerships",
        &w.initech,
        &json!({ "reseller_id": "globex" }),
    )
    .await;
    assert_eq!(invited.status(), 202);
    let invited: Value = invited.json().await.unwrap();
    assert!(!invited.to_string().contains("pship_"), "{invited}");
    let id = invited["partnership_id"].as_str().unwrap().to_owned();
    (id, app.link_token("pship_").await)
}

#[tokio::test]
async fn only_the_invited_reseller_accepts_a_partnership() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let (id, link) = invite_globex(&app, &w).await;
    let recipient: String =
        sqlx::query_scalar("select recipient from mails where template = 'partnership_invitation'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(recipient, "admin@globex.example");

    // A third partner, the provider itself and an operator cannot accept it.
    for token in [&w.acme, &w.initech, &w.operator] {
        assert_eq!(
            answer(&app, "partnerships", token, &link, "acceptance").await,
            403
        );
    }
    let path = format!("/v1/partnerships/{id}");
    assert_eq!(status_of(&app, &path, &w.initech).await, "invited");
    assert_eq!(app.get(&path, &w.acme).await.status(), 404);

    assert_eq!(
        answer(&app, "partnerships", &w.globex, &link, "acceptance").await,
        200
    );
    assert_eq!(status_of(&app, &path, &w.initech).await, "active");
    assert_eq!(
        answer(&app, "partnerships", &w.globex, &link, "acceptance").await,
        409
    );
    // A partnership alone shows the provider none of the reseller's customers.
    assert_eq!(sees_customer(&app, &w.initech).await, 404);
    app.cleanup().await;
}

#[tokio::test]
async fn a_two_tier_request_grants_the_provider_too_and_ends_with_the_partnership() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let mut two_tier = asking_for_cust_1();
    two_tier["with_provider"] = json!("initech");

    // Without an active partnership, the provider cannot be named.
    assert_eq!(ask(&app, &w.globex, &two_tier).await.status(), 422);
    let (id, link) = invite_globex(&app, &w).await;
    assert_eq!(
        ask(&app, &w.globex, &two_tier).await.status(),
        422,
        "an invited partnership is not active yet"
    );
    assert_eq!(
        answer(&app, "partnerships", &w.globex, &link, "acceptance").await,
        200
    );

    assert_eq!(ask(&app, &w.globex, &two_tier).await.status(), 202);
    let invitation: String =
        sqlx::query_scalar("select body from mails where template = 'relationship_invitation'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(invitation.contains("Initech Distribution"), "{invitation}");
    let customer_link = app.link_token("rel_").await;
    assert_eq!(
        answer(
            &app,
            "relationship-requests",
            &w.initech,
            &customer_link,
            "acceptance"
        )
        .await,
        403,
        "the provider cannot accept for the customer either"
    );
    assert_eq!(sees_customer(&app, &w.initech).await, 404);
    assert_eq!(
        answer(
            &app,
            "relationship-requests",
            &w.acme,
            &customer_link,
            "acceptance"
        )
        .await,
        200
    );

    assert_eq!(sees_customer(&app, &w.globex).await, 200);
    assert_eq!(sees_customer(&app, &w.initech).await, 200);

    // Ending the partnership ends what it granted the provider, only that.
    let ended = app
        .client
        .delete(app.url(&format!("/v1/partnerships/{id}")))
        .bearer_auth(&w.globex)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(sees_customer(&app, &w.initech).await, 404);
    assert_eq!(sees_customer(&app, &w.globex).await, 200);
    app.cleanup().await;
}

async fn put(app: &TestApp, path: &str, token: &str) -> u16 {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> u16 {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn only_the_partner_of_record_or_an_operator_writes_a_relationship() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let path = "/v1/reseller-relationships/globex/cust-1";

    // Neither the partner itself nor a third one may grant it.
    assert_eq!(put(&app, path, &w.globex).await, 403);
    assert_eq!(put(&app, path, &w.initech).await, 403);
    assert_eq!(
        put(&app, "/v1/reseller-relationships/globex/nobody", &w.globex).await,
        403
    );
    assert_eq!(
        app.count("select count(*) from reseller_relationships")
            .await,
        0
    );
    assert_eq!(sees_customer(&app, &w.globex).await, 404);

    // The operator and the partner of record may; a third may not end it.
    assert_eq!(put(&app, path, &w.operator).await, 201);
    assert_eq!(put(&app, path, &w.acme).await, 200);
    assert_eq!(sees_customer(&app, &w.globex).await, 200);
    assert_eq!(delete(&app, path, &w.initech).await, 403);
    assert_eq!(sees_customer(&app, &w.globex).await, 200);
    assert_eq!(delete(&app, path, &w.acme).await, 200);
    assert_eq!(sees_customer(&app, &w.globex).await, 404);
    assert_eq!(
        delete(&app, path, &w.acme).await,
        404,
        "nothing left to end"
    );
    assert_eq!(
        app.count("select count(*) from audit_events where entity_type = 'reseller_relationship'")
            .await,
        2,
        "the grant and the end, each once"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn orders_trials_and_transfers_for_a_customer_not_acted_for_answer_404() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let order = |customer: &str| {
        json!({ "customer_id": customer, "usage": "virtual", "quantity": 1,
                "contact": { "name": "G", "email": "g@globex.example" } })
    };
    let trial = json!({
        "customer_id": "cust-1", "services": ["chat"], "ends_at": Utc::now() + TimeDelta::days(30),
        "customer_admin": { "email": "admin@cust.example" },
        "partner_admin": { "email": "desk@globex.example" },
    });
    let form = json!({
        "customer_id": "cust-1", "subscription_ids": ["sub-1"],
        "source_contact": { "name": "N", "email": "n@example.com" },
        "customer_admin_email": "admin@cust.example",
    });

    for (path, body) in [
        ("/v1/license-orders", order("cust-1")),
        ("/v1/license-orders", order("no-such-customer")),
        ("/v1/trials", trial.clone()),
        ("/v1/transfer-forms", form),
    ] {
        let response = post(&app, path, &w.globex, &body).await;
        assert_eq!(response.status(), 404, "{path} {body}");
    }
    for table in ["license_orders", "trials", "transfer_forms", "jobs"] {
        assert_eq!(
            app.count(&format!("select count(*) from {table}")).await,
            0,
            "{table}"
        );
    }

    // Once the customer accepted globex, globex may order for it.
    app.grant_relationship(&w.globex, &w.acme, "cust-1").await;
    let accepted = post(&app, "/v1/license-orders", &w.globex, &order("cust-1")).await;
    assert_eq!(accepted.status(), 202);
    app.cleanup().await;
}
