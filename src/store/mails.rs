//! Mail rows: written with the state change that causes them, read and
//! marked by the mail worker.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;
use super::jobs::NewJob;

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

/// Inserts the mail unless one for the same cause exists, and with it the
/// `mail.send` job (`job`, under the mail's `job_id`) and its outbox row,
/// in one round trip; `true` if new. A mail that exists already gets no
/// second job.
pub async fn insert_with_job(
    tx: &mut Tx<'_>,
    mail: &NewMail<'_>,
    job: NewJob<'_>,
    max_attempts: i32,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query_scalar!(
        r#"with mail as (
             insert into mails (id, cause, message_id, template, locale, recipient, subject, body,
                                attachments, job_id, created_at, recipient_name)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             on conflict (cause) do nothing
             returning job_id
         ), job as (
             insert into jobs (id, kind, version, payload, max_attempts, partner_id, token_id,
                               resource_type, resource_id, sla_deadline, enqueued_at)
             select job_id, $13, $14, $15, $16, $17, $18, $19, $20, $21, $11 from mail
             returning id
         ), queued as (
             insert into outbox (job_id, attempt) select id, 1 from job
         )
         select count(*) as "inserted!" from mail"#,
        mail.id,
        mail.cause,
        mail.message_id,
        mail.template,
        mail.locale,
        mail.recipient,
        mail.subject,
        mail.body,
        &mail.attachments,
        mail.job_id,
        mail.now,
        mail.recipient_name.filter(|name| !name.trim().is_empty()),
        job.kind.as_str(),
        job.kind.version(),
        &job.payload,
        max_attempts,
        job.partner_id,
        job.token_id,
        job.resource_type,
        job.resource_id,
        job.sla_deadline,
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(inserted == 1)
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

/// A mail the worker is to send.
pub enum Claim {
    /// Marked sent in the caller's transaction, which commits only once
    /// the mail is handed over; a failed send rolls the mark back.
    Unsent(MailRow),
    AlreadySent,
    Missing,
}

/// Locks the mail and marks it sent, in one round trip.
pub async fn claim_unsent(tx: &mut Tx<'_>, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<Claim> {
    #[derive(FromRow)]
    struct Row {
        id: Option<Uuid>,
        message_id: Option<String>,
        recipient: Option<String>,
        recipient_name: Option<String>,
        subject: Option<String>,
        body: Option<String>,
        attachments: Option<serde_json::Value>,
    }
    let row: Option<Row> = sqlx::query_as!(
        Row,
        "with old as (select id, status from mails where id = $1 for update),
         sent as (
             update mails m set status = 'sent', sent_at = $2, last_error = null
             from old where m.id = old.id and old.status <> 'sent'
             returning m.id, m.message_id, m.recipient, m.recipient_name, m.subject, m.body,
                       m.attachments
         )
         select sent.* from old left join sent on true",
        id,
        now,
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(Claim::Missing);
    };
    let unsent = (|| {
        Some(MailRow {
            id: row.id?,
            message_id: row.message_id?,
            recipient: row.recipient?,
            recipient_name: row.recipient_name,
            subject: row.subject?,
            body: row.body?,
            attachments: row.attachments?,
        })
    })();
    Ok(unsent.map_or(Claim::AlreadySent, Claim::Unsent))
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
