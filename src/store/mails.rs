//! Mail rows: written with the state change that causes them, read and
//! marked by the mail worker.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::Tx;
use super::jobs::NewJob;
use crate::job::JobKind;

pub struct NewMail<'a> {
    pub id: Uuid,
    pub cause: &'a str,
    pub message_id: &'a str,
    pub template: &'a str,
    pub locale: &'a str,
    pub recipient: &'a str,
    pub recipient_name: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub attachments: serde_json::Value,
    pub job_id: Uuid,
    pub now: DateTime<Utc>,
}

/// A mail to insert with its `mail.send` job (under the mail's `job_id`).
pub struct MailWithJob<'a> {
    pub mail: NewMail<'a>,
    pub job: &'a NewJob<'a>,
    pub max_attempts: i32,
}

/// Inserts each mail unless one for the same cause exists, in one round
/// trip however many there are; returns the ids of the mails inserted.
///
/// With a zero `hold_for`, each mail gets its `mail.send` job and outbox
/// row in the same statement. Otherwise the mails are this process's to
/// send for `hold_for` (see `mail::handoff`) and get no job: one is
/// written only if the send fails ([`queue_jobs`]) or does not come
/// ([`queue_stale_handoffs`]).
pub async fn insert(
    tx: &mut Tx<'_>,
    mails: &[MailWithJob<'_>],
    hold_for: Duration,
) -> sqlx::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = mails.iter().map(|m| m.mail.id).collect();
    let causes = mails.iter().map(|m| m.mail.cause).collect::<Vec<&str>>();
    let message_ids = mails
        .iter()
        .map(|m| m.mail.message_id)
        .collect::<Vec<&str>>();
    let templates = mails.iter().map(|m| m.mail.template).collect::<Vec<&str>>();
    let locales = mails.iter().map(|m| m.mail.locale).collect::<Vec<&str>>();
    let recipients = mails
        .iter()
        .map(|m| m.mail.recipient)
        .collect::<Vec<&str>>();
    let subjects = mails.iter().map(|m| m.mail.subject).collect::<Vec<&str>>();
    let bodies = mails.iter().map(|m| m.mail.body).collect::<Vec<&str>>();
    let attachments: Vec<&serde_json::Value> = mails.iter().map(|m| &m.mail.attachments).collect();
    let job_ids: Vec<Uuid> = mails.iter().map(|m| m.mail.job_id).collect();
    let now: Vec<DateTime<Utc>> = mails.iter().map(|m| m.mail.now).collect();
    let recipient_names: Vec<Option<&str>> = mails
        .iter()
        .map(|m| m.mail.recipient_name.filter(|name| !name.trim().is_empty()))
        .collect();
    let kinds: Vec<&str> = mails.iter().map(|m| m.job.kind.as_str()).collect();
    let versions: Vec<i32> = mails.iter().map(|m| m.job.kind.version()).collect();
    let payloads: Vec<&serde_json::Value> = mails.iter().map(|m| &m.job.payload).collect();
    let max_attempts: Vec<i32> = mails.iter().map(|m| m.max_attempts).collect();
    let partner_ids: Vec<Option<&str>> = mails.iter().map(|m| m.job.partner_id).collect();
    let token_ids: Vec<Option<Uuid>> = mails.iter().map(|m| m.job.token_id).collect();
    let resource_types = mails
        .iter()
        .map(|m| m.job.resource_type)
        .collect::<Vec<&str>>();
    let resource_ids: Vec<Uuid> = mails.iter().map(|m| m.job.resource_id).collect();
    let sla_deadlines: Vec<Option<DateTime<Utc>>> =
        mails.iter().map(|m| m.job.sla_deadline).collect();
    sqlx::query_scalar!(
        r#"with input as (
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::uuid[],
                                  $11::timestamptz[], $12::text[], $13::text[], $14::int4[],
                                  $15::jsonb[], $16::int4[], $17::text[], $18::uuid[],
                                  $19::text[], $20::uuid[], $21::timestamptz[])
                           as i (id, cause, message_id, template, locale, recipient, subject,
                                 body, attachments, job_id, now, recipient_name, kind, version,
                                 payload, max_attempts, partner_id, token_id, resource_type,
                                 resource_id, sla_deadline)
         ), mail as (
             insert into mails (id, cause, message_id, template, locale, recipient, subject, body,
                                attachments, job_id, created_at, recipient_name, partner_id,
                                handoff_until)
             select id, cause, message_id, template, locale, recipient, subject, body,
                    attachments, job_id, now, recipient_name, partner_id,
                    case when $22::float8 > 0 then now() + make_interval(secs => $22::float8) end
             from input
             on conflict (cause) do nothing
             returning id, job_id
         ), job as (
             insert into jobs (id, kind, version, payload, max_attempts, partner_id, token_id,
                               resource_type, resource_id, sla_deadline, enqueued_at)
             select i.job_id, i.kind, i.version, i.payload, i.max_attempts, i.partner_id,
                    i.token_id, i.resource_type, i.resource_id, i.sla_deadline, i.now
             from input i join mail using (job_id)
             where $22::float8 = 0
             returning id
         ), queued as (
             insert into outbox (job_id, attempt) select id, 1 from job
         )
         select id as "id!" from mail"#,
        &ids,
        &causes as _,
        &message_ids as _,
        &templates as _,
        &locales as _,
        &recipients as _,
        &subjects as _,
        &bodies as _,
        &attachments as _,
        &job_ids,
        &now,
        &recipient_names as _,
        &kinds as _,
        &versions,
        &payloads as _,
        &max_attempts,
        &partner_ids as _,
        &token_ids as _,
        &resource_types as _,
        &resource_ids,
        &sla_deadlines as _,
        hold_for.as_secs_f64(),
    )
    .fetch_all(&mut **tx)
    .await
}

#[derive(Debug, FromRow)]
pub struct MailRow {
    pub id: Uuid,
    pub message_id: String,
    pub recipient: String,
    pub recipient_name: Option<String>,
    pub subject: String,
    pub body: String,
    pub attachments: serde_json::Value,
}

/// What the mail worker found of a mail it is to send.
pub enum Claim {
    /// Locked and not yet sent: the caller sends it, then marks it sent
    /// ([`mark_sent`]) in the same transaction, which commits only once
    /// the mail is handed over.
    Unsent(MailRow),
    AlreadySent,
    Missing,
}

/// Locks the mails and reads those not yet sent, in one round trip; a
/// claim per id, in order.
pub async fn claim_unsent(tx: &mut Tx<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Claim>> {
    struct Row {
        id: Uuid,
        sent: bool,
        message_id: String,
        recipient: String,
        recipient_name: Option<String>,
        subject: String,
        body: String,
        attachments: serde_json::Value,
    }
    let mut rows: Vec<Row> = sqlx::query_as!(
        Row,
        r#"select id, status = 'sent' as "sent!", message_id, recipient, recipient_name, subject,
                  body, attachments
         from mails where id = any($1) order by id for update"#,
        ids,
    )
    .fetch_all(&mut **tx)
    .await?;
    let claims = ids
        .iter()
        .map(|id| match rows.iter().position(|row| row.id == *id) {
            None => Claim::Missing,
            Some(at) if rows[at].sent => Claim::AlreadySent,
            Some(at) => {
                let row = rows.swap_remove(at);
                Claim::Unsent(MailRow {
                    id: row.id,
                    message_id: row.message_id,
                    recipient: row.recipient,
                    recipient_name: row.recipient_name,
                    subject: row.subject,
                    body: row.body,
                    attachments: row.attachments,
                })
            }
        })
        .collect();
    Ok(claims)
}

/// Marks mails sent once they are handed over.
pub async fn mark_sent(tx: &mut Tx<'_>, ids: &[Uuid], now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query!(
        "update mails set status = 'sent', sent_at = $2, last_error = null, handoff_until = null
         where id = any($1) and status <> 'sent'",
        ids,
        now,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether the mail was handed over already (`None`: no such mail). A plain
/// read, for the replay re-check; [`claim_unsent`] is what a send takes.
pub async fn is_sent(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        r#"select status = 'sent' as "sent!" from mails where id = $1"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Gives handed-off mails their `mail.send` job (under the `job_id` each
/// was written with) and its outbox row, due now, with the error that
/// made the send fail, if one did: from here the mail is sent as any job
/// is, with its retries and its dead letter. A mail that was sent, or
/// that has its job already, is left alone. Returns how many got one.
///
/// The payload is built here as `MailSendArgs` serialises (`mail::queue`,
/// which the store cannot name): `{"mail_id": …}`.
pub async fn queue_jobs(
    tx: &mut Tx<'_>,
    failed: &[(Uuid, Option<String>)],
    max_attempts: i32,
) -> sqlx::Result<u64> {
    let kind = JobKind::MailSend;
    let ids: Vec<Uuid> = failed.iter().map(|(id, _)| *id).collect();
    let errors: Vec<Option<&str>> = failed.iter().map(|(_, e)| e.as_deref()).collect();
    let queued = sqlx::query!(
        r#"with mail as (
             update mails m set handoff_until = null, last_error = coalesce(f.error, m.last_error)
             from unnest($1::uuid[], $2::text[]) as f(id, error)
             where m.id = f.id and m.handoff_until is not null and m.status <> 'sent'
             returning m.id, m.job_id, m.partner_id
         ), job as (
             insert into jobs (id, kind, version, payload, max_attempts, partner_id,
                               resource_type, resource_id, enqueued_at)
             select job_id, $3, $4, jsonb_build_object('mail_id', id), $5, partner_id, 'mail',
                    id, now()
             from mail
             on conflict (id) do nothing
             returning id
         )
         insert into outbox (job_id, attempt) select id, 1 from job"#,
        &ids,
        &errors as _,
        kind.as_str(),
        kind.version(),
        max_attempts,
    )
    .execute(&mut **tx)
    .await?;
    Ok(queued.rows_affected())
}

/// Mails handed to their process's sender and not sent yet: how many,
/// and when the oldest was written. They have no `mail.send` job until
/// they fail or their grace runs out, so the jobs' backlog misses them.
pub async fn handed_off_backlog(pool: &PgPool) -> sqlx::Result<(i64, Option<DateTime<Utc>>)> {
    let row = sqlx::query!(
        r#"select count(*) as "waiting!", min(created_at) as oldest
         from mails where handoff_until is not null"#,
    )
    .fetch_one(pool)
    .await?;
    Ok((row.waiting, row.oldest))
}

/// At most this many stale mails are queued by one sweep.
const STALE_BATCH: i64 = 256;

/// Gives the mails whose handoff grace ran out their `mail.send` jobs:
/// their process died before it sent them, or is far behind. Mails that
/// another sweep or a send holds are skipped. Returns how many.
pub async fn queue_stale_handoffs(pool: &PgPool, max_attempts: i32) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let stale: Vec<Uuid> = sqlx::query_scalar!(
        "select id from mails where handoff_until <= now()
         order by handoff_until limit $1 for update skip locked",
        STALE_BATCH,
    )
    .fetch_all(&mut *tx)
    .await?;
    if stale.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let unsent: Vec<(Uuid, Option<String>)> = stale.into_iter().map(|id| (id, None)).collect();
    let queued = queue_jobs(&mut tx, &unsent, max_attempts).await?;
    tx.commit().await?;
    if queued > 0 {
        tracing::info!(
            mails = queued,
            "mails not sent by their process within the handoff grace are queued as jobs"
        );
    }
    Ok(queued)
}
