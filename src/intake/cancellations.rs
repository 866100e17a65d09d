//! `POST /v1/license-orders/{id}/cancellations`: cancels named keys, or all
//! of them, at once. The request is checked and stored under the order's
//! lock; the revocation worker revokes the keys, and revokes the order
//! when no live key remains.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody};
use super::license_orders::{Change, accepted, begin_change, enqueue_request, read_change};
use super::problem::{ApiError, FieldError};
use crate::licensing::key::LicenseKey;
use crate::store::licenses::{self, LicenseRow, LicenseStatus, RequestKind};

/// Name the keys to cancel in exactly one way.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationRequest {
    /// License ids of the order.
    pub license_ids: Option<Vec<Uuid>>,
    /// License keys of the order, as issued.
    pub keys: Option<Vec<String>>,
    /// `true` cancels every issued key (and so revokes the order).
    pub all: Option<bool>,
}

enum Named {
    All,
    Ids(Vec<Uuid>),
    Keys(Vec<LicenseKey>),
}

fn validate(request: CancellationRequest) -> Result<Named, ApiError> {
    let given = [
        request.license_ids.is_some(),
        request.keys.is_some(),
        request.all.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ApiError::field(
            "",
            "name the keys in exactly one of license_ids, keys or all",
        ));
    }
    let mut checks = Checks::default();
    let named = if let Some(ids) = request.license_ids {
        checks.check(
            (1..=1000).contains(&ids.len()),
            "license_ids",
            "1 to 1000 license ids",
        );
        Named::Ids(ids)
    } else if let Some(keys) = request.keys {
        checks.check((1..=1000).contains(&keys.len()), "keys", "1 to 1000 keys");
        let mut parsed = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            // The error names the position, never the key.
            match LicenseKey::parse(key) {
                Ok(key) => parsed.push(key),
                Err(error) => checks.check(false, &format!("keys[{i}]"), error.to_string()),
            }
        }
        Named::Keys(parsed)
    } else {
        checks.check(request.all == Some(true), "all", "must be true when given");
        Named::All
    };
    checks.finish()?;
    Ok(named)
}

/// The issued licenses named, or a 422 naming every one that is not.
fn resolve(named: &Named, licenses: &[LicenseRow]) -> Result<Vec<Uuid>, ApiError> {
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let mut take = |field: String, label: String, found: Option<&LicenseRow>| match found {
        None => errors.push(FieldError {
            field,
            message: format!("{label} is not a key of this order"),
        }),
        Some(l) if l.status == LicenseStatus::Revoked => errors.push(FieldError {
            field,
            message: format!("{label} is already revoked"),
        }),
        Some(l) if l.status != LicenseStatus::Issued => errors.push(FieldError {
            field,
            message: format!("{label} is not issued yet"),
        }),
        Some(l) => {
            if !ids.contains(&l.id) {
                ids.push(l.id);
            }
        }
    };
    match named {
        Named::All => {
            for license in licenses
                .iter()
                .filter(|l| l.status == LicenseStatus::Issued)
            {
                take(String::new(), String::new(), Some(license));
            }
        }
        Named::Ids(wanted) => {
            for (i, id) in wanted.iter().enumerate() {
                take(
                    format!("license_ids[{i}]"),
                    format!("license {id}"),
                    licenses.iter().find(|l| l.id == *id),
                );
            }
        }
        Named::Keys(wanted) => {
            for (i, key) in wanted.iter().enumerate() {
                let found = licenses
                    .iter()
                    .find(|l| l.key.as_deref() == Some(key.as_str()));
                take(
                    format!("keys[{i}]"),
                    format!("key {}", key.redacted()),
                    found,
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::UnprocessableFields {
            slug: "license-not-cancellable",
            detail: "some of the named keys cannot be cancelled; nothing was cancelled".into(),
            errors,
        });
    }
    if ids.is_empty() {
        return Err(ApiError::Unprocessable {
            slug: "no-issued-key",
            detail: "the order has no issued key to cancel".into(),
        });
    }
    Ok(ids)
}

#[utoipa::path(post, path = "/v1/license-orders/{id}/cancellations", tag = "license orders",
    request_body = CancellationRequest,
    params(("id" = Uuid, Path, description = "order id"), ("Idempotency-Key" = String, Header, description = "unique per request")),
    responses((status = 202, body = super::license_orders::Accepted), (status = 400, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem), (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn cancel_licenses(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let named = validate(read_change(&caller, &body)?)?;
    let (mut fresh, order) =
        *begin_change(&state, &caller, &headers, &id, "cancellations", &body).await?;
    let licenses = licenses::list_licenses(&mut *fresh.tx, order.id).await?;
    let ids = resolve(&named, &licenses)?;
    let now = state.clock.now();
    let change = Change {
        kind: RequestKind::Cancellation,
        quantity: None,
        license: None,
        license_ids: Some(ids),
        new_keys: None,
    };
    let (request_id, job_id, deadline) =
        enqueue_request(&state, &mut fresh.tx, &caller, &order, change, now).await?;
    fresh
        .finish(
            StatusCode::ACCEPTED,
            accepted(order.id, request_id, job_id, deadline),
        )
        .await
}
