//! When no sign-up link can be issued (SPEC §1.4): the address already
//! has an application in progress, or its domain is one of
//! `registration.refused_domains`. Nothing is created but the "application
//! not completed" mail saying why, and its audit entry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{Addressee, RegistrationError, audit_transition, queue};
use crate::clock::Clock;
use crate::mail::Locale;
use crate::mail::contexts::RegistrationRefused;
use crate::mail::queue::Mailer;
use crate::settings::RegistrationSettings;
use crate::store::registrations;
use crate::store::registrations::RegistrationStatus;
use crate::store::{Tx, audit};

/// Why no link was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The address has a registration pending or an application in review.
    InProgress,
    /// The address's domain is in `registration.refused_domains`.
    DomainRefused,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::InProgress => "in_progress",
            Refusal::DomainRefused => "domain_refused",
        }
    }
}

/// Whether `domain` is refused: the same, ignoring case and a leading `@`.
pub fn domain_refused(refused: &[String], email: &str) -> bool {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return false;
    };
    refused.iter().any(|r| {
        r.trim()
            .trim_start_matches('@')
            .eq_ignore_ascii_case(domain)
    })
}

/// Why `email` gets no link, if it gets none. Takes the address's lock for
/// the rest of `tx`, so two racing sign-ups cannot both pass; a pending
/// registration past its time is let go (expired, audited, crediting
/// `token_id`) on the way. The clock is read once the lock is held.
pub async fn why_no_link(
    settings: &RegistrationSettings,
    clock: &Clock,
    tx: &mut Tx<'_>,
    email: &str,
    token_id: Option<Uuid>,
) -> sqlx::Result<Option<Refusal>> {
    if domain_refused(&settings.refused_domains, email) {
        return Ok(Some(Refusal::DomainRefused));
    }
    registrations::lock_address(tx, email).await?;
    let now = clock.now();
    let mut in_progress = false;
    for registration in registrations::in_progress(tx, email).await? {
        if registration.status == RegistrationStatus::Pending && now > registration.expires_at {
            registrations::expire(tx, registration.id).await?;
            let states = (Some("pending"), Some("expired"));
            audit_transition(tx, &registration, states, token_id, json!({}), now).await?;
        } else {
            in_progress = true;
        }
    }
    Ok(in_progress.then_some(Refusal::InProgress))
}

/// Mails the refusal and audits it; returns the refusal's id, which names
/// both. Each refusal is its own cause: a retry with the same
/// Idempotency-Key replays the intake's answer and mails nothing more.
pub async fn refuse(
    mailer: &Mailer,
    tx: &mut Tx<'_>,
    (email, locale, partner_id): (&str, Locale, Option<&str>),
    refusal: Refusal,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Uuid, RegistrationError> {
    let refusal_id = Uuid::now_v7();
    let to = Addressee {
        cause_id: refusal_id,
        email,
        locale: locale.as_str(),
        partner_id,
    };
    let context = RegistrationRefused {
        email,
        reason: refusal.as_str(),
    };
    queue(mailer, tx, to, &context, now).await?;
    let event = audit::AuditEvent {
        at: now,
        entity_type: "registration_refusal",
        entity_id: refusal_id,
        action: "registration.refused",
        from_state: None,
        to_state: None,
        token_id: Some(token_id),
        job_id: None,
        detail: json!({ "reason": refusal.as_str() }),
    };
    audit::record(tx, event).await?;
    tracing::info!(
        reason = refusal.as_str(),
        "no registration link issued; the refusal is mailed"
    );
    Ok(refusal_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_domain_matches_whatever_its_case_and_only_itself() {
        let refused = vec!["Free-Mail.example".to_owned(), "@spam.example".to_owned()];
        assert!(domain_refused(&refused, "a@free-mail.example"));
        assert!(domain_refused(&refused, "a@SPAM.example"));
        assert!(!domain_refused(&refused, "a@sub.free-mail.example"));
        assert!(!domain_refused(&refused, "a@cust.example"));
        assert!(!domain_refused(&[], "a@cust.example"));
    }
}
