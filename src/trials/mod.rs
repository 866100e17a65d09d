//! What the trial intake, sweeps and workers share: the timeline, the
//! mails each step sends, and audit rows.

pub mod timeline;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::job::JobError;
use crate::mail::Locale;
use crate::mail::queue::{MailRequest, Mailer, queue_mail};
use crate::store::directory::User;
use crate::store::trials::TrialRow;
use crate::store::{Tx, audit};
pub use timeline::{Notice, NoticePlan, Timeline, TrialMoment};

/// How instants read in mails.
pub fn mail_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Queues an admin notice (`trial_expiring` or `trial_expired`) to the
/// customer's and the partner's admin, once per trial, term and admin.
pub async fn queue_admin_notices(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    trial: &TrialRow,
    template: &str,
    customer_name: &str,
    timeline: &Timeline,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let days_left = (trial.ends_at - now).num_days().max(0);
    let grace_ends = timeline.grace_ends(trial.ends_at);
    let recipients = [
        ("customer_admin", &trial.customer_admin.0),
        ("partner_admin", &trial.partner_admin.0),
    ];
    for (role, admin) in recipients {
        let request = MailRequest {
            cause: format!(
                "{template}:{}:{}:{role}",
                trial.id,
                trial.ends_at.timestamp()
            ),
            template,
            locale: admin.locale.as_deref().and_then(Locale::parse),
            to: &admin.email,
            to_name: None,
            context: json!({
                "recipient_role": role,
                "customer_id": trial.customer_id,
                "customer_name": customer_name,
                "trial_id": trial.id,
                "services": trial.services,
                "ends_at": mail_time(trial.ends_at),
                "days_left": days_left,
                "grace_days": timeline.grace.num_days(),
                "grace_ends_at": mail_time(grace_ends),
                "extensions_left": (timeline.max_extensions - trial.extensions).max(0),
            }),
            attachments: Vec::new(),
            partner_id: Some(&trial.partner_id),
        };
        queue_mail(mailer, tx, request, now).await?;
    }
    Ok(())
}

/// Queues the "services are no longer available" mail to each member.
pub async fn queue_purge_mails(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    trial: &TrialRow,
    members: &[User],
    customer_name: &str,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    for user in members {
        let request = MailRequest {
            cause: format!("trial_purged:{}:{}", trial.id, user.id),
            template: "trial_purged",
            locale: Locale::parse(&user.locale),
            to: &user.email,
            to_name: Some(&user.name),
            context: json!({
                "user_name": user.name,
                "customer_id": trial.customer_id,
                "customer_name": customer_name,
                "trial_id": trial.id,
                "services": trial.services,
                "purged_at": mail_time(now),
            }),
            attachments: Vec::new(),
            partner_id: Some(&trial.partner_id),
        };
        queue_mail(mailer, tx, request, now).await?;
    }
    Ok(())
}

/// A trial's change in the audit trail, crediting the token that asked
/// (the one that created the trial, unless `token_id` names another) and
/// the job that did it.
pub struct TrialChange<'a> {
    pub action: &'static str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub token_id: Option<uuid::Uuid>,
    pub job_id: Option<uuid::Uuid>,
    pub detail: serde_json::Value,
}

pub async fn audit_change(
    tx: &mut Tx<'_>,
    trial: &TrialRow,
    change: TrialChange<'_>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let event = audit::AuditEvent {
        at,
        entity_type: "trial",
        entity_id: trial.id,
        action: change.action,
        from_state: change.from,
        to_state: change.to,
        token_id: change.token_id.or(trial.token_id),
        job_id: change.job_id,
        detail: change.detail,
    };
    audit::record(tx, event).await
}
