//! The dashboard's sign-up review queue: applications awaiting review,
//! oldest first, each with an approve button and a reject form with its
//! reason. The buttons do what the API's approval and rejection do
//! (`registrations::review`), audited with the signed-in operator's token.

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::session;
use crate::intake::AppState;
use crate::intake::problem::ApiError;
use crate::registrations::review;
use crate::store::registrations;
use crate::store::tokens::TokenIdentity;

/// One application as the queue lists it.
#[derive(Serialize)]
pub struct Pending {
    id: Uuid,
    email: String,
    partner_id: Option<String>,
    applied_at: Option<String>,
    organisation: String,
    services: String,
}

pub async fn queue(pool: &PgPool) -> anyhow::Result<Vec<Pending>> {
    let rows = registrations::awaiting_review(pool, 50).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let application = r.application.unwrap_or_default();
            let services = application["services"]
                .as_object()
                .map(|s| {
                    s.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(name, v)| match v["plan"].as_str() {
                            Some(plan) => {
                                format!("{name} ({plan}, {})", v["account"].as_str().unwrap_or("?"))
                            }
                            None => name.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            Pending {
                id: r.id,
                email: r.email,
                partner_id: r.partner_id,
                applied_at: r.completed_at.map(|at| at.to_rfc3339()),
                organisation: application["organisation"]["name"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
                services,
            }
        })
        .collect())
}

pub fn notice(reviewed: &str) -> String {
    match reviewed {
        "approved" => "Approved: the service started and the start mail is on its way.",
        "rejected" => "Rejected: the reason is mailed to the applicant.",
        _ => "Nothing changed: the application was reviewed already, or the form was incomplete (a reason, a partner).",
    }
    .to_owned()
}

/// The signed-in operator, or the answer to give instead.
async fn operator(
    state: &AppState,
    headers: &HeaderMap,
    jar: &CookieJar,
) -> Result<Result<TokenIdentity, Response>, ApiError> {
    if !session::same_origin(headers) {
        return Err(ApiError::Forbidden(
            "the form was posted from another site".into(),
        ));
    }
    Ok(session::operator(state, jar)
        .await?
        .ok_or_else(|| Redirect::to("/ops").into_response()))
}

/// A refused review (reviewed already, a field missing) changes nothing
/// and says so; anything else is an error page.
fn outcome(result: Result<(), ApiError>, done: &str) -> Result<Response, ApiError> {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/ops?reviewed={done}#reviews")).into_response()),
        Err(ApiError::Conflict { .. } | ApiError::Validation(_) | ApiError::NotFound(_)) => {
            Ok(Redirect::to("/ops?reviewed=refused#reviews").into_response())
        }
        Err(error) => Err(error),
    }
}

#[derive(Deserialize)]
pub struct ApprovalForm {
    #[serde(default)]
    partner_id: String,
}

pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<Uuid>,
    Form(form): Form<ApprovalForm>,
) -> Result<Response, ApiError> {
    let operator = match operator(&state, &headers, &jar).await? {
        Ok(operator) => operator,
        Err(redirect) => return Ok(redirect),
    };
    let partner_id = Some(form.partner_id.trim()).filter(|p| !p.is_empty());
    let result = async {
        let mut tx = state.pool.begin().await?;
        review::approve(
            &state.mailer,
            &state.clock,
            &mut tx,
            operator.id,
            id,
            partner_id,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    outcome(result, "approved")
}

#[derive(Deserialize)]
pub struct RejectionForm {
    #[serde(default)]
    reason: String,
}

pub async fn reject(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Path(id): Path<Uuid>,
    Form(form): Form<RejectionForm>,
) -> Result<Response, ApiError> {
    let operator = match operator(&state, &headers, &jar).await? {
        Ok(operator) => operator,
        Err(redirect) => return Ok(redirect),
    };
    let result = async {
        let mut tx = state.pool.begin().await?;
        review::reject(
            &state.mailer,
            &state.clock,
            &mut tx,
            operator.id,
            id,
            &form.reason,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    outcome(result, "rejected")
}
