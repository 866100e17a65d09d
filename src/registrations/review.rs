//! The operator's review of an applied registration (SPEC §1.4): approval
//! starts the service (the customer and its contractor go into the
//! directory, the start mail goes out); rejection mails the reason. The
//! API and the dashboard's buttons both review through here, audited with
//! the operator's token.

use serde_json::json;
use uuid::Uuid;

use super::application::Application;
use super::{Addressee, RegistrationError, audit_transition, queue, reread};
use crate::clock::Clock;
use crate::fields::{Invalid, is_identifier};
use crate::mail::contexts::{RegistrationRejected, ServiceStarted};
use crate::mail::queue::Mailer;
use crate::store::directory::UserStatus;
use crate::store::registrations::{self, Approval, RegistrationRow, RegistrationStatus};
use crate::store::{Tx, directory};

const REASON_MAX: usize = 1000;

/// A rejection's reason is mailed to the applicant: some words, not a
/// book.
pub fn check_reason(reason: &str) -> Result<(), Invalid> {
    let length = reason.trim().chars().count();
    if length == 0 || length > REASON_MAX {
        return Err(Invalid::field("reason", "must be 1 to 1000 characters"));
    }
    Ok(())
}

/// The registration, locked, if it awaits review; its application is
/// `None` only for a first-round completion, which can be rejected but
/// not approved.
async fn applied(
    tx: &mut Tx<'_>,
    id: Uuid,
) -> Result<(RegistrationRow, Option<Application>), RegistrationError> {
    let registration = registrations::lock(tx, id)
        .await?
        .ok_or_else(|| RegistrationError::NotFound(format!("no registration {id}")))?;
    if registration.status != RegistrationStatus::Applied {
        return Err(RegistrationError::NotReviewable(format!(
            "a {} registration cannot be reviewed; only an applied one can",
            registration.status
        )));
    }
    let application = registration
        .application
        .clone()
        .and_then(|a| serde_json::from_value::<Application>(a).ok());
    Ok((registration, application))
}

/// The reseller of record for the approved customer: the registration's
/// partner, or for an operator's own sign-up (no partner) the known
/// partner the operator names.
async fn partner_for(
    tx: &mut Tx<'_>,
    registration: &RegistrationRow,
    named: Option<&str>,
) -> Result<String, RegistrationError> {
    match (registration.partner_id.as_deref(), named) {
        (Some(own), None) => Ok(own.to_owned()),
        (Some(own), Some(named)) if own == named => Ok(own.to_owned()),
        (Some(own), Some(_)) => Err(Invalid::field(
            "partner_id",
            format!("must be absent or {own}: the registration belongs to that partner"),
        )
        .into()),
        (None, None) => Err(Invalid::field(
            "partner_id",
            "is required: this registration has no partner to be the customer's reseller",
        )
        .into()),
        (None, Some(named)) => {
            let known =
                is_identifier(named) && directory::find_partner(&mut **tx, named).await?.is_some();
            if known {
                Ok(named.to_owned())
            } else {
                Err(Invalid::field("partner_id", "is not a known partner").into())
            }
        }
    }
}

/// Approves an applied registration in `tx`, for the operator whose token
/// is `operator`, under `partner_id` (see [`partner_for`]): the customer
/// (named for the registration, so approval creates it once) with its
/// first user, the contact person under the registration's address,
/// holding the role `contractor`. An address that is already a user
/// keeps that user: it gets the role, and no second user is made. Then
/// the start mail.
pub async fn approve(
    mailer: &Mailer,
    clock: &Clock,
    tx: &mut Tx<'_>,
    operator: Uuid,
    id: Uuid,
    partner_id: Option<&str>,
) -> Result<RegistrationRow, RegistrationError> {
    let (registration, application) = applied(tx, id).await?;
    let application = application.ok_or_else(|| {
        RegistrationError::NotReviewable(
            "this registration was completed without an application; reject it and ask for a new sign-up"
                .into(),
        )
    })?;
    let partner_id = partner_for(tx, &registration, partner_id).await?;
    let now = clock.now();
    let customer_id = format!("reg-{id}");
    let customer = directory::Customer {
        id: customer_id.clone(),
        partner_id: partner_id.clone(),
        name: application.organisation.name.clone(),
    };
    directory::upsert_customer(tx, &customer).await?;
    let existing = directory::user_by_email(&mut **tx, &registration.email).await?;
    let user_created = existing.is_none();
    let user_id = match existing {
        Some(user) => user.id,
        None => {
            let user = directory::User {
                id: customer_id.clone(),
                customer_id: customer_id.clone(),
                email: registration.email.clone(),
                locale: registration.locale.clone(),
                name: application.contact.name.clone(),
                status: UserStatus::Active,
            };
            directory::upsert_user(tx, &user).await?;
            user.id
        }
    };
    let role = directory::RoleAssignment {
        id: format!("{customer_id}-contractor"),
        principal_type: "user".into(),
        principal_id: user_id.clone(),
        role: "contractor".into(),
        scope_type: "customer".into(),
        scope_id: customer_id.clone(),
        status: "present".into(),
    };
    directory::upsert_role(tx, &role).await?;
    let approval = Approval {
        customer_id: &customer_id,
        user_id: &user_id,
        reviewed_by: operator,
        now,
    };
    registrations::approve(tx, id, &approval).await?;
    let detail = json!({ "partner_id": partner_id, "customer_id": customer_id,
                         "user_id": user_id, "user_created": user_created });
    let states = (Some("applied"), Some("approved"));
    audit_transition(tx, &registration, states, Some(operator), detail, now).await?;
    let context = ServiceStarted {
        email: &registration.email,
        services: &application.service_names(),
    };
    let to = Addressee::from(&registration);
    queue(mailer, tx, to, &context, now).await?;
    reread(tx, id).await
}

/// Rejects an applied registration in `tx`, for the operator whose token
/// is `operator`, and mails the reason.
pub async fn reject(
    mailer: &Mailer,
    clock: &Clock,
    tx: &mut Tx<'_>,
    operator: Uuid,
    id: Uuid,
    reason: &str,
) -> Result<RegistrationRow, RegistrationError> {
    check_reason(reason)?;
    let reason = reason.trim();
    let (registration, _) = applied(tx, id).await?;
    let now = clock.now();
    registrations::reject(tx, id, reason, operator, now).await?;
    let states = (Some("applied"), Some("rejected"));
    let detail = json!({ "reason": reason });
    audit_transition(tx, &registration, states, Some(operator), detail, now).await?;
    let context = RegistrationRejected {
        email: &registration.email,
        reason,
    };
    let to = Addressee::from(&registration);
    queue(mailer, tx, to, &context, now).await?;
    reread(tx, id).await
}
