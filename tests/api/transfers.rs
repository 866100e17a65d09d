use std::time::Duration;

use fulfil::app::Components;
use fulfil::job::JobKind;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, poll_until, spawn_app, spawn_with, test_settings, wait_for};

struct World {
    acme: String,
    globex: String,
    /// One-shot tickets are an operator's (portals fill in a transfer form).
    operator: String,
}

/// acme sells cust-1 three subscriptions and holds roles on two of them
/// and on the customer; a user holds a role too. globex has a reseller
/// relationship with cust-1, which the customer accepted.
async fn world(app: &TestApp) -> World {
    let acme = app.portal_token("acme").await;
    let globex = app.portal_token("globex").await;
    app.put_ok(
        "/v1/customers/cust-1",
        &acme,
        &json!({ "name": "Cust One" }),
    )
    .await;
    for sub in ["sub-1", "sub-2", "sub-3"] {
        app.put_ok(
            &format!("/v1/subscriptions/{sub}"),
            &acme,
            &json!({ "customer_id": "cust-1", "product": "Azure plan" }),
        )
        .await;
    }
    let role = |principal_type: &str, principal_id: &str, scope_type: &str, scope_id: &str| {
        json!({ "principal_type": principal_type, "principal_id": principal_id, "role": "admin-agent",
                "scope_type": scope_type, "scope_id": scope_id })
    };
    app.put_ok(
        "/v1/role-assignments/r-sub-1",
        &acme,
        &role("partner", "acme", "subscription", "sub-1"),
    )
    .await;
    app.put_ok(
        "/v1/role-assignments/r-sub-2",
        &acme,
        &role("partner", "acme", "subscription", "sub-2"),
    )
    .await;
    app.put_ok(
        "/v1/role-assignments/r-cust",
        &acme,
        &role("partner", "acme", "customer", "cust-1"),
    )
    .await;
    app.put_ok(
        "/v1/role-assignments/r-user",
        &acme,
        &role("user", "user-1", "subscription", "sub-1"),
    )
    .await;
    // cust-1 accepts globex's request through acme's portal, which hosts its page.
    app.grant_relationship(&globex, &acme, "cust-1").await;
    let operator = app.token(Role::Operator, None).await;
    World {
        acme,
        globex,
        operator,
    }
}

fn transfer(subscriptions: &[&str]) -> Value {
    let contact = |name: &str, email: &str, locale: &str| json!({ "name": name, "email": email, "locale": locale });
    json!({
        "customer_id": "cust-1",
        "source_partner_id": "acme",
        "destination_partner_id": "globex",
        "subscription_ids": subscriptions,
        "customer_contact": contact("Cust Admin", "admin@cust.example", "ja"),
        "source_contact": contact("Acme Desk", "desk@acme.example", "en"),
        "destination_contact": contact("Globex Desk", "desk@globex.example", "en"),
    })
}

async fn submit(app: &TestApp, token: &str, body: &Value) -> Value {
    let response = app
        .post(
            "/v1/transfers",
            token,
            &uuid::Uuid::new_v4().to_string(),
            body,
        )
        .await;
    assert_eq!(response.status(), 202);
    response.json().await.unwrap()
}

async fn until_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let path = format!("/v1/transfers/{id}");
    poll_until(
        &format!("transfer {id} {status}"),
        || async { app.get(&path, token).await.json().await.unwrap() },
        |view| view["status"] == status,
    )
    .await
}

async fn role_status(app: &TestApp, id: &str) -> String {
    sqlx::query_scalar("select status from role_assignments where id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn seller(app: &TestApp, subscription: &str) -> String {
    sqlx::query_scalar("select partner_id from subscriptions where id = $1")
        .bind(subscription)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn sent(app: &TestApp, template: &str) -> i64 {
    app.count(&format!(
        "select count(*) from mails where template = '{template}' and status = 'sent'"
    ))
    .await
}

#[tokio::test]
async fn a_transfer_switches_the_subscriptions_then_removes_the_source_partners_roles() {
    let app = spawn_app().await;
    let w = world(&app).await;

    let accepted = submit(&app, &w.operator, &transfer(&["sub-1", "sub-2"])).await;
    let id = accepted["transfer_id"].as_str().unwrap();

    let view = until_status(&app, &w.globex, id, "completed").await;
    assert_eq!(
        (
            seller(&app, "sub-1").await,
            seller(&app, "sub-2").await,
            seller(&app, "sub-3").await
        ),
        ("globex".into(), "globex".into(), "acme".into())
    );
    assert_eq!(role_status(&app, "r-sub-1").await, "removed");
    assert_eq!(role_status(&app, "r-sub-2").await, "removed");
    assert_eq!(
        role_status(&app, "r-cust").await,
        "present",
        "acme still sells cust-1 sub-3"
    );
    assert_eq!(
        role_status(&app, "r-user").await,
        "present",
        "only the source partner's roles go"
    );
    let states: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["submitted", "switching", "cleaning_roles", "completed"]
    );
    assert_eq!(
        app.count("select count(*) from subscription_history").await,
        2
    );
    assert!(
        wait_for(Duration::from_secs(20), || async {
            sent(&app, "transfer_submitted").await == 3
                && sent(&app, "transfer_completed").await == 3
        })
        .await
    );
    let source_view = app.get(&format!("/v1/transfers/{id}"), &w.acme).await;
    assert_eq!(
        source_view.status(),
        200,
        "the source partner sees the ticket too"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn transferring_every_subscription_also_removes_the_role_on_the_customer() {
    let app = spawn_app().await;
    let w = world(&app).await;

    let accepted = submit(&app, &w.operator, &transfer(&["sub-1", "sub-2", "sub-3"])).await;

    until_status(
        &app,
        &w.globex,
        accepted["transfer_id"].as_str().unwrap(),
        "completed",
    )
    .await;
    assert_eq!(role_status(&app, "r-cust").await, "removed");
    app.cleanup().await;
}

#[tokio::test]
async fn a_subscription_not_held_by_the_source_rejects_the_whole_ticket() {
    let app = spawn_app().await;
    let w = world(&app).await;
    app.put_ok(
        "/v1/subscriptions/sub-g",
        &w.globex,
        &json!({ "customer_id": "cust-1", "product": "M365" }),
    )
    .await;

    let accepted = submit(&app, &w.operator, &transfer(&["sub-1", "sub-g"])).await;

    let view = until_status(
        &app,
        &w.globex,
        accepted["transfer_id"].as_str().unwrap(),
        "rejected",
    )
    .await;
    assert!(view["reason"].as_str().unwrap().contains("sub-g"), "{view}");
    assert_eq!(seller(&app, "sub-1").await, "acme", "nothing switched");
    assert_eq!(role_status(&app, "r-sub-1").await, "present");
    assert_eq!(
        app.count("select count(*) from subscription_history").await,
        0
    );
    assert!(
        wait_for(Duration::from_secs(20), || async {
            sent(&app, "transfer_rejected").await == 3
        })
        .await
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_ticket_whose_relationship_ended_before_it_ran_is_rejected() {
    // Arrange: globex submits while it still has the relationship.
    let settings = test_settings();
    let mut api = spawn_with(settings.clone(), Components::api_only()).await;
    let w = world(&api).await;
    let id = submit(&api, &w.operator, &transfer(&["sub-1"])).await["transfer_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Act: the partner of record ends it before any worker runs the ticket.
    let ended = api
        .client
        .delete(api.url("/v1/reseller-relationships/globex/cust-1"))
        .bearer_auth(&w.acme)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    api.stop().await;
    let app = spawn_with(settings, Components::everything()).await;

    // Assert: the worker re-checks under lock and rejects the whole ticket.
    let view = until_status(&app, &w.globex, &id, "rejected").await;
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("no reseller relationship"),
        "{view}"
    );
    assert_eq!(seller(&app, "sub-1").await, "acme");
    app.cleanup().await;
}

#[tokio::test]
async fn only_the_destination_cancels_and_only_while_submitted() {
    // No workers yet: the ticket stays submitted.
    let settings = test_settings();
    let mut api = spawn_with(settings.clone(), Components::api_only()).await;
    let w = world(&api).await;
    let initech = api.portal_token("initech").await;
    let id = submit(&api, &w.operator, &transfer(&["sub-1"])).await["transfer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/transfers/{id}/cancellation");

    assert_eq!(
        api.post(&path, &w.acme, "c0", &json!({})).await.status(),
        403,
        "the source may not cancel"
    );
    assert_eq!(
        api.post(&path, &initech, "c1", &json!({})).await.status(),
        404,
        "others do not see it"
    );
    assert_eq!(
        api.post(&path, &w.globex, "c2", &json!({})).await.status(),
        200
    );
    let again = api.post(&path, &w.globex, "c3", &json!({})).await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["type"],
        "urn:fulfil:problem:transfer-not-submitted"
    );

    // When the job finally runs, a cancelled ticket changes nothing.
    api.stop().await;
    let workers = spawn_with(settings, Components::workers(JobKind::ALL.to_vec())).await;
    assert!(wait_for(Duration::from_secs(20), || async {
        workers.count("select count(*) from jobs where kind = 'transfer.process' and status = 'succeeded'").await == 1
    }).await);
    assert_eq!(seller(&workers, "sub-1").await, "acme");
    assert_eq!(
        workers
            .count("select count(*) from transfers where status = 'cancelled'")
            .await,
        1
    );
    workers.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_cleanup_run_twice_and_concurrently_removes_once_and_fails_nothing() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let body = json!({ "customer_id": "cust-1", "partner_id": "acme", "subscription_ids": ["sub-1", "sub-2"] });

    let keys = ["rc-1", "rc-2", "rc-3"];
    let concurrent = keys
        .iter()
        .map(|key| app.post("/v1/role-cleanups", &w.acme, key, &body));
    for response in futures::future::join_all(concurrent).await {
        assert_eq!(response.status(), 202);
    }
    assert_eq!(
        app.post("/v1/role-cleanups", &w.acme, "rc-4", &body)
            .await
            .status(),
        202
    );

    assert!(
        wait_for(Duration::from_secs(20), || async {
            app.count(
                "select count(*) from jobs where kind = 'role.cleanup' and status = 'succeeded'",
            )
            .await
                == 4
        })
        .await
    );
    assert_eq!(role_status(&app, "r-sub-1").await, "removed");
    assert_eq!(role_status(&app, "r-sub-2").await, "removed");
    assert_eq!(
        role_status(&app, "r-cust").await,
        "present",
        "acme still sells cust-1 subscriptions"
    );
    assert_eq!(
        app.count("select count(*) from role_assignments where status = 'removed'")
            .await,
        2
    );
    assert_eq!(
        app.count(
            "select count(*) from jobs where kind = 'role.cleanup' and status <> 'succeeded'"
        )
        .await,
        0
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_between_the_switch_and_the_cleanup_still_completes() {
    // Arrange: a process whose workers switch but never clean up.
    let settings = test_settings();
    let partial = Components {
        api: true,
        workers: vec![JobKind::TransferProcess, JobKind::MailSend],
        dead_letter_intake: false,
        scheduler: false,
    };
    let mut first = spawn_with(settings.clone(), partial).await;
    let w = world(&first).await;
    let id = submit(&first, &w.operator, &transfer(&["sub-1", "sub-2"])).await["transfer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    until_status(&first, &w.globex, &id, "cleaning_roles").await;
    assert_eq!(role_status(&first, "r-sub-1").await, "present");
    first.stop().await;

    // Act: a full process takes over.
    let second = spawn_with(settings, Components::everything()).await;

    // Assert
    until_status(&second, &w.globex, &id, "completed").await;
    assert_eq!(role_status(&second, "r-sub-1").await, "removed");
    assert_eq!(role_status(&second, "r-sub-2").await, "removed");
    second.cleanup().await;
}

#[tokio::test]
async fn a_ticket_not_carried_out_in_time_expires() {
    let mut settings = test_settings();
    settings.transfers.expire_after = Duration::from_millis(1);
    let app = spawn_with(settings, Components::everything()).await;
    let w = world(&app).await;

    let accepted = submit(&app, &w.operator, &transfer(&["sub-1"])).await;

    until_status(
        &app,
        &w.globex,
        accepted["transfer_id"].as_str().unwrap(),
        "expired",
    )
    .await;
    assert_eq!(seller(&app, "sub-1").await, "acme");
    app.cleanup().await;
}

#[tokio::test]
async fn one_shot_tickets_are_for_operators_and_bad_ones_store_nothing() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let w = world(&app).await;
    let mut invalid = transfer(&[]);
    invalid["customer_contact"]["email"] = json!("nope");
    let unknown = transfer(&["sub-404"]);
    let mut no_destination = transfer(&["sub-1"]);
    no_destination
        .as_object_mut()
        .unwrap()
        .remove("destination_partner_id");

    for portal in [&w.globex, &w.acme] {
        let refused = app
            .post("/v1/transfers", portal, "p", &transfer(&["sub-1"]))
            .await;
        assert_eq!(refused.status(), 403, "portals fill in a transfer form");
    }
    let bad = app.post("/v1/transfers", &w.operator, "b", &invalid).await;
    assert_eq!(bad.status(), 400);
    let fields: Vec<String> = bad.json::<Value>().await.unwrap()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"subscription_ids".to_owned())
            && fields.contains(&"customer_contact.email".to_owned()),
        "{fields:?}"
    );
    let missing = app
        .post("/v1/transfers", &w.operator, "d", &no_destination)
        .await;
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["errors"][0]["field"],
        "destination_partner_id"
    );
    assert_eq!(
        app.post("/v1/transfers", &w.operator, "u", &unknown)
            .await
            .status(),
        422
    );
    assert_eq!(app.count("select count(*) from transfers").await, 0);
    assert_eq!(
        app.count("select count(*) from jobs where kind <> 'mail.send'")
            .await,
        0
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_ticket_whose_job_dies_is_failed_with_the_error_and_mailed() {
    let mut settings = test_settings();
    settings.jobs.max_attempts = 1;
    let app = spawn_with(settings, Components::everything()).await;
    let w = world(&app).await;
    // A real failure inside the switch's transaction.
    sqlx::raw_sql(
        "create function refuse_history() returns trigger language plpgsql as
           $$ begin raise exception 'history store unavailable'; end; $$;
         create trigger refuse_history before insert on subscription_history
           for each statement execute function refuse_history();",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let accepted = submit(&app, &w.operator, &transfer(&["sub-1"])).await;

    let view = until_status(
        &app,
        &w.globex,
        accepted["transfer_id"].as_str().unwrap(),
        "failed",
    )
    .await;
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("history store unavailable"),
        "{view}"
    );
    assert_eq!(
        seller(&app, "sub-1").await,
        "acme",
        "the failed switch rolled back"
    );
    assert!(
        wait_for(Duration::from_secs(20), || async {
            sent(&app, "transfer_failed").await == 3
        })
        .await
    );
    let mail_body: String =
        sqlx::query_scalar("select body from mails where template = 'transfer_failed' limit 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        !mail_body.contains("history store unavailable"),
        "internal errors are not mailed"
    );
    app.cleanup().await;
}
