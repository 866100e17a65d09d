//! `transfer.process`: checks the ticket's preconditions under lock and
//! either rejects it (nothing switched, mails say why) or, in one
//! transaction, switches every subscription to the destination partner,
//! records the history, and queues the role cleanup. A ticket past its
//! expiry expires instead.

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use super::role_cleanup::RoleCleanupArgs;
use crate::enqueue::{Opts, enqueue};
use crate::job::{JobArgs, JobError, JobKind, StillNeeded};
use crate::runtime::{JobContext, Worker};
use crate::store::jobs::JobRow;
use crate::store::transfers::TransferStatus;
use crate::store::{Tx, transfers};
use crate::transfers::{
    TransferMail, audit_transition, fail_transfer, queue_mails, step_still_needed,
};

/// The args of `transfer.process`: the submitted ticket.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
pub struct TransferProcessArgs {
    pub transfer_id: Uuid,
}

impl JobArgs for TransferProcessArgs {
    const KIND: JobKind = JobKind::TransferProcess;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const TransferProcess: JobKind = JobKind::new("transfer.process");
}

pub struct TransferProcess;

#[async_trait]
impl Worker for TransferProcess {
    type Args = TransferProcessArgs;

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        TransferProcessArgs { transfer_id }: TransferProcessArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let mut transfer = transfers::lock_transfer(tx, transfer_id)
            .await?
            .ok_or_else(|| JobError::fatal(format!("transfer {transfer_id} does not exist")))?;
        if transfer.status != TransferStatus::Submitted {
            return Ok(()); // cancelled, or carried out by an earlier delivery
        }
        let now = ctx.clock.now();
        let subscription_ids = transfers::subscription_ids(&mut **tx, transfer_id).await?;
        if now > transfer.expires_at {
            transfers::set_status(tx, transfer_id, TransferStatus::Expired, None, now).await?;
            audit_transition(
                tx,
                &transfer,
                (Some(TransferStatus::Submitted), TransferStatus::Expired),
                Some(job.id),
                json!({}),
                now,
            )
            .await?;
            return Ok(());
        }
        if let Some(reason) =
            transfers::precondition_failure(tx, &transfer, &subscription_ids).await?
        {
            transfers::set_status(
                tx,
                transfer_id,
                TransferStatus::Rejected,
                Some(&reason),
                now,
            )
            .await?;
            audit_transition(
                tx,
                &transfer,
                (Some(TransferStatus::Submitted), TransferStatus::Rejected),
                Some(job.id),
                json!({ "reason": reason }),
                now,
            )
            .await?;
            transfer.reason = Some(reason);
            return queue_mails(
                &ctx.mailer,
                tx,
                &transfer,
                &subscription_ids,
                TransferMail::Rejected,
                now,
            )
            .await;
        }
        audit_transition(
            tx,
            &transfer,
            (Some(TransferStatus::Submitted), TransferStatus::Switching),
            Some(job.id),
            json!({}),
            now,
        )
        .await?;
        transfers::switch_subscriptions(tx, &transfer, &subscription_ids, now).await?;
        transfers::set_status(tx, transfer_id, TransferStatus::CleaningRoles, None, now).await?;
        let detail = json!({ "subscription_ids": subscription_ids });
        audit_transition(
            tx,
            &transfer,
            (
                Some(TransferStatus::Switching),
                TransferStatus::CleaningRoles,
            ),
            Some(job.id),
            detail,
            now,
        )
        .await?;
        let cleanup = RoleCleanupArgs {
            customer_id: transfer.customer_id.clone(),
            partner_id: transfer.source_partner_id.clone(),
            subscription_ids,
            transfer_id: Some(transfer.id),
        };
        let opts = Opts {
            partner_id: Some(&transfer.destination_partner_id),
            token_id: transfer.token_id,
            resource_type: "transfer",
            resource_id: transfer.id,
            sla_deadline: None,
            max_attempts: ctx.settings.jobs.max_attempts,
            now,
        };
        enqueue(tx, &cleanup, opts).await?;
        Ok(())
    }

    async fn on_dead(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        TransferProcessArgs { transfer_id }: TransferProcessArgs,
        tx: &mut Tx<'_>,
        error: &str,
    ) -> Result<(), JobError> {
        fail_transfer(&ctx.clock, &ctx.mailer, tx, job, transfer_id, error).await
    }

    async fn still_needed(
        &self,
        tx: &mut Tx<'_>,
        args: &TransferProcessArgs,
    ) -> sqlx::Result<StillNeeded> {
        step_still_needed(tx, args.transfer_id).await
    }
}
