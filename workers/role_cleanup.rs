//! `role.cleanup`: removes every role the source partner holds on the
//! transferred subscriptions, and on the customer when it no longer sells
//! the customer anything. Idempotent and safe to run concurrently: a
//! second run removes nothing and fails nothing. After a transfer's
//! switch it completes the ticket and mails the customer and both partners.

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use crate::job::{JobArgs, JobError, JobKind, StillNeeded};
use crate::runtime::{JobContext, Worker};
use crate::store::jobs::JobRow;
use crate::store::transfers::TransferStatus;
use crate::store::{Tx, transfers};
use crate::transfers::{
    TransferMail, audit_transition, fail_transfer, queue_mails, step_still_needed,
};

/// The args of `role.cleanup`: whose roles to remove where.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct RoleCleanupArgs {
    pub customer_id: String,
    pub partner_id: String,
    pub subscription_ids: Vec<String>,
    /// Set when the cleanup finishes a transfer.
    pub transfer_id: Option<Uuid>,
}

impl JobArgs for RoleCleanupArgs {
    const KIND: JobKind = JobKind::RoleCleanup;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const RoleCleanup: JobKind = JobKind::new("role.cleanup");
}

pub struct RoleCleanup;

#[async_trait]
impl Worker for RoleCleanup {
    type Args = RoleCleanupArgs;

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        cleanup: RoleCleanupArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
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
        let Some(transfer) = transfer.filter(|t| t.status == TransferStatus::CleaningRoles) else {
            return Ok(());
        };
        transfers::set_status(tx, transfer.id, TransferStatus::Completed, None, now).await?;
        let detail = json!({ "roles_removed": removed });
        audit_transition(
            tx,
            &transfer,
            (
                Some(TransferStatus::CleaningRoles),
                TransferStatus::Completed,
            ),
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
            TransferMail::Completed,
            now,
        )
        .await
    }

    async fn on_dead(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        args: RoleCleanupArgs,
        tx: &mut Tx<'_>,
        error: &str,
    ) -> Result<(), JobError> {
        match args.transfer_id {
            Some(id) => fail_transfer(&ctx.clock, &ctx.mailer, tx, job, id, error).await,
            None => Ok(()),
        }
    }

    async fn still_needed(
        &self,
        tx: &mut Tx<'_>,
        args: &RoleCleanupArgs,
    ) -> sqlx::Result<StillNeeded> {
        match args.transfer_id {
            Some(id) => step_still_needed(tx, id).await,
            None => Ok(StillNeeded::Yes),
        }
    }
}
