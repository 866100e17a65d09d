//! With the server's autovacuum off, fulfil analyses a table that grew,
//! so that plans prepared while it was empty are made again.

use std::time::{Duration, Instant};

use fulfil::store::statistics::analyze_grown;
use sqlx::PgPool;

use crate::support::{cleanup, test_settings};

/// Adds partners `from..=to`, and waits until PostgreSQL counts them
/// (a backend reports its counts once it is idle, at most once a second).
async fn add_partners(pool: &PgPool, from: i32, to: i32) {
    sqlx::query("insert into partners (id) select 'p' || n from generate_series($1, $2) n")
        .bind(from)
        .bind(to)
        .execute(pool)
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let counted: i64 = sqlx::query_scalar(
            "select coalesce(n_live_tup, 0) from pg_stat_user_tables where relname = 'partners'",
        )
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or(0);
        if counted >= i64::from(to) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the inserts were never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a round analysed `partners`, and every table it analysed.
async fn analysed(pool: &PgPool) -> (bool, Vec<String>) {
    let names = analyze_grown(pool).await.unwrap();
    (names.iter().any(|name| name == "partners"), names)
}

#[tokio::test]
async fn a_table_is_analysed_when_it_has_doubled_and_left_alone_until_then() {
    let settings = test_settings();
    // The store alone, no app: its own round would race this test's.
    let pool = fulfil::store::prepare(&settings.database).await.unwrap();

    add_partners(&pool, 1, 500).await;
    let (partners, names) = analysed(&pool).await;
    assert!(partners, "never analysed, and 500 rows: {names:?}");
    let last_analyze: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "select last_analyze from pg_stat_user_tables where relname = 'partners'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(last_analyze.is_some());
    let (partners, names) = analysed(&pool).await;
    assert!(!partners, "nothing changed since: {names:?}");

    add_partners(&pool, 501, 1000).await;
    let (partners, names) = analysed(&pool).await;
    assert!(!partners, "doubled, but not by 50 rows more: {names:?}");
    add_partners(&pool, 1001, 1100).await;
    let (partners, names) = analysed(&pool).await;
    assert!(
        partners,
        "more than doubled, 1,100 > 50 + 2 × 500: {names:?}"
    );

    pool.close().await;
    cleanup(&settings).await;
}
