//! The planner's statistics of fulfil's tables, kept current when the
//! server's autovacuum is off.
//!
//! Every hot statement is prepared once per connection, and PostgreSQL
//! keeps its generic plan until something invalidates it; an `ANALYZE`
//! of a table it reads does. With autovacuum off nothing ever does: a plan
//! made while the tables were empty (a hash join over a sequential scan,
//! the cheapest way to read ten pages) stays in use at 100,000 orders,
//! and every job then reads a share of the whole table. So when the
//! server does not analyse, fulfil analyses its own tables once they have
//! doubled since the planner last learned their size.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the tables' change counts are read: as often as backends
/// report them (about once a second). A plan made while a table was
/// empty joins it by a hash over a sequential scan, and keeps doing so
/// until the next round; read every ten seconds, a process started into
/// a burst ran all of a 10,000-order run on such plans (marking a batch
/// of jobs succeeded took 3.2 ms instead of 0.5). The threshold keeps
/// the rounds rare once the tables are large.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Taken for the duration of one round, so that processes sharing the
/// database analyse each table once rather than once each.
const LOCK_KEY: i64 = 0x6675_6c66_696c_0001;

/// Whether the server's autovacuum (and with it autoanalyze) runs.
pub async fn autovacuum_is_on(pool: &PgPool) -> sqlx::Result<bool> {
    let setting: Option<String> = sqlx::query_scalar!("select current_setting('autovacuum')")
        .fetch_one(pool)
        .await?;
    Ok(setting.as_deref() == Some("on"))
}

/// Analyses every table of the schema that has more than doubled (plus
/// 50 rows) since the planner last learned its size; returns their names.
/// Another process already doing so makes this a no-op.
///
/// Autovacuum's threshold, changes to a tenth of the table, was used at
/// first: the busy tables change by more than that every second, so each
/// of them was analysed every second (119 analyses in a 20,000-order run,
/// 4 % of all CPU, every one also voiding the plans made on the table).
/// What these rounds are for, plans made for the table's size rather
/// than for an empty one, changes with the size's order of magnitude.
pub async fn analyze_grown(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    let locked: Option<bool> =
        sqlx::query_scalar!("select pg_try_advisory_xact_lock($1)", LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
    if locked != Some(true) {
        return Ok(Vec::new());
    }
    let grown: Vec<String> = sqlx::query_scalar!(
        r#"select s.relname as "relname!"
         from pg_stat_user_tables s join pg_class c on c.oid = s.relid
         where s.schemaname = current_schema()
           -- reltuples: the size the planner knows, -1 before any analyse.
           and s.n_live_tup > 50 + 2 * greatest(c.reltuples, 0)
         order by s.relname"#
    )
    .fetch_all(&mut *tx)
    .await?;
    if !grown.is_empty() {
        // These rounds only have to get plans' shapes right (an index
        // rather than a scan of the whole table), and they run while the
        // tables grow, on the cores that serve requests: a sample of
        // 3,000 rows is enough for that and a tenth of the default's cost.
        sqlx::query("set local default_statistics_target = 10")
            .execute(&mut *tx)
            .await?;
    }
    for table in &grown {
        // A name read from the catalogue, not user input.
        let statement = format!("analyze {}", super::quoted_identifier(table));
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(grown)
}

/// Keeps the statistics current until `shutdown`, if the server does not.
pub async fn maintain(pool: PgPool, shutdown: CancellationToken) {
    match autovacuum_is_on(&pool).await {
        Ok(true) => return,
        Ok(false) => tracing::info!(
            "autovacuum is off on this server: fulfil analyses its own tables as they grow"
        ),
        Err(error) => {
            tracing::warn!(%error, "could not read the autovacuum setting; not analysing");
            return;
        }
    }
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match analyze_grown(&pool).await {
            Ok(tables) if !tables.is_empty() => tracing::debug!(?tables, "analysed"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "analysing the grown tables failed"),
        }
    }
}
