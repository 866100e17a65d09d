//! License requests against their SLA deadline (SPEC §1.1): what the SLA
//! watch must announce, the alerts it recorded, and attainment figures.
//!
//! A request is *met* when it was done by its deadline, *breached* when it
//! was done after it or is still open past it, and *open* while it is not
//! done and its deadline has not passed.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;

/// A request the watch must announce, with what the mail says about it.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct SlaAlert {
    pub request_id: Uuid,
    /// `at_risk` (open, within the margin) or `breached`.
    pub stage: String,
    pub order_id: Uuid,
    pub partner_id: String,
    pub kind: String,
    pub accepted_at: DateTime<Utc>,
    pub sla_deadline: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub job_id: Uuid,
    pub job_kind: String,
    pub job_status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// How long after being done late a request is still announced: the watch
/// runs every minute, so a day covers any outage of the scheduler without
/// announcing the whole history on a first start.
const LATE_DONE_LOOKBACK: TimeDelta = TimeDelta::days(1);

/// Requests to announce now, soonest deadline first. The stage is computed
/// from the clock, and a stage already alerted is left out.
pub async fn due_alerts<'e>(
    db: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    margin: TimeDelta,
) -> sqlx::Result<Vec<SlaAlert>> {
    select_due(db, now, margin, None).await
}

/// The request's alert if one is still due, re-read inside the transaction
/// that records it (it may have been done, or announced, since the scan).
pub async fn due_alert(
    tx: &mut Tx<'_>,
    request_id: Uuid,
    now: DateTime<Utc>,
    margin: TimeDelta,
) -> sqlx::Result<Option<SlaAlert>> {
    let mut due = select_due(&mut **tx, now, margin, Some(request_id)).await?;
    Ok(due.pop())
}

/// The one selection of due alerts, of every request or of one.
async fn select_due<'e>(
    db: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    margin: TimeDelta,
    only: Option<Uuid>,
) -> sqlx::Result<Vec<SlaAlert>> {
    sqlx::query_as!(
        SlaAlert,
        r#"
    with due as (
        select r.*, case when coalesce(r.completed_at, $1) > r.sla_deadline
                         then 'breached' else 'at_risk' end as stage
        from license_requests r
        where ((r.status = 'pending' and r.sla_deadline <= $1 + $2)
           or (r.status = 'done' and r.completed_at > r.sla_deadline and r.completed_at >= $3))
          and ($4::uuid is null or r.id = $4)
    )
    select d.id as request_id, d.stage as "stage!", d.order_id, o.partner_id, d.kind, d.accepted_at,
           d.sla_deadline, d.completed_at, j.id as job_id, j.kind as job_kind,
           j.status as "job_status!", j.attempts, j.last_error
    from due d
    join license_orders o on o.id = d.order_id
    join jobs j on j.id = d.job_id
    where not exists (select 1 from sla_alerts a where a.request_id = d.id and a.stage = d.stage)
    order by d.sla_deadline, d.id limit 10000"#,
        now,
        margin as _, // a TimeDelta encodes as interval; the macros expect PgInterval
        now - LATE_DONE_LOOKBACK,
        only,
    )
    .fetch_all(db)
    .await
}

/// Records the alert; false when another run recorded it first.
pub async fn record_alert(
    tx: &mut Tx<'_>,
    request_id: Uuid,
    stage: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query!(
        "insert into sla_alerts (request_id, stage, alerted_at) values ($1, $2, $3)
         on conflict do nothing",
        request_id,
        stage,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Attainment of one portal (partner) and request kind; both `None` on
/// the overall row.
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Attainment {
    pub portal: Option<String>,
    pub kind: Option<String>,
    pub met: i64,
    pub breached: i64,
    pub open: i64,
    /// met / (met + breached), `None` before anything is decided.
    pub attainment: Option<f64>,
    /// Seconds from acceptance to done, over the requests done.
    pub p50_secs: Option<f64>,
    pub p95_secs: Option<f64>,
    pub p99_secs: Option<f64>,
}

/// Attainment of the requests accepted since `since`, per portal and kind,
/// then the overall row last.
pub async fn attainment<'e>(
    db: impl PgExecutor<'e>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<Attainment>> {
    sqlx::query_as!(
        Attainment,
        r#"select o.partner_id as "portal?", r.kind as "kind?",
                count(*) filter (where r.completed_at <= r.sla_deadline) as "met!",
                count(*) filter (where coalesce(r.completed_at, $2) > r.sla_deadline) as "breached!",
                count(*) filter (where r.completed_at is null and r.sla_deadline >= $2) as "open!",
                (count(*) filter (where r.completed_at <= r.sla_deadline))::float8
                    / nullif(count(*) filter (where r.completed_at <= r.sla_deadline
                                              or coalesce(r.completed_at, $2) > r.sla_deadline), 0)
                    as attainment,
                percentile_cont(0.5) within group (order by extract(epoch from r.completed_at - r.accepted_at)::float8) as p50_secs,
                percentile_cont(0.95) within group (order by extract(epoch from r.completed_at - r.accepted_at)::float8) as p95_secs,
                percentile_cont(0.99) within group (order by extract(epoch from r.completed_at - r.accepted_at)::float8) as p99_secs
         from license_requests r
         join license_orders o on o.id = r.order_id
         where r.accepted_at >= $1
         group by grouping sets ((o.partner_id, r.kind), ())
         order by grouping(o.partner_id), o.partner_id, r.kind"#,
        since,
        now,
    )
    .fetch_all(db)
    .await
}

/// An open request past its deadline.
#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct OpenBreach {
    pub request_id: Uuid,
    pub portal: String,
    pub kind: String,
    pub order_id: Uuid,
    pub sla_deadline: DateTime<Utc>,
    pub job_id: Uuid,
    pub job_status: String,
    pub last_error: Option<String>,
}

/// Open requests past their deadline, the longest overdue first.
pub async fn open_breaches<'e>(
    db: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<OpenBreach>> {
    sqlx::query_as!(
        OpenBreach,
        "select r.id as request_id, o.partner_id as portal, r.kind, r.order_id, r.sla_deadline,
                j.id as job_id, j.status as job_status, j.last_error
         from license_requests r
         join license_orders o on o.id = r.order_id
         join jobs j on j.id = r.job_id
         where r.status = 'pending' and r.sla_deadline < $1
         order by r.sla_deadline, r.id
         limit $2",
        now,
        limit,
    )
    .fetch_all(db)
    .await
}

pub async fn count_open_breaches<'e>(
    db: impl PgExecutor<'e>,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from license_requests where status = 'pending' and sla_deadline < $1"#,
        now,
    )
    .fetch_one(db)
    .await
}
