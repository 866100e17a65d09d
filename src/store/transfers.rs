//! Transfer tickets, the subscription switch and its history, and the
//! role cleanup that follows.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;
pub use super::status::TransferStatus;

pub struct NewTransfer<'a> {
    pub id: Uuid,
    pub customer_id: &'a str,
    pub source_partner_id: &'a str,
    pub destination_partner_id: &'a str,
    pub subscription_ids: &'a [String],
    pub form: serde_json::Value,
    pub token_id: Option<Uuid>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Inserts the ticket and its subscriptions; returns the ticket as stored.
pub async fn insert_transfer(
    tx: &mut Tx<'_>,
    transfer: &NewTransfer<'_>,
) -> sqlx::Result<TransferRow> {
    let row = sqlx::query_as!(
        TransferRow,
        r#"insert into transfers (id, customer_id, source_partner_id, destination_partner_id, form,
                                token_id, created_at, updated_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7, $8)
         returning id, customer_id, source_partner_id, destination_partner_id, status as "status: TransferStatus",
     reason, form, token_id, created_at, updated_at, expires_at, completed_at"#,
        transfer.id,
        transfer.customer_id,
        transfer.source_partner_id,
        transfer.destination_partner_id,
        &transfer.form,
        transfer.token_id,
        transfer.now,
        transfer.expires_at,
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into transfer_subscriptions (transfer_id, subscription_id)
         select $1, unnest($2::text[])",
        transfer.id,
        transfer.subscription_ids,
    )
    .execute(&mut **tx)
    .await?;
    Ok(row)
}

#[derive(Debug, Clone, FromRow)]
pub struct TransferRow {
    pub id: Uuid,
    pub customer_id: String,
    pub source_partner_id: String,
    pub destination_partner_id: String,
    pub status: TransferStatus,
    pub reason: Option<String>,
    pub form: serde_json::Value,
    pub token_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

pub async fn lock_transfer(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<TransferRow>> {
    sqlx::query_as!(
        TransferRow,
        r#"select id, customer_id, source_partner_id, destination_partner_id, status as "status: TransferStatus",
     reason, form, token_id, created_at, updated_at, expires_at, completed_at from transfers where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn find_transfer<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
) -> sqlx::Result<Option<TransferRow>> {
    sqlx::query_as!(
        TransferRow,
        r#"select id, customer_id, source_partner_id, destination_partner_id, status as "status: TransferStatus",
     reason, form, token_id, created_at, updated_at, expires_at, completed_at from transfers where id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await
}

pub async fn subscription_ids<'e>(
    db: impl PgExecutor<'e>,
    transfer_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select subscription_id from transfer_subscriptions where transfer_id = $1 order by subscription_id",
        transfer_id,
    )
    .fetch_all(db)
    .await
}

pub async fn set_status(
    tx: &mut Tx<'_>,
    id: Uuid,
    status: TransferStatus,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update transfers set status = $2, reason = $3, updated_at = $4,
                completed_at = case when $2 = 'completed' then $4 else completed_at end
         where id = $1",
        id,
        status.as_str(),
        reason,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Why the transfer cannot be carried out, if it cannot: the destination
/// needs an active reseller relationship with the customer, and every subscription
/// must be the customer's and held by the source. Locks the subscriptions.
pub async fn precondition_failure(
    tx: &mut Tx<'_>,
    transfer: &TransferRow,
    subscription_ids: &[String],
) -> sqlx::Result<Option<String>> {
    // Shared lock: the relationship cannot end while the switch commits.
    let related: Option<i32> = sqlx::query_scalar!(
        r#"select 1 as "one!" from reseller_relationships
         where partner_id = $1 and customer_id = $2 and status = 'active' for share"#,
        &transfer.destination_partner_id,
        &transfer.customer_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if related.is_none() {
        return Ok(Some(format!(
            "partner {} has no reseller relationship with customer {}",
            transfer.destination_partner_id, transfer.customer_id
        )));
    }
    let held: Vec<(String, String, String)> = sqlx::query!(
        "select id, customer_id, partner_id from subscriptions where id = any($1) order by id for update",
        subscription_ids,
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.customer_id, r.partner_id))
    .collect();
    for id in subscription_ids {
        match held.iter().find(|(sid, _, _)| sid == id) {
            Some((_, customer, partner))
                if *customer == transfer.customer_id && *partner == transfer.source_partner_id => {}
            Some((_, customer, _)) if *customer != transfer.customer_id => {
                return Ok(Some(format!(
                    "subscription {id} does not belong to customer {}",
                    transfer.customer_id
                )));
            }
            _ => {
                return Ok(Some(format!(
                    "subscription {id} is not held by partner {}",
                    transfer.source_partner_id
                )));
            }
        }
    }
    Ok(None)
}

/// Moves the subscriptions to the destination and records the history.
pub async fn switch_subscriptions(
    tx: &mut Tx<'_>,
    transfer: &TransferRow,
    subscription_ids: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update subscriptions set partner_id = $3, updated_at = $4
         where id = any($1) and partner_id = $2",
        subscription_ids,
        &transfer.source_partner_id,
        &transfer.destination_partner_id,
        now,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "insert into subscription_history (subscription_id, from_partner_id, to_partner_id, transfer_id, at)
         select unnest($1::text[]), $2, $3, $4, $5",
        subscription_ids,
        &transfer.source_partner_id,
        &transfer.destination_partner_id,
        transfer.id,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes every role `partner_id` holds on the subscriptions, and on the
/// customer when the partner no longer sells the customer anything.
/// Idempotent: rows already removed are not touched (a concurrent run
/// re-checks `status` after waiting for the row lock). Returns how many
/// roles this run removed.
pub async fn remove_partner_roles(
    tx: &mut Tx<'_>,
    customer_id: &str,
    partner_id: &str,
    subscription_ids: &[String],
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let removed = sqlx::query!(
        "update role_assignments set status = 'removed', removed_at = $4, updated_at = $4
         where status = 'present' and principal_type = 'partner' and principal_id = $2
           and ((scope_type = 'subscription' and scope_id = any($3))
             or (scope_type = 'customer' and scope_id = $1
                 and not exists (select 1 from subscriptions
                                 where customer_id = $1 and partner_id = $2)))",
        customer_id,
        partner_id,
        subscription_ids,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(removed.rows_affected())
}

/// Whether the transfer's switch committed (its history exists).
pub async fn switched<'e>(db: impl PgExecutor<'e>, transfer_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from subscription_history where transfer_id = $1) as "exists!""#,
        transfer_id,
    )
    .fetch_one(db)
    .await
}
