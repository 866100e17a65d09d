//! Queueing a mail inside the transaction of the state change that causes
//! it: rendered now (a template error fails the change, not the mail
//! later), stored under its cause (unique: one cause, one mail), and sent
//! by a `mail.send` job.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use std::sync::Arc;

use super::Locale;
use super::contexts::Content;
use super::handoff::{HandedOff, Handoff};
use super::message::{Attachment, message_id_for};
use super::templates::Renderer;
use crate::enqueue::{Opts, new_job};
use crate::job::{JobArgs, JobError, JobKind};
use crate::settings::Settings;
use crate::store::Tx;
use crate::store::jobs::NewJob;
use crate::store::mails;

/// The args of `mail.send`: the stored mail to send. Declared here, with
/// its only producer, because every worker queues mail and the mail
/// module must not depend on the workers.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct MailSendArgs {
    pub mail_id: Uuid,
}

impl JobArgs for MailSendArgs {
    const KIND: JobKind = JobKind::MailSend;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const MailSend: JobKind = JobKind::new("mail.send");
}

/// Queues mail: what both the intake and the workers need to write one.
#[derive(Clone)]
pub struct Mailer {
    renderer: Arc<Renderer>,
    settings: Arc<Settings>,
}

impl Mailer {
    pub fn new(settings: Arc<Settings>) -> Mailer {
        let renderer = Arc::new(Renderer::new(settings.mail.service_name.clone()));
        Mailer { renderer, settings }
    }
}

pub struct MailRequest<'a> {
    /// What this mail is about, e.g. `license_issued:<request id>`.
    pub cause: String,
    /// The template and its context: `Content::of(&SomeContext { .. })`.
    pub content: Content,
    /// The recipient's locale; `None` falls back to the configured default.
    pub locale: Option<Locale>,
    pub to: &'a str,
    /// The recipient's name, for the To: header's display name.
    pub to_name: Option<&'a str>,
    pub attachments: Vec<Attachment>,
    pub partner_id: Option<&'a str>,
}

/// A mail rendered and given its ids, ready to be stored with its job.
pub struct RenderedMail<'a> {
    request: MailRequest<'a>,
    locale: Locale,
    subject: String,
    body: String,
    message_id: String,
    attachments: serde_json::Value,
    mail_id: Uuid,
    job_id: Uuid,
    job: NewJob<'a>,
    max_attempts: i32,
    now: DateTime<Utc>,
}

impl<'a> RenderedMail<'a> {
    fn row(&self) -> mails::MailWithJob<'_> {
        mails::MailWithJob {
            mail: mails::NewMail {
                id: self.mail_id,
                cause: &self.request.cause,
                message_id: &self.message_id,
                template: self.request.content.template(),
                locale: self.locale.as_str(),
                recipient: self.request.to,
                recipient_name: self.request.to_name,
                subject: &self.subject,
                body: &self.body,
                attachments: self.attachments.clone(),
                job_id: self.job_id,
                now: self.now,
            },
            job: &self.job,
            max_attempts: self.max_attempts,
        }
    }
}

/// Renders a mail (a template error is the caller's, and fatal) and gives
/// it and its `mail.send` job their ids; nothing is stored yet.
pub fn render_mail<'a>(
    mailer: &Mailer,
    request: MailRequest<'a>,
    now: DateTime<Utc>,
) -> Result<RenderedMail<'a>, JobError> {
    let settings = &mailer.settings.mail;
    let locale = request.locale.unwrap_or(settings.default_locale);
    let template = request.content.template();
    let rendered = mailer
        .renderer
        .render(&request.content, locale)
        .map_err(|e| JobError::fatal(format!("mail template {template}: {e}")))?;
    let mail_id = Uuid::now_v7();
    let message_id = message_id_for(&request.cause, &settings.message_id_domain);
    let attachments = serde_json::to_value(&request.attachments).map_err(anyhow::Error::from)?;
    let max_attempts = mailer.settings.jobs.max_attempts;
    let opts = Opts {
        partner_id: request.partner_id,
        token_id: None,
        resource_type: "mail",
        resource_id: mail_id,
        sla_deadline: None,
        max_attempts,
        now,
    };
    let job = new_job(&MailSendArgs { mail_id }, &opts)?;
    Ok(RenderedMail {
        request,
        locale,
        subject: rendered.subject,
        body: rendered.body,
        message_id,
        attachments,
        mail_id,
        job_id: Uuid::now_v7(),
        job,
        max_attempts,
        now,
    })
}

/// Stores rendered mails, in one round trip, and holds them for `handoff`
/// when it has room for them, else with their `mail.send` jobs; per mail,
/// the id of its job (to be written only if needed, for a mail held for
/// the handoff), or `None` when a mail with its cause exists already.
pub async fn queue_rendered(
    tx: &mut Tx<'_>,
    mails: &[RenderedMail<'_>],
    handoff: &Handoff,
) -> Result<Vec<Option<Uuid>>, JobError> {
    let rows: Vec<_> = mails.iter().map(RenderedMail::row).collect();
    let hold_for = handoff.hold_for(mails.len());
    let inserted = mails::insert(tx, &rows, hold_for).await?;
    let queued: Vec<Option<Uuid>> = mails
        .iter()
        .map(|mail| inserted.contains(&mail.mail_id).then_some(mail.job_id))
        .collect();
    if !hold_for.is_zero() {
        handoff.hold(inserted.into_iter().map(|mail_id| HandedOff { mail_id }));
    }
    Ok(queued)
}

/// Renders and queues one mail: returns the `mail.send` job queued, or
/// `None` when a mail with this cause exists already.
pub async fn queue_mail(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    request: MailRequest<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, JobError> {
    let mail = render_mail(mailer, request, now)?;
    let queued = queue_rendered(tx, std::slice::from_ref(&mail), &Handoff::none()).await?;
    Ok(queued.into_iter().next().flatten())
}
