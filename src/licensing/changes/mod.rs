//! Changes to an existing license order (SPEC §1.1): additional keys, a
//! VM-count increase, cancellations. Owns the unit of work the intake runs
//! for each, in its transaction: lock the order and refuse the states that
//! take no change, check what the change asks of the order's keys
//! (`keys`), then accept it: the change request, its job and the
//! `change.accepted` audit row, written together. The intake parses,
//! authorises and answers; the license workers carry the request out.

pub mod keys;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::orders::LicenseJob;
use crate::enqueue::{Opts, enqueue};
use crate::fields::{FieldError, Invalid};
use crate::job::JobArgs;
use crate::settings::{Settings, SlaSettings};
use crate::store::licenses::{self, NewKeys, NewRequest, OrderRow, OrderStatus, RequestKind};
use crate::store::{Tx, audit};

/// Why a change is refused. Each says so in words a caller can act on;
/// the intake gives each its status and problem type.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the order is still being prepared; wait until its status is active")]
    Preparing,
    #[error("the order is revoked and accepts no more changes")]
    Revoked,
    /// The order's one change in flight (`license_requests_one_pending`).
    #[error(
        "a change of this order is still in progress; wait until its job has finished (see the order's requests) and try again"
    )]
    InProgress,
    #[error("the order's usage is {usage}; only hypervisor keys have a VM count")]
    NotHypervisor { usage: String },
    #[error("license {0} is not an issued key of this order")]
    UnknownLicense(Uuid),
    #[error("the key's VM count is already {current}; the new count must be higher")]
    VmCountNotHigher { current: i32 },
    /// Each named key that is not an issued key of the order; nothing of
    /// the cancellation is taken.
    #[error("some of the named keys cannot be cancelled; nothing was cancelled")]
    NotCancellable(Vec<FieldError>),
    #[error("the order has no issued key to cancel")]
    NoIssuedKey,
    /// A field of the change does not fit the order.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The args of a job that carries out a change request. The intake names
/// the job's args type and the request's kind comes with it, so a request
/// cannot be stored with another kind's job. Implemented by the license
/// workers' args, which live with their workers (`workers/license_*.rs`).
pub trait ChangeJob: JobArgs {
    const REQUEST: RequestKind;

    fn for_request(job: LicenseJob) -> Self;
}

/// What a change request asks for, beside its kind.
pub struct Change {
    pub quantity: Option<i32>,
    /// The hypervisor key and its new VM count.
    pub license: Option<(Uuid, i32)>,
    /// The keys a cancellation revokes.
    pub license_ids: Option<Vec<Uuid>>,
    /// The pending keys an addition writes.
    pub new_keys: Option<NewKeys>,
}

/// An accepted change: its request, the job that carries it out, and the
/// request's SLA deadline.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub request_id: Uuid,
    pub job_id: Uuid,
    pub sla_deadline: DateTime<Utc>,
}

/// Locks the order for the rest of `tx` if it takes a change. `None` when
/// there is no such order or `visible` says its partner's orders are not
/// the caller's to see: the caller cannot tell the two apart.
pub async fn lock_changeable(
    tx: &mut Tx<'_>,
    order_id: Uuid,
    visible: impl FnOnce(&str) -> bool,
) -> Result<Option<OrderRow>, ChangeError> {
    let Some(order) = licenses::lock_order(tx, order_id).await? else {
        return Ok(None);
    };
    if !visible(&order.partner_id) {
        return Ok(None);
    }
    match order.status {
        OrderStatus::Active => Ok(Some(order)),
        OrderStatus::Preparing => Err(ChangeError::Preparing),
        OrderStatus::Revoked => Err(ChangeError::Revoked),
    }
}

/// Accepts a change of the locked `order` in `tx`: its job, the request
/// naming it, and the audit row crediting `token_id`. The order's partial
/// unique index turns a second change in flight into
/// [`ChangeError::InProgress`].
pub async fn accept<J: ChangeJob>(
    tx: &mut Tx<'_>,
    settings: &Settings,
    order: &OrderRow,
    change: Change,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Receipt, ChangeError> {
    let Change {
        quantity,
        license,
        license_ids,
        new_keys,
    } = change;
    let kind = J::REQUEST;
    let request_id = Uuid::now_v7();
    let deadline = sla_deadline(&settings.license.sla, kind, now);
    let opts = job_opts(
        settings,
        &order.partner_id,
        token_id,
        order.id,
        deadline,
        now,
    );
    let job = LicenseJob {
        order_id: order.id,
        request_id,
    };
    let job_id = enqueue(tx, &J::for_request(job), opts).await?;
    let inserted = licenses::insert_request(
        tx,
        &NewRequest {
            id: request_id,
            order_id: order.id,
            kind,
            quantity,
            license_id: license.map(|(id, _)| id),
            vm_count: license.map(|(_, count)| count),
            license_ids: license_ids.clone(),
            job_id,
            accepted_at: now,
            sla_deadline: deadline,
            new_keys,
        },
    )
    .await;
    match inserted {
        Ok(()) => {
            let event = audit::AuditEvent {
                at: now,
                entity_type: "license_order",
                entity_id: order.id,
                action: "change.accepted",
                from_state: None,
                to_state: None,
                token_id: Some(token_id),
                job_id: Some(job_id),
                detail: change_accepted_detail(
                    request_id,
                    kind,
                    quantity,
                    license_ids.as_deref(),
                    license.map(|(_, count)| count),
                ),
            };
            audit::record(tx, event).await?;
            Ok(Receipt {
                request_id,
                job_id,
                sla_deadline: deadline,
            })
        }
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("license_requests_one_pending") => {
            Err(ChangeError::InProgress)
        }
        Err(e) => Err(e.into()),
    }
}

/// When a request of `kind` accepted `now` is due (`license.sla`); the
/// SLA clock starts when intake accepts.
pub fn sla_deadline(sla: &SlaSettings, kind: RequestKind, now: DateTime<Utc>) -> DateTime<Utc> {
    let span = match kind {
        RequestKind::New => sla.new,
        RequestKind::Additional => sla.additional,
        RequestKind::VmCount => sla.vm_count,
        RequestKind::Cancellation => sla.cancellation,
    };
    now + chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX)
}

/// Where a license order's job belongs: its partner, the token that asked,
/// the order, and the request's SLA deadline.
pub fn job_opts<'a>(
    settings: &Settings,
    partner_id: &'a str,
    token_id: Uuid,
    order_id: Uuid,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Opts<'a> {
    Opts {
        partner_id: Some(partner_id),
        token_id: Some(token_id),
        resource_type: "license_order",
        resource_id: order_id,
        sla_deadline: Some(deadline),
        max_attempts: settings.jobs.max_attempts,
        now,
    }
}

/// The detail of a request's `change.accepted` audit event (a new order's
/// too, which the order placer writes).
pub fn change_accepted_detail(
    request_id: Uuid,
    kind: RequestKind,
    quantity: Option<i32>,
    license_ids: Option<&[Uuid]>,
    vm_count: Option<i32>,
) -> serde_json::Value {
    json!({ "request_id": request_id, "kind": kind.as_str(), "quantity": quantity,
            "license_ids": license_ids, "vm_count": vm_count })
}
