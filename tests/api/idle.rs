//! An idle process stays idle: with nothing to publish the outbox relay
//! waits for a notification or its poll interval, it does not query the
//! database in a loop.

use std::time::Duration;

use sqlx::PgPool;

use crate::support::{ADMIN_DATABASE_URL, spawn_app};

/// Transactions committed in `database` so far, as PostgreSQL counts them
/// (each backend reports its counts at most about once a second).
async fn commits(admin: &PgPool, database: &str) -> i64 {
    sqlx::query_scalar("select xact_commit from pg_stat_database where datname = $1")
        .bind(database)
        .fetch_one(admin)
        .await
        .unwrap()
}

/// How late PostgreSQL (15) may report an idle backend's counts
/// (`PGSTAT_IDLE_INTERVAL`).
const STATISTICS_IDLE_FLUSH: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_idle_process_does_not_keep_querying_the_database() {
    let app = spawn_app().await;
    let database = app
        .pool
        .connect_options()
        .get_database()
        .unwrap()
        .to_owned();
    let admin = PgPool::connect(ADMIN_DATABASE_URL).await.unwrap();
    // PostgreSQL reports a backend's counts when one of its transactions
    // ends at least a second after its last report, and otherwise only
    // once it has been idle for ten seconds. The migrations' commits, made
    // in one burst on a connection that may then stay idle, can reach
    // `pg_stat_database` ten seconds late: a window that starts sooner can
    // count them as the idle process's (a run in CI did). So start
    // counting only after that, and then only after a second passes with
    // no more than the idle rate (about ten commits), for a loaded
    // machine on which the workers start late.
    tokio::time::sleep(STATISTICS_IDLE_FLUSH + Duration::from_secs(1)).await;
    let mut before = commits(&admin, &database).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let now = commits(&admin, &database).await;
        let settled = now - before <= 15;
        before = now;
        if settled {
            break;
        }
    }
    let window = Duration::from_secs(4);
    tokio::time::sleep(window).await;
    let after = commits(&admin, &database).await;

    // The relay polls every 200 ms in tests: two short transactions a poll,
    // about 40 in the window. A relay that never sleeps commits thousands.
    let committed = after - before;
    assert!(
        committed <= 120,
        "an idle process committed {committed} transactions in {window:?}"
    );
    admin.close().await;
    app.cleanup().await;
}
