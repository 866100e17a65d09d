//! RabbitMQ restarts under a trickle of requests: nothing accepted is
//! lost, and the workers come back on their own. It stops the machine's
//! broker for everyone, so it first owns the broker (`own_the_broker`):
//! cargo runs this run's binaries one after another, but other `cargo
//! test` runs on the machine (other worktrees) would otherwise have their
//! jobs held back mid-test by the outage.

mod support;

use std::process::Command;
use std::time::Duration;

use fulfil::app::Components;
use support::{new_order, own_the_broker, spawn_with, test_settings, wait_for};

fn rabbitmqctl(action: &str) {
    let status = Command::new("rabbitmqctl")
        .arg(action)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {action} failed");
}

/// Starts the broker again even when the test fails half-way.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_a_trickle_of_requests_loses_nothing() {
    // Blocks a runtime thread until the other test processes are done;
    // nothing of this test runs yet.
    own_the_broker();
    let app = spawn_with(test_settings(), Components::everything()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let total = 60;
    let _guard = RestartGuard;

    let trickle = async {
        let mut statuses = Vec::new();
        for _ in 0..total {
            let response = app
                .post(
                    "/v1/license-orders",
                    &token,
                    &uuid::Uuid::new_v4().to_string(),
                    &new_order("virtual", 1),
                )
                .await;
            statuses.push(response.status().as_u16());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        statuses
    };
    let outage = async {
        assert!(
            wait_for(Duration::from_secs(30), || async {
                app.count("select count(*) from license_orders").await >= 10
            })
            .await
        );
        tokio::task::spawn_blocking(|| rabbitmqctl("stop_app"))
            .await
            .unwrap();
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503, "readiness reports the broker down");
        // The outage lasts while a few requests arrive.
        let accepted_before = app.count("select count(*) from license_orders").await;
        assert!(
            wait_for(Duration::from_secs(30), || async {
                app.count("select count(*) from license_orders").await >= accepted_before + 10
            })
            .await
        );
        tokio::task::spawn_blocking(|| rabbitmqctl("start_app"))
            .await
            .unwrap();
    };
    let (statuses, ()) = tokio::join!(trickle, outage);

    assert!(
        statuses.iter().all(|s| *s == 202),
        "every request was accepted: {statuses:?}"
    );
    let all_done = wait_for(Duration::from_secs(90), || async {
        app.count("select count(*) from license_orders where status = 'active'")
            .await
            == total
            && app
                .count("select count(*) from mails where status = 'sent'")
                .await
                == total
    })
    .await;
    assert!(
        all_done,
        "active orders: {}",
        app.count("select count(*) from license_orders where status = 'active'")
            .await
    );
    assert_eq!(
        app.count("select count(distinct key) from licenses where status = 'issued'")
            .await,
        total
    );
    assert_eq!(app.count("select count(*) from mails").await, total);
    assert_eq!(app.count("select count(*) from dead_letters").await, 0);
    app.cleanup().await;
}
