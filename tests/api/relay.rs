//! How the outbox relay learns of new rows: an order placed in a process
//! that runs a relay wakes that relay directly and sends no notification
//! (a notifying commit holds a cluster-wide lock until it is flushed); an
//! order placed in a process without one notifies the relays of others.
//! A batch is published together, and each message's confirm settles its
//! own row.

use std::time::Duration;

use fulfil::app::Components;
use fulfil::broker::topology::Topology;
use fulfil::job::JobKind;
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use sqlx::postgres::PgListener;
use uuid::Uuid;

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

#[tokio::test]
async fn a_job_no_queue_takes_is_dead_lettered_alone_and_its_batch_is_published() {
    // Arrange: a relay with no workers beside it, and one batch of seven
    // due jobs written in one statement: six `license.new` and, second,
    // one of a kind no queue is bound for. The relay publishes the batch
    // together, so the broker's return must reach the one row it belongs to.
    let app = spawn_with(test_settings(), Components::api_only()).await;
    let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
    let unbound = ids[1];
    let kinds: Vec<&str> = ids
        .iter()
        .map(|id| {
            if *id == unbound {
                "nothing.bound"
            } else {
                "license.new"
            }
        })
        .collect();

    // Act
    sqlx::query(
        "with job as (
             insert into jobs (id, kind, payload, max_attempts, enqueued_at)
             select id, kind, '{}', 3, now() from unnest($1::uuid[], $2::text[]) as j(id, kind)
             returning id
         )
         insert into outbox (job_id, attempt) select id, 1 from job",
    )
    .bind(&ids)
    .bind(&kinds)
    .execute(&app.pool)
    .await
    .unwrap();
    let published = wait_for(Duration::from_secs(20), || async {
        app.count("select count(*) from outbox").await == 0
    })
    .await;

    // Assert
    assert!(published, "the relay did not settle the batch");
    let dead: Vec<(Option<Uuid>, String)> =
        sqlx::query_as("select job_id, reason from dead_letters")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    assert_eq!(dead[0].0, Some(unbound), "the unbound job's: {dead:?}");
    assert!(dead[0].1.contains("no queue is bound"), "{}", dead[0].1);
    let mut queued = queued_message_ids(&app, 6).await;
    queued.sort();
    let mut bound: Vec<String> = ids
        .iter()
        .filter(|id| **id != unbound)
        .map(Uuid::to_string)
        .collect();
    bound.sort();
    assert_eq!(queued, bound, "every license.new job was published once");
    app.cleanup().await;
}

/// The message ids of the first `n` messages in the `license.new` queue
/// (left unacked: the test's cleanup deletes its queues).
async fn queued_message_ids(app: &crate::support::TestApp, n: usize) -> Vec<String> {
    let connection = fulfil::broker::connect(&app.settings.amqp, "test-reader")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(n as u16 + 1, BasicQosOptions::default())
        .await
        .unwrap();
    let queue = Topology::new(&app.settings.amqp).queue(JobKind::LicenseNew);
    let consumer = channel
        .basic_consume(
            queue.into(),
            "test-reader".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        consumer.take(n).collect::<Vec<_>>(),
    )
    .await
    .expect("the queue held every message");
    let ids = read
        .into_iter()
        .map(|delivery| {
            let delivery = delivery.unwrap();
            delivery
                .properties
                .message_id()
                .as_ref()
                .unwrap()
                .to_string()
        })
        .collect();
    connection.close(200, "done".into()).await.unwrap();
    ids
}
