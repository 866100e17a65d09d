//! `transfer.process`: checks the ticket's preconditions under lock and
//! either rejects it (nothing switched, mails say why) or, in one
//! transaction, switches every subscription to the destination partner,
//! records the history, and queues the role cleanup. A ticket past its
//! expiry expires instead.

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use crate::job::{JobError, JobKind};
use crate::runtime::{JobContext, JobHandler, payload};
use crate::store::jobs::{self, JobRow};
use crate::store::{Tx, transfers};
use crate::transfers::{audit_transition, queue_mails};

pub struct TransferProcess;

#[derive(serde::Deserialize)]
struct TransferPayload {
    transfer_id: Uuid,
}

#[async_trait]
impl JobHandler for TransferProcess {
    fn kind(&self) -> JobKind {
        JobKind::TransferProcess
    }

    async fn handle(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        let TransferPayload { transfer_id } = payload(job)?;
        let mut transfer = transfers::lock_transfer(tx, transfer_id)
            .await?
            .ok_or_else(|| JobError::fatal(format!("transfer {transfer_id} does not exist")))?;
        if transfer.status != "submitted" {
            return Ok(()); // cancelled, or carried out by an earlier delivery
        }
        let now = ctx.clock.now();
        let subscription_ids = transfers::subscription_ids(&mut **tx, transfer_id).await?;
        if now > transfer.expires_at {
            transfers::set_status(tx, transfer_id, "expired", None, now).await?;
            audit_transition(
                tx,
                &transfer,
                ("submitted", "expired"),
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
            transfers::set_status(tx, transfer_id, "rejected", Some(&reason), now).await?;
            audit_transition(
                tx,
                &transfer,
                ("submitted", "rejected"),
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
                "transfer_rejected",
                now,
            )
            .await;
        }
        audit_transition(
            tx,
            &transfer,
            ("submitted", "switching"),
            Some(job.id),
            json!({}),
            now,
        )
        .await?;
        transfers::switch_subscriptions(tx, &transfer, &subscription_ids, now).await?;
        transfers::set_status(tx, transfer_id, "cleaning_roles", None, now).await?;
        let detail = json!({ "subscription_ids": subscription_ids });
        audit_transition(
            tx,
            &transfer,
            ("switching", "cleaning_roles"),
            Some(job.id),
            detail,
            now,
        )
        .await?;
        let cleanup = jobs::NewJob {
            kind: JobKind::RoleCleanup,
            payload: json!({
                "customer_id": transfer.customer_id,
                "partner_id": transfer.source_partner_id,
                "subscription_ids": subscription_ids,
                "transfer_id": transfer.id,
            }),
            partner_id: Some(&transfer.destination_partner_id),
            token_id: transfer.token_id,
            resource_type: "transfer",
            resource_id: transfer.id,
            sla_deadline: None,
        };
        jobs::enqueue(tx, cleanup, ctx.settings.jobs.max_attempts, now).await?;
        Ok(())
    }

    async fn on_dead(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        tx: &mut Tx<'_>,
        error: &str,
    ) -> Result<(), JobError> {
        let TransferPayload { transfer_id } = payload(job)?;
        super::role_cleanup::fail_transfer(ctx, tx, job, transfer_id, error).await
    }
}
