//! With the server's autovacuum off, fulfil analyses a table that grew,
//! so that plans prepared while it was empty are made again.

use std::time::{Duration, Instant};

use fulfil::store::statistics::analyze_grown;
use sqlx::PgPool;

use crate::support::{cleanup, test_settings};

async fn changes_since_analyze(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(
        "select coalesce(n_mod_since_analyze, 0) from pg_stat_user_tables where relname = $1",
    )
    .bind(table)
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

#[tokio::test]
async fn a_table_that_grew_is_analysed_once_and_then_left_alone() {
    let settings = test_settings();
    // The store alone, no app: its own round would race this test's.
    let pool = fulfil::store::prepare(&settings.database).await.unwrap();
    sqlx::query("insert into partners (id) select 'p' || n from generate_series(1, 500) n")
        .execute(&pool)
        .await
        .unwrap();
    // A backend reports its counts once it is idle, at most once a second.
    let start = Instant::now();
    while changes_since_analyze(&pool, "partners").await < 500 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the inserts were never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let analysed = analyze_grown(&pool).await.unwrap();
    assert!(analysed.contains(&"partners".to_owned()), "{analysed:?}");
    let last_analyze: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "select last_analyze from pg_stat_user_tables where relname = 'partners'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(last_analyze.is_some());
    let again = analyze_grown(&pool).await.unwrap();
    assert!(!again.contains(&"partners".to_owned()), "{again:?}");

    pool.close().await;
    cleanup(&settings).await;
}
