//! What a transfer form's parties see of it: its state as of now, its
//! three parts, and its history. The link token is never part of it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::super::problem::ApiError;
use crate::store::transfer_forms::{self, FormRow, FormState};
use crate::store::{audit, relationships};
use crate::transfers::Contact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FormStatus {
    /// Opened by the source; waiting for the customer's part.
    Draft,
    /// Completed by the customer; waiting for the source's submission.
    Returned,
    /// Submitted: the transfer ticket runs.
    Submitted,
    /// Withdrawn by the source before submission.
    Withdrawn,
    /// Not completed and submitted within `transfers.form_valid`.
    Expired,
}

impl FormStatus {
    /// The state as the caller sees it at `now`: an open form past its
    /// expiry is expired even before an act records it.
    pub(super) fn of(form: &FormRow, now: DateTime<Utc>) -> FormStatus {
        match form.status {
            state if state.is_open() && now > form.expires_at => FormStatus::Expired,
            FormState::Draft => FormStatus::Draft,
            FormState::Returned => FormStatus::Returned,
            FormState::Submitted => FormStatus::Submitted,
            FormState::Withdrawn => FormStatus::Withdrawn,
            FormState::Expired => FormStatus::Expired,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FormEvent {
    pub at: DateTime<Utc>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A transfer form as its parties see it. The link token is never part of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferFormView {
    pub form_id: Uuid,
    pub status: FormStatus,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub customer_id: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub source_partner_id: String,
    /// Named by the customer at completion.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub destination_partner_id: Option<String>,
    pub subscription_ids: Vec<String>,
    pub source_contact: Contact,
    pub customer_contact: Option<Contact>,
    pub destination_contact: Option<Contact>,
    /// Where the one-time link was mailed.
    #[schema(format = Email)]
    pub customer_admin_email: String,
    /// Whether the destination has an active reseller relationship with the
    /// customer now, as submission needs; `null` until one is named.
    pub destination_related: Option<bool>,
    /// The ticket the submission created.
    pub transfer_id: Option<Uuid>,
    pub transfer_url: Option<String>,
    pub status_url: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub returned_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Every change of state, oldest first.
    pub history: Vec<FormEvent>,
}

pub(super) fn contact(value: &serde_json::Value) -> Result<Contact, ApiError> {
    serde_json::from_value(value.clone()).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("a stored form contact is unreadable: {e}"))
    })
}

pub(super) async fn view(
    conn: &mut sqlx::PgConnection,
    form: &FormRow,
    now: DateTime<Utc>,
) -> Result<TransferFormView, ApiError> {
    let destination_related = match &form.destination_partner_id {
        Some(destination) => {
            Some(relationships::is_active(&mut *conn, destination, &form.customer_id).await?)
        }
        None => None,
    };
    let history = audit::list(&mut *conn, Some(form.id), None, 100).await?;
    Ok(TransferFormView {
        form_id: form.id,
        status: FormStatus::of(form, now),
        customer_id: form.customer_id.clone(),
        source_partner_id: form.source_partner_id.clone(),
        destination_partner_id: form.destination_partner_id.clone(),
        subscription_ids: transfer_forms::subscription_ids(&mut *conn, form.id).await?,
        source_contact: contact(&form.source_contact)?,
        customer_contact: form.customer_contact.as_ref().map(contact).transpose()?,
        destination_contact: form.destination_contact.as_ref().map(contact).transpose()?,
        customer_admin_email: form.admin_email.clone(),
        destination_related,
        transfer_id: form.transfer_id,
        transfer_url: form.transfer_id.map(|id| format!("/v1/transfers/{id}")),
        status_url: format!("/v1/transfer-forms/{}", form.id),
        expires_at: form.expires_at,
        created_at: form.created_at,
        updated_at: form.updated_at,
        returned_at: form.returned_at,
        submitted_at: form.submitted_at,
        withdrawn_at: form.withdrawn_at,
        history: history
            .into_iter()
            .map(|e| FormEvent {
                at: e.at,
                from: e.from_state,
                to: e.to_state,
            })
            .collect(),
    })
}

pub(super) fn view_json(view: &TransferFormView) -> serde_json::Value {
    serde_json::to_value(view).expect("serialisable")
}
