//! Mail rows: written with the state change that causes them, read and
//! marked by the mail worker.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

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

/// Inserts the mail unless one for the same cause exists; `true` if new.
pub async fn insert_mail(tx: &mut Tx<'_>, mail: &NewMail<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "insert into mails (id, cause, message_id, template, locale, recipient, subject, body,
                            attachments, job_id, created_at, recipient_name)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         on conflict (cause) do nothing",
    )
    .bind(mail.id)
    .bind(mail.cause)
    .bind(mail.message_id)
    .bind(mail.template)
    .bind(mail.locale)
    .bind(mail.recipient)
    .bind(mail.subject)
    .bind(mail.body)
    .bind(&mail.attachments)
    .bind(mail.job_id)
    .bind(mail.now)
    .bind(mail.recipient_name.filter(|name| !name.trim().is_empty()))
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
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
    pub status: String,
}

pub async fn lock_mail(tx: &mut Tx<'_>, id: Uuid) -> sqlx::Result<Option<MailRow>> {
    sqlx::query_as(
        "select id, message_id, recipient, recipient_name, subject, body, attachments, status from mails
         where id = $1 for update",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn mark_sent(tx: &mut Tx<'_>, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("update mails set status = 'sent', sent_at = $2, last_error = null where id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
