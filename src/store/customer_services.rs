//! A customer's paid services, one per kind: recorded when a trial is
//! converted (`converted`) or when a direct sale is entered in the
//! directory (`direct`). A kind held here cannot be trialled again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use uuid::Uuid;

use super::Tx;

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct CustomerService {
    pub id: Uuid,
    pub customer_id: String,
    /// The service kind, e.g. `chat`.
    pub kind: String,
    /// `converted` (from the trial `trial_id`) or `direct` (a direct sale).
    #[schema(schema_with = source_schema)]
    pub source: String,
    pub trial_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

fn source_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["converted", "direct"]))
        .build()
}

/// Serialises the changes of one customer's paid services against the
/// trials that check them: a trial started while a sale of its kind
/// commits would otherwise slip through. `no key update` leaves the
/// foreign-key checks of other writers alone.
pub async fn lock_customer(tx: &mut Tx<'_>, customer_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "select 1 as one from customers where id = $1 for no key update",
        customer_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(())
}

/// The kinds among `kinds` the customer already holds as paid services.
pub async fn paid_kinds<'e>(
    db: impl PgExecutor<'e>,
    customer_id: &str,
    kinds: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select kind from customer_services where customer_id = $1 and kind = any($2)
         order by kind",
        customer_id,
        kinds,
    )
    .fetch_all(db)
    .await
}

pub async fn list<'e>(
    db: impl PgExecutor<'e>,
    customer_id: &str,
) -> sqlx::Result<Vec<CustomerService>> {
    sqlx::query_as!(
        CustomerService,
        "select id, customer_id, kind, source, trial_id, recorded_at from customer_services where customer_id = $1 order by kind",
        customer_id,
    )
    .fetch_all(db)
    .await
}

/// Records the kinds as paid; kinds already held keep their first record.
/// Returns the rows this call created.
pub async fn record(
    tx: &mut Tx<'_>,
    customer_id: &str,
    kinds: &[String],
    trial_id: Option<Uuid>,
    token_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<CustomerService>> {
    let ids: Vec<Uuid> = kinds.iter().map(|_| Uuid::now_v7()).collect();
    let source = if trial_id.is_some() {
        "converted"
    } else {
        "direct"
    };
    sqlx::query_as!(
        CustomerService,
        "insert into customer_services (id, customer_id, kind, source, trial_id, token_id, recorded_at)
         select id, $3, kind, $4, $5, $6, $7 from unnest($1::uuid[], $2::text[]) as k (id, kind)
         on conflict (customer_id, kind) do nothing
         returning id, customer_id, kind, source, trial_id, recorded_at",
        &ids,
        kinds,
        customer_id,
        source,
        trial_id,
        token_id,
        now,
    )
    .fetch_all(&mut **tx)
    .await
}
