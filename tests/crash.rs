//! Process-level guarantees with real `fulfil` child processes: SIGKILL
//! mid-batch, SIGTERM, and a crash between the commit and the publish.

mod support;

use std::process::Child;
use std::time::Duration;

use fulfil::app::Components;
use fulfil::settings::Settings;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{TestApp, new_order, spawn_process, spawn_with, test_settings, wait_for};

async fn post_orders(app: &TestApp, token: &str, count: usize, quantity: i32) {
    let body = new_order("virtual", quantity);
    for chunk in (0..count).collect::<Vec<_>>().chunks(25) {
        let posts = chunk.iter().map(|_| app.order(token, &body));
        futures::future::join_all(posts).await;
    }
}

async fn active_orders(app: &TestApp) -> i64 {
    app.count("select count(*) from license_orders where status = 'active'")
        .await
}

/// Everything accepted was done exactly once: every order active, one key
/// per requested license, one sent mail per order, nothing dead.
async fn assert_all_done_once(app: &TestApp, orders: i64, quantity: i64) {
    let all_done = wait_for(Duration::from_secs(60), || async {
        active_orders(app).await == orders
            && app
                .count("select count(*) from mails where status = 'sent'")
                .await
                == orders
    })
    .await;
    assert!(
        all_done,
        "active: {}, sent mails: {}",
        active_orders(app).await,
        app.count("select count(*) from mails where status = 'sent'")
            .await
    );
    assert_eq!(
        app.count("select count(*) from licenses where status = 'issued'")
            .await,
        orders * quantity
    );
    assert_eq!(
        app.count("select count(distinct key) from licenses").await,
        orders * quantity
    );
    assert_eq!(app.count("select count(*) from mails").await, orders);
    assert_eq!(
        app.mail_files().len() as i64,
        orders,
        "one mail file per order"
    );
    assert_eq!(app.count("select count(*) from dead_letters").await, 0);
    assert_eq!(
        app.count("select count(*) from jobs where status <> 'succeeded'")
            .await,
        0
    );
}

/// Whether every job queue has `count` consumers, as the broker reports.
async fn every_queue_has_consumers(pool: &sqlx::PgPool, settings: &Settings, count: u32) -> bool {
    fulfil::ops::queues::stats(pool, settings)
        .await
        .is_ok_and(|report| report.queues.iter().all(|q| q.consumers == Some(count)))
}

async fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_for(limit, || {
        status = child.try_wait().unwrap();
        std::future::ready(status.is_some())
    })
    .await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing() {
    // Arrange: the API in this process, the worker a real child process.
    let settings = test_settings();
    let app = spawn_with(settings.clone(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut worker = spawn_process(&settings, &["worker"]);
    let orders = 300;

    // Act: kill -9 the worker while it is working through the batch.
    let posting = post_orders(&app, &token, orders, 2);
    let killing = async {
        let started = wait_for(Duration::from_secs(60), || async {
            active_orders(&app).await >= 10
        })
        .await;
        assert!(started, "the worker started on the batch");
        worker.0.kill().unwrap();
        worker.0.wait().unwrap();
    };
    tokio::join!(posting, killing);
    let done_at_kill = active_orders(&app).await;
    assert!(
        done_at_kill < orders as i64,
        "the kill came mid-batch ({done_at_kill} of {orders} done)"
    );

    let replacement = spawn_process(&settings, &["worker"]);

    // Assert
    assert_all_done_once(&app, orders as i64, 2).await;
    drop(replacement);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_taking_work_finishes_in_flight_jobs_and_exits_zero() {
    let settings = test_settings();
    let app = spawn_with(settings.clone(), Components::api_only()).await;
    let token = app.portal_with_customer("acme", "cust-1").await;
    let mut worker = spawn_process(&settings, &["worker"]);
    post_orders(&app, &token, 100, 1).await;
    assert!(
        wait_for(Duration::from_secs(60), || async {
            active_orders(&app).await >= 5
        })
        .await
    );

    kill(Pid::from_raw(worker.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut worker.0, Duration::from_secs(30))
        .await
        .expect("the worker exits after SIGTERM");

    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        app.count("select count(*) from jobs where status = 'running'")
            .await,
        0,
        "no job is left half-done: in-flight jobs finished or went back to the queue"
    );
    let replacement = spawn_process(&settings, &["worker"]);
    assert_all_done_once(&app, 100, 1).await;
    drop(replacement);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_requests_survive_a_crash_between_commit_and_publish() {
    // Arrange: an API whose relay never runs, as if it died after each commit.
    let mut settings = test_settings();
    settings.outbox.relay = false;
    let mut api = spawn_with(settings.clone(), Components::api_only()).await;
    let token = api.portal_with_customer("acme", "cust-1").await;
    post_orders(&api, &token, 20, 1).await;
    assert_eq!(api.count("select count(*) from outbox").await, 20);
    api.stop().await;

    // Act: another process comes up (with its relay).
    settings.outbox.relay = true;
    let worker = spawn_process(&settings, &["worker"]);

    // Assert
    assert_all_done_once(&api, 20, 1).await;
    drop(worker);
    api.cleanup().await;
}

/// The lines of a child's log at level ERROR (the second field of a
/// readable line: a WARN may well mention RabbitMQ's INTERNAL_ERROR).
fn error_lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some("ERROR"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_started_at_once_both_consume_and_a_clean_shutdown_logs_no_error() {
    // Arrange: the database exists; the broker has no queues of this prefix
    // yet, so both workers declare them at the same moment.
    let settings = test_settings();
    let pool = fulfil::store::prepare(&settings.database).await.unwrap();
    let logs: Vec<_> = (0..2)
        .map(|i| std::env::temp_dir().join(format!("{}worker-{i}.log", settings.amqp.prefix)))
        .collect();
    let spawn = |log: &std::path::Path| {
        let file = std::fs::File::create(log).unwrap();
        support::spawn_process_with(&settings, &["worker"], &[], file)
    };

    // Act
    let mut workers = [spawn(&logs[0]), spawn(&logs[1])];
    let both_consume = wait_for(Duration::from_secs(60), || async {
        every_queue_has_consumers(&pool, &settings, 2).await
    })
    .await;
    for worker in &workers {
        kill(Pid::from_raw(worker.0.id() as i32), Signal::SIGTERM).unwrap();
    }
    let mut statuses = Vec::new();
    for worker in &mut workers {
        statuses.push(wait_exit(&mut worker.0, Duration::from_secs(30)).await);
    }

    // Assert
    assert!(both_consume, "every queue has both workers as consumers");
    for status in statuses {
        assert!(status.expect("exits after SIGTERM").success());
    }
    for log in &logs {
        let errors = error_lines(log);
        assert!(errors.is_empty(), "{}: {errors:#?}", log.display());
        std::fs::remove_file(log).ok();
    }
    pool.close().await;
    support::cleanup(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_process_stopped_by_sigterm_exits_zero_and_logs_no_error() {
    // Arrange: `fulfil serve` runs the relay as well as every consumer; a
    // channel it left to lapin to close raced the connection's close and
    // logged an ERROR at every clean shutdown.
    let settings = test_settings();
    let pool = fulfil::store::prepare(&settings.database).await.unwrap();
    let log = std::env::temp_dir().join(format!("{}serve.log", settings.amqp.prefix));
    let file = std::fs::File::create(&log).unwrap();
    let info = [("RUST_LOG", "info")];
    let mut serve = support::spawn_process_with(&settings, &["serve"], &info, file);
    let running = wait_for(Duration::from_secs(60), || async {
        let relay = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("outbox relay publishing");
        relay && every_queue_has_consumers(&pool, &settings, 1).await
    })
    .await;

    // Act
    kill(Pid::from_raw(serve.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut serve.0, Duration::from_secs(30)).await;

    // Assert
    assert!(
        running,
        "the relay publishes and every queue has its consumer"
    );
    assert!(status.expect("exits after SIGTERM").success());
    let errors = error_lines(&log);
    assert!(errors.is_empty(), "{}: {errors:#?}", log.display());
    std::fs::remove_file(&log).ok();
    pool.close().await;
    support::cleanup(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_the_database_refuses_connections_waits_for_it() {
    // Arrange: the database exists but takes no connections (as while
    // PostgreSQL restarts).
    let settings = test_settings();
    fulfil::store::prepare(&settings.database)
        .await
        .unwrap()
        .close()
        .await;
    let outage = support::DatabaseOutage::of(&settings).await;
    outage.refuse_connections().await;
    let log = std::env::temp_dir().join(format!("{}waiting-worker.log", settings.amqp.prefix));
    let file = std::fs::File::create(&log).unwrap();

    // Act
    let mut worker = support::spawn_process_with(&settings, &["worker"], &[], file);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let waited = wait_for(Duration::from_secs(30), || async {
        read_log().contains("PostgreSQL is not reachable yet")
    })
    .await;
    let alive_while_down = worker.0.try_wait().unwrap().is_none();
    outage.allow_connections().await;
    let pool = sqlx::PgPool::connect(secrecy::ExposeSecret::expose_secret(&settings.database.url))
        .await
        .unwrap();
    let consuming = wait_for(Duration::from_secs(30), || async {
        every_queue_has_consumers(&pool, &settings, 1).await
    })
    .await;
    pool.close().await;
    kill(Pid::from_raw(worker.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut worker.0, Duration::from_secs(30)).await;

    // Assert
    assert!(waited, "the worker says it waits: {}", read_log());
    assert!(
        !read_log().contains('\x1b'),
        "a log written to a file has no colour codes: {:?}",
        read_log()
    );
    assert!(
        alive_while_down,
        "it did not exit while the database was away"
    );
    assert!(
        consuming,
        "it started once the database came back: {}",
        read_log()
    );
    assert!(status.expect("exits after SIGTERM").success());
    std::fs::remove_file(&log).ok();
    outage.close().await;
    support::cleanup(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_delivered_while_the_database_is_down_are_handed_back_and_done_once_it_returns() {
    // Arrange: ten accepted orders whose jobs wait in the outbox (no relay
    // anywhere), and a worker process consuming.
    let mut settings = test_settings();
    settings.outbox.relay = false;
    let api = spawn_with(settings.clone(), Components::api_only()).await;
    let token = api.portal_with_customer("acme", "cust-1").await;
    post_orders(&api, &token, 10, 1).await;
    let envelopes: Vec<String> = sqlx::query_scalar(
        "select json_build_object('job_id', j.id, 'kind', j.kind, 'version', j.version,
                'enqueued_at', j.enqueued_at, 'attempt', 1, 'payload', j.payload)::text
         from outbox o join jobs j on j.id = o.job_id",
    )
    .fetch_all(&api.pool)
    .await
    .unwrap();
    assert_eq!(envelopes.len(), 10);
    let log = std::env::temp_dir().join(format!("{}db-down-worker.log", settings.amqp.prefix));
    let file = std::fs::File::create(&log).unwrap();
    let no_relay = [("FULFIL__OUTBOX__RELAY", "false")];
    let mut worker = support::spawn_process_with(&settings, &["worker"], &no_relay, file);
    let consuming = wait_for(Duration::from_secs(30), || async {
        every_queue_has_consumers(&api.pool, &settings, 1).await
    })
    .await;
    assert!(consuming, "the worker consumes");
    assert_eq!(
        api.count("select count(*) from outbox").await,
        10,
        "no job was published before the database went away"
    );
    // The database goes away, as while PostgreSQL restarts: no new
    // connections, and every open one ends.
    let outage = support::DatabaseOutage::of(&settings).await;
    outage.refuse_connections().await;
    outage.drop_connections().await;

    // Act: the jobs are delivered while it is away, then it comes back.
    let queue = format!("{}license.new", settings.amqp.prefix);
    for envelope in &envelopes {
        support::publish_raw(&settings, &queue, envelope.as_bytes()).await;
    }
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let handed_back = wait_for(Duration::from_secs(60), || async {
        read_log().contains("handing the job back")
    })
    .await;
    outage.allow_connections().await;

    // Assert: handed back while the database was away, then each done once.
    assert!(handed_back, "no job was handed back: {}", read_log());
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker kept running: {}",
        read_log()
    );
    assert_all_done_once(&api, 10, 1).await;
    kill(Pid::from_raw(worker.0.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut worker.0, Duration::from_secs(30)).await;
    assert!(status.expect("exits after SIGTERM").success());
    std::fs::remove_file(&log).ok();
    outage.close().await;
    api.cleanup().await;
}
