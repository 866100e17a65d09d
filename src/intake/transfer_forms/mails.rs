//! The form's two mails, each written in the transaction of the act that
//! causes it, once per form: the customer admin's one-time link, and the
//! source contact's notice that the customer returned the form.

use chrono::{DateTime, Utc};

use super::super::AppState;
use super::super::problem::ApiError;
use super::super::relationships::{partner_name, shown_name};
use super::form_valid;
use super::view::contact;
use crate::mail::Locale;
use crate::mail::contexts::{Content, TransferFormLink, TransferFormReturned};
use crate::mail::queue::{MailRequest, queue_mail};
use crate::store::Tx;
use crate::store::directory::{self, Customer};
use crate::store::transfer_forms::{self, FormRow};
use crate::transfers::Contact;

fn mail_error(e: crate::job::JobError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{e}"))
}

pub(super) async fn queue_link(
    state: &AppState,
    tx: &mut Tx<'_>,
    form: &FormRow,
    customer: &Customer,
    link_token: &str,
) -> Result<(), ApiError> {
    let subscription_ids = transfer_forms::subscription_ids(&mut **tx, form.id).await?;
    let subscription_ids: Vec<&str> = subscription_ids.iter().map(String::as_str).collect();
    let context = TransferFormLink {
        form_id: form.id,
        customer_name: &shown_name(&customer.name, &customer.id),
        source_partner_name: &partner_name(tx, &form.source_partner_id).await?,
        subscription_ids: &subscription_ids,
        link: &format!("{}{link_token}", state.settings.transfers.form_link_base),
        expires_at: form.expires_at,
        valid_days: form_valid(state).num_days(),
    };
    let request = MailRequest {
        cause: format!("transfer_form_link:{}", form.id),
        content: Content::of(&context),
        locale: Locale::parse(&form.locale),
        to: &form.admin_email,
        to_name: None,
        attachments: Vec::new(),
        partner_id: Some(&form.source_partner_id),
    };
    queue_mail(&state.mailer, tx, request, form.created_at)
        .await
        .map(drop)
        .map_err(mail_error)
}

/// What the source hears when the customer returns the form.
pub(super) struct Returned<'a> {
    pub form: &'a FormRow,
    pub customer_contact: &'a Contact,
    pub destination_name: String,
    pub destination_contact: &'a Contact,
}

pub(super) async fn queue_returned(
    state: &AppState,
    tx: &mut Tx<'_>,
    returned: &Returned<'_>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let form = returned.form;
    let source = contact(&form.source_contact)?;
    let customer_name = match directory::find_customer(&mut **tx, &form.customer_id).await? {
        Some(customer) => shown_name(&customer.name, &customer.id),
        None => form.customer_id.clone(),
    };
    let subscription_ids = transfer_forms::subscription_ids(&mut **tx, form.id).await?;
    let subscription_ids: Vec<&str> = subscription_ids.iter().map(String::as_str).collect();
    let context = TransferFormReturned {
        form_id: form.id,
        customer_id: &form.customer_id,
        customer_name: &customer_name,
        recipient_name: &source.name,
        customer_contact_name: &returned.customer_contact.name,
        destination_partner_id: form.destination_partner_id.as_deref(),
        destination_partner_name: &returned.destination_name,
        destination_contact_name: &returned.destination_contact.name,
        subscription_ids: &subscription_ids,
        expires_at: form.expires_at,
    };
    let request = MailRequest {
        cause: format!("transfer_form_returned:{}", form.id),
        content: Content::of(&context),
        locale: source.locale.as_deref().and_then(Locale::parse),
        to: &source.email,
        to_name: Some(&source.name),
        attachments: Vec::new(),
        partner_id: Some(&form.source_partner_id),
    };
    queue_mail(&state.mailer, tx, request, now)
        .await
        .map(drop)
        .map_err(mail_error)
}
