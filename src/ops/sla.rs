//! SLA attainment over a window (SPEC §1.1, issue 6): per portal and
//! request kind, met, breached and open, with p50/p95/p99 time to done,
//! and the open requests already past their deadline.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::store::sla::{self, Attainment, OpenBreach};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    pub at: DateTime<Utc>,
    /// Requests accepted since this instant are counted.
    pub since: DateTime<Utc>,
    /// Per portal (partner) and kind, then the overall row (both null).
    pub attainment: Vec<Attainment>,
    /// Open requests past their deadline, the longest overdue first.
    pub open_breaches: Vec<OpenBreach>,
}

/// Open breaches listed at most; the counts above cover all of them.
const OPEN_BREACHES_SHOWN: i64 = 100;

pub async fn report(
    pool: &PgPool,
    now: DateTime<Utc>,
    window: Duration,
) -> anyhow::Result<SlaReport> {
    let since = now - TimeDelta::from_std(window)?;
    Ok(SlaReport {
        at: now,
        since,
        attainment: sla::attainment(pool, since, now).await?,
        open_breaches: sla::open_breaches(pool, now, OPEN_BREACHES_SHOWN).await?,
    })
}
