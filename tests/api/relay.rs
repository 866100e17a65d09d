//! How the outbox relay learns of new rows: an order placed in a process
//! that runs a relay wakes that relay directly and sends no notification
//! (a notifying commit holds a cluster-wide lock until it is flushed); an
//! order placed in a process without one notifies the relays of others.

use std::time::Duration;

use fulfil::app::Components;
use sqlx::postgres::PgListener;

use crate::support::{new_order, spawn_with, test_settings, wait_for};

/// The notification sent after `placed`: notifications arrive in commit
/// order, so whichever of `placed`'s came first is read before this one.
const MARKER: &str = "marker";

async fn listen(app: &crate::support::TestApp) -> PgListener {
    let mut listener = PgListener::connect_with(&app.pool).await.unwrap();
    listener.listen("fulfil_outbox").await.unwrap();
    listener
}

async fn send_marker(app: &crate::support::TestApp) {
    sqlx::query("select pg_notify('fulfil_outbox', $1)")
        .bind(MARKER)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn placed_orders_wake_their_own_relay_without_a_notification() {
    // Arrange: a relay that would poll only once a minute, so each order
    // below is published within the limit only if placing it woke the
    // relay. No workers: the jobs stay in their queue.
    let mut settings = test_settings();
    settings.outbox.poll_interval = Duration::from_secs(60);
    let app = spawn_with(settings, Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut listener = listen(&app).await;

    // Act: three orders one after the other, each published before the
    // next is placed, so at least two of them find the relay waiting.
    for i in 0..3 {
        let key = format!("order-{i}");
        let accepted = app
            .post("/v1/license-orders", &token, &key, &new_order("virtual", 1))
            .await;
        assert_eq!(accepted.status(), 202, "{key}");
        let published = wait_for(Duration::from_secs(20), || async {
            app.count("select count(*) from outbox").await == 0
        })
        .await;

        // Assert
        assert!(published, "{key} was not published before the relay's poll");
    }
    send_marker(&app).await;
    let first = listener.recv().await.unwrap();
    assert_eq!(
        first.payload(),
        MARKER,
        "placing the orders sent a notification"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_order_placed_where_no_relay_runs_notifies_the_others() {
    // Arrange: an API process without a relay of its own.
    let mut settings = test_settings();
    settings.outbox.relay = false;
    let app = spawn_with(settings, Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut listener = listen(&app).await;

    // Act
    let accepted = app
        .post(
            "/v1/license-orders",
            &token,
            "order-1",
            &new_order("virtual", 1),
        )
        .await;
    assert_eq!(accepted.status(), 202);
    send_marker(&app).await;

    // Assert: the order's notification came before the marker.
    let first = listener.recv().await.unwrap();
    assert_eq!(first.payload(), "", "the order sent no notification");
    app.cleanup().await;
}
