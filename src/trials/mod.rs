//! What the trial intake, sweeps and workers share: the timeline, the
//! mails each step sends, and audit rows.

pub mod job;
pub mod timeline;

use chrono::{DateTime, Utc};

use crate::job::JobError;
use crate::mail::Locale;
use crate::mail::contexts::{
    Content, TrialExpired, TrialExpiring, TrialNotice, TrialPurchaseRequest, TrialPurged, TrialRole,
};
use crate::mail::queue::{MailRequest, Mailer, queue_mail};
use crate::settings::TrialSettings;
use crate::store::directory::User;
use crate::store::trial_changes::PurchaseRequest;
use crate::store::trials::TrialRow;
use crate::store::{Tx, audit};
pub use timeline::{Notice, NoticePlan, Timeline, TrialMoment};

/// Where the customer buys what it tried: `trial.purchase_link_base` with
/// the trial id appended. The id is no secret; the portal's page signs in.
pub fn purchase_link(settings: &TrialSettings, trial_id: uuid::Uuid) -> String {
    format!("{}{trial_id}", settings.purchase_link_base)
}

/// Which admin notice: the trial's end coming, or come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminNotice {
    Expiring,
    Expired,
}

/// Queues an admin notice (`trial_expiring` or `trial_expired`) to the
/// customer's and the partner's admin, once per trial, term and admin.
/// Both carry the purchase link (`trial.purchase_link_base`).
pub async fn queue_admin_notices(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    trial: &TrialRow,
    mail: AdminNotice,
    customer_name: &str,
    settings: &TrialSettings,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let timeline = Timeline::from_settings(settings);
    let services: Vec<&str> = trial.services.iter().map(String::as_str).collect();
    let purchase_link = purchase_link(settings, trial.id);
    let recipients = [
        (TrialRole::CustomerAdmin, &trial.customer_admin.0),
        (TrialRole::PartnerAdmin, &trial.partner_admin.0),
    ];
    for (role, admin) in recipients {
        let notice = TrialNotice {
            recipient_role: role,
            customer_id: &trial.customer_id,
            customer_name,
            trial_id: trial.id,
            services: &services,
            ends_at: trial.ends_at,
            grace_days: timeline.grace.num_days(),
            purchase_link: &purchase_link,
        };
        let content = match mail {
            AdminNotice::Expiring => Content::of(&TrialExpiring {
                notice,
                days_left: (trial.ends_at - now).num_days().max(0),
                extensions_left: (timeline.max_extensions - trial.extensions).max(0),
            }),
            AdminNotice::Expired => Content::of(&TrialExpired {
                notice,
                grace_ends_at: timeline.grace_ends(trial.ends_at),
            }),
        };
        let request = MailRequest {
            cause: format!(
                "{}:{}:{}:{}",
                content.template(),
                trial.id,
                trial.ends_at.timestamp(),
                role.as_str()
            ),
            content,
            locale: admin.locale.as_deref().and_then(Locale::parse),
            to: &admin.email,
            to_name: None,
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
    let services: Vec<&str> = trial.services.iter().map(String::as_str).collect();
    for user in members {
        let request = MailRequest {
            cause: format!("trial_purged:{}:{}", trial.id, user.id),
            content: Content::of(&TrialPurged {
                user_name: &user.name,
                customer_id: &trial.customer_id,
                customer_name,
                trial_id: trial.id,
                services: &services,
                purged_at: now,
            }),
            locale: Locale::parse(&user.locale),
            to: &user.email,
            to_name: Some(&user.name),
            attachments: Vec::new(),
            partner_id: Some(&trial.partner_id),
        };
        queue_mail(mailer, tx, request, now).await?;
    }
    Ok(())
}

/// Mails the partner admin a purchase request sent from the trial; its
/// cause is the request, so a replayed request mails nothing again.
pub async fn queue_purchase_request_mail(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    trial: &TrialRow,
    request: &PurchaseRequest,
    customer_name: &str,
    settings: &TrialSettings,
) -> Result<(), JobError> {
    let admin = &trial.partner_admin.0;
    let services: Vec<&str> = request.services.iter().map(String::as_str).collect();
    let mail = MailRequest {
        cause: format!("trial_purchase_request:{}", request.id),
        content: Content::of(&TrialPurchaseRequest {
            customer_id: &trial.customer_id,
            customer_name,
            customer_admin_email: &trial.customer_admin.0.email,
            trial_id: trial.id,
            status: trial.status,
            services: &services,
            note: request.note.as_deref().unwrap_or_default(),
            ends_at: trial.ends_at,
            requested_at: request.created_at,
            purchase_link: &purchase_link(settings, trial.id),
        }),
        locale: admin.locale.as_deref().and_then(Locale::parse),
        to: &admin.email,
        to_name: None,
        attachments: Vec::new(),
        partner_id: Some(&trial.partner_id),
    };
    queue_mail(mailer, tx, mail, request.created_at)
        .await
        .map(drop)
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
