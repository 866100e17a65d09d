//! `POST /v1/license-orders/{id}/cancellations`: cancels named keys, or all
//! of them, at once. The body names the keys in one of three ways; under
//! the order's lock `licensing::changes` finds them among the order's
//! issued keys and stores the cancellation; the revocation worker revokes
//! the keys, and revokes the order when no live key remains.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::auth::Caller;
use super::body::{Checks, RawBody};
use super::license_orders::{accept_change, begin_change, read_change};
use super::problem::ApiError;
use crate::licensing::changes::Change;
use crate::licensing::changes::keys::{self, Named};
use crate::licensing::key::LicenseKey;
use crate::workers::license_revoke::LicenseRevokeArgs;

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
    let ids = keys::cancelled_keys(&mut fresh.tx, &order, &named).await?;
    let change = Change {
        quantity: None,
        license: None,
        license_ids: Some(ids),
        new_keys: None,
    };
    accept_change::<LicenseRevokeArgs>(&state, &caller, fresh, &order, change).await
}
