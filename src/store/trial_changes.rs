//! Changes to a running trial: services added (with one license per
//! added service and member) and purchase requests.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;

/// Adds services to the trial and, in the same transaction, one license
/// per added service and member; returns the licenses written. The caller
/// holds the trial's lock and checked that none of them is on it yet (the
/// licenses' primary key would refuse a second one anyway).
pub async fn add_services(
    tx: &mut Tx<'_>,
    trial_id: Uuid,
    services: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    sqlx::query!(
        "update trials set services = services || $2, updated_at = $3 where id = $1",
        trial_id,
        services,
        now,
    )
    .execute(&mut **tx)
    .await?;
    let licenses = sqlx::query!(
        "insert into trial_licenses (trial_id, service, user_id)
         select $1, service, user_id
         from unnest($2::text[]) service, trial_users where trial_id = $1",
        trial_id,
        services,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(licenses)
}

#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PurchaseRequest {
    pub id: Uuid,
    pub trial_id: Uuid,
    pub services: Vec<String>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_purchase_request(
    tx: &mut Tx<'_>,
    request: &PurchaseRequest,
    token_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into trial_purchase_requests (id, trial_id, services, note, token_id, created_at)
         values ($1, $2, $3, $4, $5, $6)",
        request.id,
        request.trial_id,
        &request.services,
        request.note.as_deref(),
        token_id,
        request.created_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn purchase_requests<'e>(
    db: impl PgExecutor<'e>,
    trial_id: Uuid,
) -> sqlx::Result<Vec<PurchaseRequest>> {
    sqlx::query_as!(
        PurchaseRequest,
        "select id, trial_id, services, note, created_at from trial_purchase_requests
         where trial_id = $1 order by created_at, id",
        trial_id,
    )
    .fetch_all(db)
    .await
}
