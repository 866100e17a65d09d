//! Typed enqueueing: a producer hands over a kind's args and where the job
//! belongs, never a hand-written JSON payload or a kind it could mismatch.
//! A thin layer over `store::jobs`, which keeps the SQL.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::JobArgs;
use crate::store::Tx;
use crate::store::jobs::{self, NewJob};

/// Everything about a new job but its args: whom it is for, what it works
/// on, its deadline, and the moment and allowance it starts with. `Copy`,
/// so that a producer choosing between kinds builds it once.
#[derive(Debug, Clone, Copy)]
pub struct Opts<'a> {
    pub partner_id: Option<&'a str>,
    pub token_id: Option<Uuid>,
    pub resource_type: &'static str,
    pub resource_id: Uuid,
    pub sla_deadline: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    pub now: DateTime<Utc>,
}

/// Writes the job and its first outbox row in the caller's transaction;
/// returns the job id (UUIDv7).
pub async fn enqueue<A: JobArgs>(tx: &mut Tx<'_>, args: &A, opts: Opts<'_>) -> sqlx::Result<Uuid> {
    jobs::enqueue(tx, new_job(args, &opts)?, opts.max_attempts, opts.now).await
}

/// [`enqueue`] under an id the caller chose beforehand (a mail row or an
/// order's revocation claim already names it).
pub async fn enqueue_with_id<A: JobArgs>(
    tx: &mut Tx<'_>,
    id: Uuid,
    args: &A,
    opts: Opts<'_>,
) -> sqlx::Result<()> {
    jobs::enqueue_with_id(tx, id, new_job(args, &opts)?, opts.max_attempts, opts.now).await
}

/// [`enqueue`] unless a pending job holds `unique_key`: then `None`.
pub async fn enqueue_unique<A: JobArgs>(
    tx: &mut Tx<'_>,
    args: &A,
    unique_key: &str,
    opts: Opts<'_>,
) -> sqlx::Result<Option<Uuid>> {
    let job = new_job(args, &opts)?;
    jobs::enqueue_unique(tx, job, unique_key, opts.max_attempts, opts.now).await
}

/// The job row of `args` under `opts`, for a store function that writes
/// it together with rows of its own.
pub fn new_job<'a, A: JobArgs>(args: &A, opts: &Opts<'a>) -> sqlx::Result<NewJob<'a>> {
    // Args are plain structs, so this fails only for a type no test
    // would let through (a map with non-string keys); it is an encoding
    // error of the insert all the same.
    let payload = serde_json::to_value(args).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    Ok(NewJob {
        kind: A::KIND,
        payload,
        partner_id: opts.partner_id,
        token_id: opts.token_id,
        resource_type: opts.resource_type,
        resource_id: opts.resource_id,
        sla_deadline: opts.sla_deadline,
    })
}
