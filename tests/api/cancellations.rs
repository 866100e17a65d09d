use std::time::Duration;

use fulfil::app::Components;
use fulfil::job::JobKind;
use fulfil::store::licenses;
use fulfil::store::tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, new_order, poll_until, publish_raw, spawn_app, spawn_with, test_settings, wait_for,
};

fn cancellations(order_id: &str) -> String {
    format!("/v1/license-orders/{order_id}/cancellations")
}

async fn mails_of(app: &TestApp, template: &str) -> i64 {
    app.count(&format!(
        "select count(*) from mails where template = '{template}'"
    ))
    .await
}

async fn until_request_done(
    app: &TestApp,
    token: &str,
    order_id: &str,
    request_id: &Value,
) -> Value {
    poll_until(
        &format!("request {request_id} done"),
        || app.order_view(token, order_id),
        |order| {
            order["requests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == *request_id && r["status"] == "done")
        },
    )
    .await
}

/// Cancels every key of the order and waits until the cancellation is done.
async fn cancel_all(app: &TestApp, token: &str, order_id: &str) -> Value {
    let response = app
        .post(
            &cancellations(order_id),
            token,
            "cancel-all",
            &json!({ "all": true }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    until_request_done(app, token, order_id, &accepted["request_id"]).await
}

#[tokio::test]
async fn cancelling_some_keys_revokes_them_at_once_and_mails_the_contact() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("virtual", 3)).await;
    let first = app.order_view(&token, &order_id).await["licenses"][0]["id"].clone();

    let response = app
        .post(
            &cancellations(&order_id),
            &token,
            "c1",
            &json!({ "license_ids": [first] }),
        )
        .await;

    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let order = until_request_done(&app, &token, &order_id, &accepted["request_id"]).await;
    assert_eq!(
        order["status"], "active",
        "live keys remain, so the order stays active"
    );
    let statuses: Vec<&str> = order["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "revoked").count(), 1);
    assert!(order["licenses"][0]["revoked_at"].is_string());
    assert!(
        wait_for(Duration::from_secs(20), || async {
            mails_of(&app, "keys_cancelled").await == 1
        })
        .await
    );
    assert_eq!(mails_of(&app, "order_revoked").await, 0);
    app.cleanup().await;
}

/// The order view reads the order, its keys, its requests and its history
/// in four queries. A cancellation committing between them must not show
/// its request done beside a key still issued: the view is one snapshot.
/// The writer here holds `license_requests` locked until the view has read
/// the keys and waits on the requests, then commits what `license.revoke`
/// commits; the view must show the order from before, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_view_is_one_snapshot_while_a_cancellation_commits() {
    let mut components = Components::everything();
    components
        .workers
        .retain(|kind| *kind != JobKind::LicenseRevoke);
    let app = spawn_with(test_settings(), components).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("virtual", 2)).await;
    let license: Uuid = app.order_view(&token, &order_id).await["licenses"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let accepted: Value = app
        .post(
            &cancellations(&order_id),
            &token,
            "snap",
            &json!({ "license_ids": [license] }),
        )
        .await
        .json()
        .await
        .unwrap();
    let request: Uuid = accepted["request_id"].as_str().unwrap().parse().unwrap();

    let mut writer = app.pool.begin().await.unwrap();
    sqlx::query("lock table license_requests in access exclusive mode")
        .execute(&mut *writer)
        .await
        .unwrap();
    let commit_once_the_view_waits = async {
        assert!(
            wait_for(Duration::from_secs(10), || async {
                app.count(
                    "select count(*) from pg_locks l join pg_stat_activity a using (pid)
                     where not l.granted and l.relation = 'license_requests'::regclass
                       and a.datname = current_database()
                       and a.query like '%from license_requests where order_id%'",
                )
                .await
                    == 1
            })
            .await,
            "the view never reached the requests"
        );
        let now = chrono::Utc::now();
        licenses::revoke_licenses(&mut writer, &[license], now)
            .await
            .unwrap();
        licenses::complete_request(&mut writer, request, now)
            .await
            .unwrap();
        writer.commit().await.unwrap();
    };
    let (view, ()) = tokio::join!(
        app.order_view(&token, &order_id),
        commit_once_the_view_waits
    );

    let status_of = |view: &Value| {
        let key = view["licenses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == license.to_string())
            .unwrap()["status"]
            .clone();
        let cancellation = view["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == request.to_string())
            .unwrap()["status"]
            .clone();
        (key, cancellation)
    };
    assert_eq!(
        status_of(&view),
        (json!("issued"), json!("pending")),
        "the view is the order as it was when it began"
    );
    assert_eq!(
        status_of(&app.order_view(&token, &order_id).await),
        (json!("revoked"), json!("done"))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn cancelling_the_last_key_revokes_the_vendor_order_and_mails_contact_and_partner() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    sqlx::query(
        "update partners set admin_email = 'admin@acme.example', locale = 'en' where id = 'acme'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let order_id = app.active_order(&token, &new_order("hypervisor", 2)).await;

    let order = cancel_all(&app, &token, &order_id).await;

    assert_eq!(order["status"], "revoked");
    assert!(order["revoked_at"].is_string());
    assert!(
        order["licenses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "revoked")
    );
    let actions: Vec<&str> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "order.created",
            "change.accepted",
            "order.activated",
            "change.accepted",
            "licenses.revoked",
            "order.revoked"
        ]
    );
    for event in order["history"].as_array().unwrap() {
        assert!(
            event["at"].is_string() && event["token_id"].is_string(),
            "who and when: {event}"
        );
    }
    assert!(
        order["history"][5]["job_id"].is_string(),
        "which job revoked it"
    );
    assert!(
        wait_for(Duration::from_secs(20), || async {
            app.count(
                "select count(*) from mails where template = 'order_revoked' and status = 'sent'",
            )
            .await
                == 2
        })
        .await
    );
    let recipients: Vec<String> = sqlx::query_scalar(
        "select recipient from mails where template = 'order_revoked' order by recipient",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(recipients, ["admin@acme.example", "hanako@example.com"]);
    app.cleanup().await;
}

#[tokio::test]
async fn keys_can_be_named_and_unknown_or_revoked_keys_are_422_naming_them() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("virtual", 2)).await;
    let order = app.order_view(&token, &order_id).await;
    let key = order["licenses"][0]["key"].as_str().unwrap().to_owned();
    let accepted: Value = app
        .post(
            &cancellations(&order_id),
            &token,
            "by-key",
            &json!({ "keys": [key.to_lowercase()] }),
        )
        .await
        .json()
        .await
        .unwrap();
    until_request_done(&app, &token, &order_id, &accepted["request_id"]).await;
    let foreign = fulfil::licensing::key::LicenseKey::generate()
        .as_str()
        .to_owned();

    let response = app
        .post(
            &cancellations(&order_id),
            &token,
            "again",
            &json!({ "keys": [key, foreign] }),
        )
        .await;

    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        problem["type"],
        "urn:fulfil:problem:license-not-cancellable"
    );
    assert_eq!(problem["errors"][0]["field"], "keys[0]");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already revoked")
    );
    assert_eq!(problem["errors"][1]["field"], "keys[1]");
    assert!(
        problem["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("not a key of this order")
    );
    assert!(
        !text.contains(&key) && !text.contains(&foreign),
        "no license key in an error: {text}"
    );
    let unknown_id = app
        .post(
            &cancellations(&order_id),
            &token,
            "id",
            &json!({ "license_ids": [uuid::Uuid::now_v7()] }),
        )
        .await;
    assert_eq!(unknown_id.status(), 422);
    assert_eq!(
        app.count("select count(*) from license_requests where kind = 'cancellation'")
            .await,
        1,
        "refusals store nothing"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_revoked_order_accepts_nothing_more() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("hypervisor", 1)).await;
    cancel_all(&app, &token, &order_id).await;

    let attempts = [
        app.post(
            &cancellations(&order_id),
            &token,
            "x1",
            &json!({ "all": true }),
        )
        .await,
        app.post(
            &format!("/v1/license-orders/{order_id}/additions"),
            &token,
            "x2",
            &json!({ "quantity": 1 }),
        )
        .await,
        app.post(
            &format!("/v1/license-orders/{order_id}/vm-count"),
            &token,
            "x3",
            &json!({ "vm_count": 99 }),
        )
        .await,
    ];

    for response in attempts {
        assert_eq!(response.status(), 409);
        assert_eq!(
            response.json::<Value>().await.unwrap()["type"],
            "urn:fulfil:problem:order-revoked"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn cancellations_are_refused_while_preparing_and_cannot_carry_a_date() {
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.order(&token, &new_order("virtual", 1)).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let preparing = app
        .post(
            &cancellations(&order_id),
            &token,
            "p",
            &json!({ "all": true }),
        )
        .await;
    let dated = app
        .post(
            &cancellations(&order_id),
            &token,
            "d",
            &json!({ "all": true, "cancel_date": "2027-01-01" }),
        )
        .await;
    let ambiguous = app
        .post(
            &cancellations(&order_id),
            &token,
            "a",
            &json!({ "all": true, "license_ids": [] }),
        )
        .await;

    assert_eq!(preparing.status(), 409);
    assert_eq!(
        preparing.json::<Value>().await.unwrap()["type"],
        "urn:fulfil:problem:order-preparing"
    );
    assert_eq!(dated.status(), 400);
    assert_eq!(
        dated.json::<Value>().await.unwrap()["type"],
        "urn:fulfil:problem:date-not-allowed"
    );
    assert_eq!(ambiguous.status(), 400);
    app.cleanup().await;
}

#[tokio::test]
async fn operators_query_the_audit_trail_and_portals_cannot() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let operator = app.token(Role::Operator, None).await;
    let order_id = app.active_order(&token, &new_order("virtual", 1)).await;

    let trail: Value = app
        .get(&format!("/v1/ops/audit?entity_id={order_id}"), &operator)
        .await
        .json()
        .await
        .unwrap();
    let forbidden = app.get("/v1/ops/audit", &token).await;

    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["order.activated", "change.accepted", "order.created"],
        "newest first"
    );
    assert_eq!(forbidden.status(), 403);
    app.cleanup().await;
}

/// Exactly one order revocation, and one mail per cause, for `order_id`.
async fn assert_revoked_once(app: &TestApp, order_id: &str) {
    let count = |sql: String| async move { app.count(&sql).await };
    assert_eq!(count(format!("select count(*) from jobs where kind = 'license.order_revoke' and resource_id = '{order_id}'")).await, 1);
    assert_eq!(count(format!("select count(*) from audit_events where action = 'order.revoked' and entity_id = '{order_id}'")).await, 1);
    assert_eq!(
        count(format!(
            "select count(*) from mails where cause = 'order_revoked:{order_id}:contact'"
        ))
        .await,
        1
    );
    assert_eq!(
        count(format!(
            "select count(*) from licenses where order_id = '{order_id}' and status <> 'revoked'"
        ))
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancellations_of_the_same_keys_revoke_the_order_once() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    for round in 0..10 {
        let order_id = app.active_order(&token, &new_order("virtual", 2)).await;
        let path = cancellations(&order_id);

        let all = json!({ "all": true });
        let keys: Vec<String> = (0..4).map(|i| format!("race-{round}-{i}")).collect();
        let racing = keys.iter().map(|key| app.post(&path, &token, key, &all));
        let statuses: Vec<u16> = futures::future::join_all(racing)
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();

        assert_eq!(
            statuses.iter().filter(|s| **s == 202).count(),
            1,
            "one wins: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| [202, 409, 422].contains(s)),
            "{statuses:?}"
        );
        assert!(
            wait_for(Duration::from_secs(30), || async {
                app.order_view(&token, &order_id).await["status"] == "revoked"
            })
            .await
        );
        assert_revoked_once(&app, &order_id).await;
        let cancelled_mails = format!(
            "select count(*) from mails where cause in
               (select 'keys_cancelled:' || id from license_requests where order_id = '{order_id}')"
        );
        assert_eq!(app.count(&cancelled_mails).await, 1);
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_racing_an_addition_ends_consistent() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    for round in 0..10 {
        let order_id = app.active_order(&token, &new_order("virtual", 1)).await;

        let (cancel_path, add_path) = (
            cancellations(&order_id),
            format!("/v1/license-orders/{order_id}/additions"),
        );
        let (cancel_key, add_key) = (format!("c{round}"), format!("a{round}"));
        let (all, one) = (json!({ "all": true }), json!({ "quantity": 1 }));
        let cancel = app.post(&cancel_path, &token, &cancel_key, &all);
        let add = app.post(&add_path, &token, &add_key, &one);
        // The two must contend. Unheld, a slow machine can finish one change,
        // job and all, before the other arrives; then both are rightly
        // accepted in turn and the race under test never happens. So the
        // test holds the order's lock until both requests wait on it.
        let mut holder = app.pool.begin().await.unwrap();
        sqlx::query("select 1 from license_orders where id = $1::uuid for update")
            .bind(&order_id)
            .execute(&mut *holder)
            .await
            .unwrap();
        let release_once_both_wait = async {
            assert!(
                wait_for(Duration::from_secs(10), || async {
                    app.count(
                        "select count(*) from pg_stat_activity
                         where datname = current_database() and wait_event_type = 'Lock'
                           and query like '%from license_orders where id = $1 for update%'",
                    )
                    .await
                        == 2
                })
                .await,
                "both requests reached the order's lock"
            );
            holder.commit().await.unwrap();
        };
        let (cancel, add, ()) = tokio::join!(cancel, add, release_once_both_wait);
        let (cancel, add) = (cancel.status().as_u16(), add.status().as_u16());

        // Exactly one change is accepted; the other waits its turn (409).
        assert_eq!(
            [cancel, add].iter().filter(|s| **s == 202).count(),
            1,
            "cancel {cancel}, add {add}"
        );
        let settled = wait_for(Duration::from_secs(30), || async {
            let order = app.order_view(&token, &order_id).await;
            order["requests"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "done")
        })
        .await;
        assert!(settled);
        let order = app.order_view(&token, &order_id).await;
        if cancel == 202 {
            assert_eq!(order["status"], "revoked");
            assert_revoked_once(&app, &order_id).await;
        } else {
            assert_eq!(order["status"], "active");
            assert_eq!(
                order["licenses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|l| l["status"] == "issued")
                    .count(),
                2
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_revocation_jobs_change_nothing_more() {
    let app = spawn_app().await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let order_id = app.active_order(&token, &new_order("virtual", 2)).await;
    cancel_all(&app, &token, &order_id).await;
    let mails_before = app.count("select count(*) from mails").await;

    let envelopes: Vec<(String, Value)> = sqlx::query_as(
        "select kind, json_build_object('job_id', id, 'kind', kind, 'version', version,
                'enqueued_at', enqueued_at, 'attempt', 1, 'payload', payload)
         from jobs where kind in ('license.revoke', 'license.order_revoke')",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(envelopes.len(), 2);
    for (kind, envelope) in &envelopes {
        for _ in 0..3 {
            publish_raw(
                &app.settings,
                &format!("{}{kind}", app.settings.amqp.prefix),
                envelope.to_string().as_bytes(),
            )
            .await;
        }
    }

    let redelivered = wait_for(Duration::from_secs(20), || async {
        app.count("select coalesce(min(deliveries), 0)::int8 from jobs where kind in ('license.revoke', 'license.order_revoke')").await == 4
    })
    .await;
    assert!(redelivered, "each job was delivered again three times");
    assert_revoked_once(&app, &order_id).await;
    assert_eq!(app.count("select count(*) from mails").await, mails_before);
    assert_eq!(
        app.count("select count(*) from audit_events where action = 'licenses.revoked'")
            .await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_database_refuses_a_revoked_order_with_a_live_key() {
    // Arrange: an order with two pending keys, no workers.
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let accepted = app.order(&token, &new_order("virtual", 2)).await;
    let order_id: Uuid = accepted["order_id"].as_str().unwrap().parse().unwrap();
    let revoke_order = "update license_orders set status = 'revoked', revoked_at = now(),
                        vendor_order_id = 'VO-TEST' where id = $1";
    let revoke_keys = "update licenses set status = 'revoked', revoked_at = now(),
                       key = 'TEST-' || seq where order_id = $1";
    let add_key = "insert into licenses (id, order_id, request_id, seq, usage)
                   select gen_random_uuid(), order_id, request_id, 3, usage from licenses
                   where order_id = $1 and seq = 1";
    let refused = |committed: Result<(), sqlx::Error>| {
        committed.is_err_and(|e| e.to_string().contains("revoked but still has a live key"))
    };

    // Act and assert: revoking the order while its keys live fails at
    // commit; so does a live key added to a revoked order.
    assert!(refused(commit_all(&app, order_id, &[revoke_order]).await));
    commit_all(&app, order_id, &[revoke_keys, revoke_order])
        .await
        .expect("an order whose keys are all revoked may be revoked");
    assert!(refused(commit_all(&app, order_id, &[add_key]).await));
    assert_eq!(
        app.count("select count(*) from licenses where status <> 'revoked'")
            .await,
        0
    );
    app.cleanup().await;
}

/// Runs each statement with `order_id` as `$1` in one transaction, and
/// commits it.
async fn commit_all(app: &TestApp, order_id: Uuid, statements: &[&str]) -> Result<(), sqlx::Error> {
    let mut tx = app.pool.begin().await?;
    for statement in statements {
        sqlx::query(statement)
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
