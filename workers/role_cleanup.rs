//! `role.cleanup`: removes every role the source partner holds on the
//! transferred subscriptions, and on the customer when it no longer sells
//! the customer anything. Idempotent and safe to run concurrently: a
//! second run removes nothing and fails nothing. After a transfer's
//! switch it completes the ticket and mails the customer and both partners.

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use crate::job::{JobError, JobKind};
use crate::runtime::{JobContext, JobHandler, payload};
use crate::store::jobs::JobRow;
use crate::store::{Tx, transfers};
use crate::transfers::{audit_transition, queue_mails};

pub struct RoleCleanup;

#[derive(serde::Deserialize, serde::Serialize)]
pub struct CleanupPayload {
    pub customer_id: String,
    pub partner_id: String,
    pub subscription_ids: Vec<String>,
    /// Set when the cleanup finishes a transfer.
    pub transfer_id: Option<Uuid>,
}

#[async_trait]
impl JobHandler for RoleCleanup {
    fn kind(&self) -> JobKind {
        JobKind::RoleCleanup
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let cleanup: CleanupPayload = payload(job)?;
        let now = ctx.clock.now();
        let transfer = match cleanup.transfer_id {
            Some(id) => Some(
                transfers::lock_transfer(tx, id)
                    .await?
                    .ok_or_else(|| JobError::fatal(format!("transfer {id} does not exist")))?,
            ),
            None => None,
        };
        let removed = transfers::remove_partner_roles(
            tx,
            &cleanup.customer_id,
            &cleanup.partner_id,
            &cleanup.subscription_ids,
            now,
        )
        .await?;
        tracing::info!(removed, "role cleanup done");
        let Some(transfer) = transfer.filter(|t| t.status == "cleaning_roles") else {
            return Ok(());
        };
        transfers::set_status(tx, transfer.id, "completed", None, now).await?;
        let detail = json!({ "roles_removed": removed });
        audit_transition(
            tx,
            &transfer,
            ("cleaning_roles", "completed"),
            Some(job.id),
            detail,
            now,
        )
        .await?;
        queue_mails(
            &ctx.mailer,
            tx,
            &transfer,
            &cleanup.subscription_ids,
            "transfer_completed",
            now,
        )
        .await
    }

    async fn on_dead(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
        error: &str,
    ) -> Result<(), JobError> {
        match payload::<CleanupPayload>(job)?.transfer_id {
            Some(transfer_id) => fail_transfer(ctx, tx, job, transfer_id, error).await,
            None => Ok(()),
        }
    }
}

/// Marks a transfer `failed` with the error of its dead job, and mails why.
pub(super) async fn fail_transfer(
    ctx: &JobContext,
    tx: &mut Tx<'_>,
    job: &JobRow,
    transfer_id: Uuid,
    error: &str,
) -> Result<(), JobError> {
    let Some(mut transfer) = transfers::lock_transfer(tx, transfer_id).await? else {
        return Ok(());
    };
    if ["completed", "rejected", "failed", "expired", "cancelled"]
        .contains(&transfer.status.as_str())
    {
        return Ok(());
    }
    let now = ctx.clock.now();
    transfers::set_status(tx, transfer_id, "failed", Some(error), now).await?;
    let from = transfer.status.clone();
    audit_transition(
        tx,
        &transfer,
        (&from, "failed"),
        Some(job.id),
        json!({ "error": error }),
        now,
    )
    .await?;
    // The raw error stays on the ticket for operators; recipients get a
    // neutral reason they can quote.
    transfer.reason = Some(format!(
        "an internal error stopped the processing (job {})",
        job.id
    ));
    let subscription_ids = transfers::subscription_ids(&mut **tx, transfer_id).await?;
    queue_mails(
        &ctx.mailer,
        tx,
        &transfer,
        &subscription_ids,
        "transfer_failed",
        now,
    )
    .await
}
