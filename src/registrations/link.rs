//! The one-time sign-up link: issuing it (a `pending` registration and the
//! registration mail, valid `registration.link_valid`), and completing it
//! with the application (`applied`, awaiting review; the completion mail).
//! The link token is a secret: only its hash is stored, and it appears in
//! no log, error or answer.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::application::Application;
use super::{Addressee, RegistrationError, audit_transition, queue, reread};
use crate::clock::Clock;
use crate::mail::Locale;
use crate::mail::contexts::{Registration, RegistrationCompleted};
use crate::mail::queue::Mailer;
use crate::settings::RegistrationSettings;
use crate::store::Tx;
use crate::store::registrations::{self, NewRegistration, RegistrationRow, RegistrationStatus};
use crate::store::tokens::{hash_secret, random_secret};

const LINK_TOKEN_PREFIX: &str = "reg_";

/// Who signs up: the address the link goes to, the mail's language, the
/// partner whose portal asked (none for an operator), and its token.
pub struct SignUp<'a> {
    pub email: &'a str,
    pub locale: Locale,
    pub partner_id: Option<&'a str>,
    pub token_id: Uuid,
}

/// Issues a link in `tx`: the `pending` registration, the registration
/// mail carrying the link (`registration.link_base` and the token), and
/// the audit row. Whether the address may have one is
/// [`super::refusal::why_no_link`]'s to say, first.
pub async fn issue(
    mailer: &Mailer,
    settings: &RegistrationSettings,
    tx: &mut Tx<'_>,
    sign_up: SignUp<'_>,
    now: DateTime<Utc>,
) -> Result<RegistrationRow, RegistrationError> {
    let valid = chrono::Duration::from_std(settings.link_valid).unwrap_or(chrono::Duration::MAX);
    let link_token = random_secret(LINK_TOKEN_PREFIX);
    let new = NewRegistration {
        id: Uuid::now_v7(),
        partner_id: sign_up.partner_id,
        token_hash: &hash_secret(&link_token),
        email: sign_up.email,
        locale: sign_up.locale.as_str(),
        expires_at: now + valid,
        token_id: Some(sign_up.token_id),
        now,
    };
    let registration = registrations::insert(tx, &new).await?;
    let context = Registration {
        email: &registration.email,
        link: &format!("{}{link_token}", settings.link_base),
        expires_at: registration.expires_at,
        valid_hours: valid.num_hours(),
    };
    let to = Addressee::from(&registration);
    queue(mailer, tx, to, &context, now).await?;
    let states = (None, Some("pending"));
    let token_id = Some(sign_up.token_id);
    audit_transition(tx, &registration, states, token_id, json!({}), now).await?;
    Ok(registration)
}

/// What opening a link found.
pub enum Opened {
    /// Pending and in time: the application may be taken, at `now` (read
    /// once the registration was locked).
    Pending {
        registration: RegistrationRow,
        now: DateTime<Utc>,
    },
    /// Past its time: recorded as expired in `tx`, which the caller
    /// commits even though it refuses the application.
    Expired(RegistrationRow),
}

/// Opens the link whose token hashes to `token_hash`, locking its
/// registration for the rest of `tx`: for a portal (`visible` says which
/// partners' registrations it sees) or the person at the sign-up page
/// (the token from their mailbox is the proof). An unknown link, or one
/// `visible` refuses, is not found; a used or expired one is refused.
pub async fn open(
    clock: &Clock,
    tx: &mut Tx<'_>,
    token_hash: &[u8],
    visible: impl FnOnce(Option<&str>) -> bool,
    token_id: Option<Uuid>,
) -> Result<Opened, RegistrationError> {
    let not_found = || RegistrationError::NotFound("no registration has this link token".into());
    let registration = registrations::lock_by_token_hash(tx, token_hash)
        .await?
        .filter(|r| visible(r.partner_id.as_deref()))
        .ok_or_else(not_found)?;
    let now = clock.now();
    match registration.status {
        RegistrationStatus::Pending if now > registration.expires_at => {
            registrations::expire(tx, registration.id).await?;
            let states = (Some("pending"), Some("expired"));
            audit_transition(tx, &registration, states, token_id, json!({}), now).await?;
            Ok(Opened::Expired(registration))
        }
        RegistrationStatus::Pending => Ok(Opened::Pending { registration, now }),
        RegistrationStatus::Expired => Err(RegistrationError::LinkExpired {
            expires_at: registration.expires_at,
        }),
        _ => Err(RegistrationError::LinkUsed {
            id: registration.id,
            completed_at: registration.completed_at,
        }),
    }
}

/// Completes an opened link with `application`, in `tx`: an application
/// that breaks a rule changes nothing (the link stays usable); one that
/// meets them all is stored, the registration becomes `applied` and
/// awaits review, and the completion mail is queued.
pub async fn complete(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    registration: &RegistrationRow,
    application: &Application,
    token_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<RegistrationRow, RegistrationError> {
    application.check()?;
    let stored = serde_json::to_value(application).map_err(anyhow::Error::from)?;
    registrations::apply(tx, registration.id, &stored, now).await?;
    let detail = json!({ "services": application.service_names() });
    let states = (Some("pending"), Some("applied"));
    audit_transition(tx, registration, states, token_id, detail, now).await?;
    let context = RegistrationCompleted {
        email: &registration.email,
        organisation: &application.organisation.name,
        services: &application.service_names(),
    };
    let to = Addressee::from(registration);
    queue(mailer, tx, to, &context, now).await?;
    reread(tx, registration.id).await
}
