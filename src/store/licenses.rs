//! License orders, their change requests (which carry the SLA clock) and
//! their keys.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::Tx;
use super::audit::AuditEvent;
use super::idempotency::{self, KeyState};
pub use super::status::{LicenseStatus, OrderStatus, RequestStatus};
use crate::job::JobKind;

/// A new order as the intake placed it: the order, its job (`job_kind`
/// with `job_payload`, under `job_id`) and outbox row, its request with
/// `quantity` pending keys, both audit rows, and the saved response of its
/// `Idempotency-Key`.
#[derive(Debug)]
pub struct PlaceOrder {
    pub id: Uuid,
    pub partner_id: String,
    pub customer_id: String,
    pub usage: String,
    pub vm_count: Option<i32>,
    pub quantity: i32,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_locale: String,
    pub request_id: Uuid,
    pub sla_deadline: DateTime<Utc>,
    pub job_id: Uuid,
    pub job_kind: JobKind,
    pub job_payload: serde_json::Value,
    pub max_attempts: i32,
    pub token_id: Uuid,
    pub idempotency_key: String,
    pub fingerprint: Vec<u8>,
    pub response_status: u16,
    pub response_body: serde_json::Value,
    /// The details of `order.created` and `change.accepted`.
    pub audit_details: [serde_json::Value; 2],
    pub now: DateTime<Utc>,
}

/// What placing an order found: the state of its idempotency key, and
/// whether the partner holds or acts for the customer. The order is
/// written iff the key was fresh and the customer found.
#[derive(Debug)]
pub struct Placement {
    pub key: KeyState,
    pub customer_found: bool,
}

/// Places new orders in one statement, outside any transaction, and
/// returns a placement per order, in their order. The hottest route of
/// the intake, so every row an order writes goes in the round trip that
/// also takes its idempotency lock (as [`super::idempotency::begin`]
/// does) and checks its customer (as
/// [`super::directory::customer_visible_to`] does); and the orders of
/// concurrent requests share it (see `intake::order_placer`).
///
/// A twin request that commits between this statement's snapshot and its
/// lock is refused by the primary key of `idempotency_keys`, a unique
/// violation that fails the whole statement. Twins within one statement
/// both get their (re-entrant) lock, and fail it in the same way. The
/// error can reach the caller before the failed statement's locks are
/// released, so whatever comes next for these orders goes on the same
/// connection, which runs it only after the release.
pub async fn place_orders(
    conn: &mut sqlx::PgConnection,
    orders: &[PlaceOrder],
) -> sqlx::Result<Vec<Placement>> {
    // Per-row subqueries, not joins: the planner cannot count an unnest,
    // and must not answer a few orders with a scan of a large table.
    let rows = sqlx::query!(
        r#"with input as (
             select * from unnest($1::text[], $2::uuid[], $3::text[], $4::bytea[], $5::text[],
                                  $6::text[], $7::int2[], $8::jsonb[], $9::uuid[], $10::text[],
                                  $11::text[], $12::text[], $13::text[], $14::timestamptz[],
                                  $15::uuid[], $16::text[], $17::int4[], $18::jsonb[],
                                  $19::int4[], $20::timestamptz[], $21::uuid[], $22::int4[],
                                  $23::int4[], $24::jsonb[], $25::jsonb[])
                           with ordinality
                           as i (lock_name, token_id, key, fingerprint, customer_id, partner_id,
                                 response_status, response_body, id, usage, contact_name,
                                 contact_email, contact_locale, now, job_id, job_kind,
                                 job_version, job_payload, max_attempts, sla_deadline,
                                 request_id, quantity, vm_count, created_detail,
                                 accepted_detail, n)
         ), gate as materialized (
             select i.n, pg_try_advisory_xact_lock(hashtextextended(i.lock_name, 0)) as locked,
                    (select k from idempotency_keys k
                     where k.token_id = i.token_id and k.key = i.key) as saved,
                    exists (select 1 from customers c
                            where c.id = i.customer_id and c.partner_id = i.partner_id)
                      or exists (select 1 from reseller_relationships r
                                 where r.customer_id = i.customer_id
                                   and r.partner_id = i.partner_id
                                   and r.status = 'active') as customer_found
             from input i
         ), go as materialized (
             select i.* from input i join gate using (n)
             where gate.locked and gate.saved is null and gate.customer_found
         ), saved as (
             insert into idempotency_keys (token_id, key, request_fingerprint, response_status,
                                           response_body)
             select token_id, key, fingerprint, response_status, response_body from go
         ), placed as (
             insert into license_orders (id, partner_id, customer_id, usage, contact_name,
                                         contact_email, contact_locale, created_at, updated_at)
             select id, partner_id, customer_id, usage, contact_name, contact_email,
                    contact_locale, now, now
             from go
         ), job as (
             insert into jobs (id, kind, version, payload, max_attempts, partner_id, token_id,
                               resource_type, resource_id, sla_deadline, enqueued_at)
             select job_id, job_kind, job_version, job_payload, max_attempts, partner_id,
                    token_id, 'license_order', id, sla_deadline, now
             from go
         ), queued as (
             insert into outbox (job_id, attempt) select job_id, 1 from go
         ), request as (
             insert into license_requests (id, order_id, kind, quantity, job_id, accepted_at,
                                           sla_deadline)
             select request_id, id, 'new', quantity, job_id, now, sla_deadline from go
         ), keys as (
             insert into licenses (id, order_id, request_id, seq, usage, vm_count)
             select gen_random_uuid(), go.id, go.request_id, seq, go.usage, go.vm_count
             from go, generate_series(1, go.quantity) as seq
         ), audited as (
             insert into audit_events (at, entity_type, entity_id, action, to_state, token_id,
                                       job_id, detail)
             select go.now, 'license_order', go.id, e.action, e.to_state, go.token_id,
                    e.job_id, e.detail
             from go
             cross join lateral (values ('order.created', 'preparing', null::uuid,
                                         go.created_detail),
                                        ('change.accepted', null, go.job_id,
                                         go.accepted_detail))
                  as e (action, to_state, job_id, detail)
         )
         select locked as "locked!",
                (saved).request_fingerprint as "request_fingerprint?",
                (saved).response_status as "response_status?",
                (saved).response_body as "response_body?",
                customer_found as "customer_found!"
         from gate order by n"#,
        &each(orders, |o| idempotency::lock_name(
            o.token_id,
            &o.idempotency_key
        )),
        &each(orders, |o| o.token_id),
        &each(orders, |o| o.idempotency_key.clone()),
        &each(orders, |o| o.fingerprint.clone()),
        &each(orders, |o| o.customer_id.clone()),
        &each(orders, |o| o.partner_id.clone()),
        &each(orders, |o| o.response_status as i16),
        &each(orders, |o| o.response_body.clone()),
        &each(orders, |o| o.id),
        &each(orders, |o| o.usage.clone()),
        &each(orders, |o| o.contact_name.clone()),
        &each(orders, |o| o.contact_email.clone()),
        &each(orders, |o| o.contact_locale.clone()),
        &each(orders, |o| o.now),
        &each(orders, |o| o.job_id),
        &each(orders, |o| o.job_kind.as_str().to_owned()),
        &each(orders, |o| o.job_kind.version()),
        &each(orders, |o| o.job_payload.clone()),
        &each(orders, |o| o.max_attempts),
        &each(orders, |o| o.sla_deadline),
        &each(orders, |o| o.request_id),
        &each(orders, |o| o.quantity),
        // `as _`: an array of nullable elements, which the macros cannot type.
        each(orders, |o| o.vm_count) as _,
        &each(orders, |o| o.audit_details[0].clone()),
        &each(orders, |o| o.audit_details[1].clone()),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Placement {
            key: KeyState::of(
                row.locked,
                row.request_fingerprint,
                row.response_status,
                row.response_body,
            ),
            customer_found: row.customer_found,
        })
        .collect())
}

/// One column of `orders`, as an array parameter.
fn each<T>(orders: &[PlaceOrder], column: impl Fn(&PlaceOrder) -> T) -> Vec<T> {
    orders.iter().map(column).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    New,
    Additional,
    VmCount,
    Cancellation,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::New => "new",
            RequestKind::Additional => "additional",
            RequestKind::VmCount => "vm_count",
            RequestKind::Cancellation => "cancellation",
        }
    }
}

pub struct NewRequest {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: RequestKind,
    pub quantity: Option<i32>,
    pub license_id: Option<Uuid>,
    pub vm_count: Option<i32>,
    pub license_ids: Option<Vec<Uuid>>,
    pub job_id: Uuid,
    pub accepted_at: DateTime<Utc>,
    pub sla_deadline: DateTime<Utc>,
    /// The pending keys a new order or an addition asks for.
    pub new_keys: Option<NewKeys>,
}

/// Pending rows numbered 1..=count, written with their request.
pub struct NewKeys {
    pub usage: String,
    pub vm_count: Option<i32>,
    pub count: i32,
}

/// Writes the request and its pending keys in one statement. Fails with a
/// unique violation on `license_requests_one_pending` when the order
/// already has a change in flight.
pub async fn insert_request(tx: &mut Tx<'_>, request: &NewRequest) -> sqlx::Result<()> {
    let keys = request.new_keys.as_ref();
    sqlx::query!(
        "with request as (
             insert into license_requests (id, order_id, kind, quantity, license_id, vm_count,
                                           license_ids, job_id, accepted_at, sla_deadline)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             returning id
         )
         insert into licenses (id, order_id, request_id, seq, usage, vm_count)
         select gen_random_uuid(), $2, request.id, seq, $11, $12
         from request, generate_series(1, $13) as seq",
        request.id,
        request.order_id,
        request.kind.as_str(),
        request.quantity,
        request.license_id,
        request.vm_count,
        request.license_ids.as_deref(),
        request.job_id,
        request.accepted_at,
        request.sla_deadline,
        keys.map(|k| k.usage.as_str()),
        keys.and_then(|k| k.vm_count),
        keys.map_or(0, |k| k.count),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub partner_id: String,
    pub customer_id: String,
    pub usage: String,
    pub status: OrderStatus,
    pub vendor_order_id: Option<String>,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_locale: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_job_id: Option<Uuid>,
}

/// Locks the order: every change to an order and its keys goes through
/// this lock, so changes of one order never interleave.
pub async fn lock_order(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as!(
        OrderRow,
        r#"select id, partner_id, customer_id, usage, status as "status: OrderStatus", vendor_order_id,
     contact_name, contact_email, contact_locale, created_at, updated_at, revoked_at,
     revocation_job_id from license_orders where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// What a license job starts from: its order, locked; its request; and,
/// when asked for, the request's licenses in their order.
#[derive(Debug)]
pub struct JobStart {
    pub order: OrderRow,
    pub request: Option<RequestRow>,
    pub licenses: Vec<LicenseRow>,
}

/// The order and request a license job names.
#[derive(Debug, Clone, Copy)]
pub struct JobTarget {
    pub order_id: Uuid,
    pub request_id: Uuid,
}

/// Locks the orders and reads one request of each (and its licenses, if
/// `with_licenses`), in one round trip: the start of every license job.
/// One start per target, in order: `None` for an order that does not
/// exist. Orders are locked in id order, so two callers wait for each
/// other rather than deadlock.
///
/// The rows come as plain columns, one per license (the order's and the
/// request's repeated): building them as JSON took PostgreSQL about as
/// long again as the join, and parsing it was the worker's.
pub async fn lock_orders_for_jobs(
    tx: &mut Tx<'_>,
    targets: &[JobTarget],
    with_licenses: bool,
) -> sqlx::Result<Vec<Option<JobStart>>> {
    let order_ids: Vec<Uuid> = targets.iter().map(|t| t.order_id).collect();
    let request_ids: Vec<Uuid> = targets.iter().map(|t| t.request_id).collect();
    let rows = sqlx::query!(
        r#"select t.n as "n!",
                  o.id, o.partner_id, o.customer_id, o.usage, o.status as "status: OrderStatus",
                  o.vendor_order_id, o.contact_name, o.contact_email, o.contact_locale,
                  o.created_at, o.updated_at, o.revoked_at, o.revocation_job_id,
                  r.id as "r_id?", r.kind as "r_kind?", r.quantity as "r_quantity?",
                  r.license_id as "r_license_id?", r.vm_count as "r_vm_count?",
                  r.license_ids as "r_license_ids?", r.status as "r_status?: RequestStatus",
                  r.job_id as "r_job_id?", r.accepted_at as "r_accepted_at?",
                  r.sla_deadline as "r_sla_deadline?", r.completed_at as "r_completed_at?",
                  l.id as "l_id?", l.seq as "l_seq?", l.usage as "l_usage?",
                  l.vm_count as "l_vm_count?", l.status as "l_status?: LicenseStatus",
                  l.key as "l_key?", l.certificate as "l_certificate?",
                  l.issued_at as "l_issued_at?", l.revoked_at as "l_revoked_at?"
         from unnest($1::uuid[], $2::uuid[]) with ordinality as t(order_id, request_id, n)
         join license_orders o on o.id = t.order_id
         left join license_requests r on r.id = t.request_id and r.order_id = o.id
         left join licenses l on $3 and l.request_id = t.request_id
         order by o.id, t.n, l.seq
         for update of o"#,
        &order_ids,
        &request_ids,
        with_licenses,
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut starts: Vec<Option<JobStart>> = targets.iter().map(|_| None).collect();
    for row in rows {
        let Some(index) = usize::try_from(row.n - 1)
            .ok()
            .filter(|&i| i < targets.len())
        else {
            continue;
        };
        let start = starts[index].get_or_insert_with(|| JobStart {
            order: OrderRow {
                id: row.id,
                partner_id: row.partner_id,
                customer_id: row.customer_id,
                usage: row.usage,
                status: row.status,
                vendor_order_id: row.vendor_order_id,
                contact_name: row.contact_name,
                contact_email: row.contact_email,
                contact_locale: row.contact_locale,
                created_at: row.created_at,
                updated_at: row.updated_at,
                revoked_at: row.revoked_at,
                revocation_job_id: row.revocation_job_id,
            },
            request: match (
                row.r_id,
                row.r_kind,
                row.r_status,
                row.r_job_id,
                row.r_accepted_at,
                row.r_sla_deadline,
            ) {
                (
                    Some(id),
                    Some(kind),
                    Some(status),
                    Some(job_id),
                    Some(accepted_at),
                    Some(sla_deadline),
                ) => Some(RequestRow {
                    id,
                    order_id: row.id,
                    kind,
                    quantity: row.r_quantity,
                    license_id: row.r_license_id,
                    vm_count: row.r_vm_count,
                    license_ids: row.r_license_ids,
                    status,
                    job_id,
                    accepted_at,
                    sla_deadline,
                    completed_at: row.r_completed_at,
                }),
                _ => None,
            },
            licenses: Vec::new(),
        });
        if let (Some(id), Some(seq), Some(usage), Some(status)) =
            (row.l_id, row.l_seq, row.l_usage, row.l_status)
        {
            start.licenses.push(LicenseRow {
                id,
                order_id: row.id,
                request_id: targets[index].request_id,
                seq,
                usage,
                vm_count: row.l_vm_count,
                status,
                key: row.l_key,
                certificate: row.l_certificate,
                issued_at: row.l_issued_at,
                revoked_at: row.l_revoked_at,
            });
        }
    }
    Ok(starts)
}

pub async fn find_order<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as!(
        OrderRow,
        r#"select id, partner_id, customer_id, usage, status as "status: OrderStatus", vendor_order_id,
     contact_name, contact_email, contact_locale, created_at, updated_at, revoked_at,
     revocation_job_id from license_orders where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub kind: String,
    pub quantity: Option<i32>,
    pub license_id: Option<Uuid>,
    pub vm_count: Option<i32>,
    pub license_ids: Option<Vec<Uuid>>,
    pub status: RequestStatus,
    pub job_id: Uuid,
    pub accepted_at: DateTime<Utc>,
    pub sla_deadline: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

pub async fn list_requests<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    order_id: Uuid,
) -> sqlx::Result<Vec<RequestRow>> {
    sqlx::query_as!(
        RequestRow,
        r#"select id, order_id, kind, quantity, license_id, vm_count, license_ids,
     status as "status: RequestStatus", job_id, accepted_at, sla_deadline, completed_at from license_requests where order_id = $1 order by accepted_at, id"#,
        order_id,
    )
    .fetch_all(executor)
    .await
}

pub async fn complete_request(tx: &mut Tx<'_>, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "update license_requests set status = 'done', completed_at = $2
         where id = $1 and status = 'pending'",
        id,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct LicenseRow {
    pub id: Uuid,
    pub order_id: Uuid,
    pub request_id: Uuid,
    pub seq: i32,
    pub usage: String,
    pub vm_count: Option<i32>,
    pub status: LicenseStatus,
    pub key: Option<String>,
    pub certificate: Option<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn list_licenses<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    order_id: Uuid,
) -> sqlx::Result<Vec<LicenseRow>> {
    sqlx::query_as!(
        LicenseRow,
        r#"select id, order_id, request_id, seq, usage, vm_count, status as "status: LicenseStatus", key, certificate, issued_at, revoked_at from licenses where order_id = $1 order by request_id, seq"#,
        order_id,
    )
    .fetch_all(executor)
    .await
}

pub async fn find_license(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<LicenseRow>> {
    sqlx::query_as!(
        LicenseRow,
        r#"select id, order_id, request_id, seq, usage, vm_count, status as "status: LicenseStatus", key, certificate, issued_at, revoked_at from licenses where id = $1"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

/// A key and its certificate for one pending license.
pub struct NewKey {
    pub license_id: Uuid,
    pub key: String,
    pub certificate: String,
}

/// How an issuing job closes its request.
pub struct Completion<'a> {
    pub order_id: Uuid,
    pub request_id: Uuid,
    /// For a new order: the vendor order id it becomes `active` with.
    pub activate_with: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Everything one issuing job writes when it ends: its keys, its
/// request's completion and its audit event.
pub struct Fill<'a> {
    pub keys: &'a [NewKey],
    pub completion: Completion<'a>,
    pub event: AuditEvent<'a>,
}

/// Fills the pending rows with their keys (a row already issued keeps its
/// first key), activates new orders, closes the requests and records the
/// audit events, all in one statement however many jobs there are: the
/// writes every issuing job ends with. Returns how many keys were filled.
pub async fn issue_and_complete(tx: &mut Tx<'_>, fills: &[Fill<'_>]) -> sqlx::Result<usize> {
    let keys = || {
        fills
            .iter()
            .flat_map(|f| f.keys.iter().map(move |k| (f, k)))
    };
    let key_ids: Vec<Uuid> = keys().map(|(_, k)| k.license_id).collect();
    let key_values: Vec<&str> = keys().map(|(_, k)| k.key.as_str()).collect();
    let certificates: Vec<&str> = keys().map(|(_, k)| k.certificate.as_str()).collect();
    let issued_at: Vec<DateTime<Utc>> = keys().map(|(f, _)| f.completion.now).collect();
    let each = |field: fn(&Fill<'_>) -> Uuid| fills.iter().map(field).collect::<Vec<_>>();
    let order_ids = each(|f| f.completion.order_id);
    let request_ids = each(|f| f.completion.request_id);
    let entity_ids = each(|f| f.event.entity_id);
    let activate_with: Vec<Option<&str>> =
        fills.iter().map(|f| f.completion.activate_with).collect();
    let now: Vec<DateTime<Utc>> = fills.iter().map(|f| f.completion.now).collect();
    let at: Vec<DateTime<Utc>> = fills.iter().map(|f| f.event.at).collect();
    let entity_types: Vec<&str> = fills.iter().map(|f| f.event.entity_type).collect();
    let actions: Vec<&str> = fills.iter().map(|f| f.event.action).collect();
    let from_states: Vec<Option<&str>> = fills.iter().map(|f| f.event.from_state).collect();
    let to_states: Vec<Option<&str>> = fills.iter().map(|f| f.event.to_state).collect();
    let token_ids: Vec<Option<Uuid>> = fills.iter().map(|f| f.event.token_id).collect();
    let job_ids: Vec<Option<Uuid>> = fills.iter().map(|f| f.event.job_id).collect();
    let details: Vec<&serde_json::Value> = fills.iter().map(|f| &f.event.detail).collect();
    let filled = sqlx::query_scalar!(
        r#"with filled as (
             update licenses set status = 'issued', key = k.key, certificate = k.certificate,
                                 issued_at = k.issued_at
             from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
                  as k(id, key, certificate, issued_at)
             where licenses.id = k.id and licenses.status = 'pending'
             returning licenses.id
         ), fill as (
             select * from unnest($5::uuid[], $6::uuid[], $7::text[], $8::timestamptz[])
                           as f(order_id, request_id, activate_with, now)
         ), activated as (
             update license_orders o set status = 'active', vendor_order_id = f.activate_with,
                                         updated_at = f.now
             from fill f
             where o.id = f.order_id and o.status = 'preparing' and f.activate_with is not null
         ), done as (
             update license_requests r set status = 'done', completed_at = f.now
             from fill f
             where r.id = f.request_id and r.status = 'pending'
         ), audited as (
             insert into audit_events (at, entity_type, entity_id, action, from_state, to_state,
                                       token_id, job_id, detail)
             select * from unnest($9::timestamptz[], $10::text[], $11::uuid[], $12::text[],
                                  $13::text[], $14::text[], $15::uuid[], $16::uuid[],
                                  $17::jsonb[])
         )
         select count(*) as "filled!" from filled"#,
        &key_ids,
        // `as _`: Vec<&str> encodes as text[], which the macros only type as String.
        &key_values as _,
        &certificates as _,
        &issued_at,
        &order_ids,
        &request_ids,
        &activate_with as _,
        &now,
        &at,
        &entity_types as _,
        &entity_ids,
        &actions as _,
        &from_states as _,
        &to_states as _,
        &token_ids as _,
        &job_ids as _,
        &details as _,
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(filled as usize)
}

pub async fn set_vm_count(
    tx: &mut Tx<'_>,
    id: Uuid,
    vm_count: i32,
    certificate: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update licenses set vm_count = $2, certificate = $3 where id = $1",
        id,
        vm_count,
        certificate,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Revokes those of `ids` still issued; returns the rows revoked now, so
/// a second run revokes (and reports) nothing.
pub async fn revoke_licenses(
    tx: &mut Tx<'_>,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<LicenseRow>> {
    sqlx::query_as!(
        LicenseRow,
        r#"update licenses set status = 'revoked', revoked_at = $2
         where id = any($1) and status = 'issued'
         returning id, order_id, request_id, seq, usage, vm_count, status as "status: LicenseStatus", key, certificate, issued_at, revoked_at"#,
        ids,
        now,
    )
    .fetch_all(&mut **tx)
    .await
}

/// Keys of the order that are not revoked (issued or still pending).
pub async fn count_live_licenses(tx: &mut Tx<'_>, order_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from licenses where order_id = $1 and status <> 'revoked'"#,
        order_id,
    )
    .fetch_one(&mut **tx)
    .await
}

/// Claims the order's one revocation for `job_id`; `false` if claimed before.
pub async fn claim_revocation(tx: &mut Tx<'_>, order_id: Uuid, job_id: Uuid) -> sqlx::Result<bool> {
    let claimed = sqlx::query!(
        "update license_orders set revocation_job_id = $2
         where id = $1 and revocation_job_id is null",
        order_id,
        job_id,
    )
    .execute(&mut **tx)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

pub async fn revoke_order(tx: &mut Tx<'_>, order_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "update license_orders set status = 'revoked', revoked_at = $2, updated_at = $2
         where id = $1 and status = 'active'",
        order_id,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The partner's admin mail and locale, if the directory knows them.
pub async fn partner_admin(
    tx: &mut Tx<'_>,
    partner_id: &str,
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query!(
        r#"select admin_email as "admin_email!", locale from partners
         where id = $1 and admin_email is not null"#,
        partner_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| (r.admin_email, r.locale)))
}

/// The status of the license with this key, for `fulfil license verify`.
pub async fn status_of_key(pool: &PgPool, key: &str) -> sqlx::Result<Option<(String, Uuid)>> {
    let row = sqlx::query!("select status, order_id from licenses where key = $1", key)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| (r.status, r.order_id)))
}
