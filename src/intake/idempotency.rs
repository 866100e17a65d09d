//! `Idempotency-Key` on every POST, scoped to the calling token: the same
//! key and body answer the first response again; another body answers
//! 422; a request racing the first answers 409. The saved response commits
//! in the same transaction as the work, so it exists iff the work does.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;
use super::auth::Caller;
use super::problem::ApiError;
use crate::store::idempotency::{KeyState, SavedResponse};
use crate::store::{Tx, idempotency};

pub const HEADER: &str = "idempotency-key";

/// A request seen for the first time: do the work in `tx`, then call
/// [`Fresh::finish`].
pub struct Fresh {
    pub tx: Tx<'static>,
    caller: Caller,
    key: String,
    fingerprint: Vec<u8>,
}

/// The request's key, or the 400 for a missing or overlong one. A route
/// that looks anything up before [`begin`] calls this first, so a missing
/// key is a 400 whatever the lookup would have answered.
pub fn key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let key = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::BadRequest {
            slug: "idempotency-key-missing",
            detail: "every POST needs an Idempotency-Key header (any unique string up to 255 characters)".into(),
        })?;
    if key.len() > 255 {
        return Err(ApiError::BadRequest {
            slug: "idempotency-key-invalid",
            detail: "the Idempotency-Key header is longer than 255 characters".into(),
        });
    }
    Ok(key)
}

/// Begins an idempotent action, the one shape every POST takes:
/// `let mut fresh = idempotency::begin(…).await?;`. A request seen before
/// ends the handler right there, answered with its saved response
/// ([`ApiError::Replayed`]), so no handler can forget the replay.
pub async fn begin(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
) -> Result<Fresh, ApiError> {
    let request = Request::new(headers, route, body)?;
    let mut tx = state.pool.begin().await?;
    request.answer(idempotency::begin(&mut tx, caller.0.id, &request.key).await?)?;
    Ok(Fresh {
        tx,
        caller: caller.clone(),
        key: request.key,
        fingerprint: request.fingerprint,
    })
}

/// A POST's key and the fingerprint of its route and body: what a route
/// that saves its response in its own statement needs (see
/// `store::licenses::place_orders`); every other route calls [`begin`].
pub struct Request {
    pub key: String,
    pub fingerprint: Vec<u8>,
}

impl Request {
    pub fn new(headers: &HeaderMap, route: &str, body: &[u8]) -> Result<Request, ApiError> {
        let key = key(headers)?.to_owned();
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        Ok(Request {
            key,
            fingerprint: hasher.finalize().to_vec(),
        })
    }

    /// `Ok` for a key seen for the first time; otherwise the handler ends
    /// here: 409 while a twin is in flight, or the saved response again
    /// ([`ApiError::Replayed`]).
    pub fn answer(&self, state: KeyState) -> Result<(), ApiError> {
        match state {
            KeyState::Busy => Err(in_flight()),
            KeyState::Saved(saved) => Err(ApiError::Replayed(Box::new(replay(
                saved,
                &self.fingerprint,
            )?))),
            KeyState::Fresh => Ok(()),
        }
    }
}

/// The error of a save that a twin request's save beat, as the 409 of a
/// twin in flight; any other error as it is.
pub fn twin_saved_first(error: sqlx::Error) -> ApiError {
    if idempotency::is_taken(&error) {
        in_flight()
    } else {
        error.into()
    }
}

fn in_flight() -> ApiError {
    ApiError::Conflict {
        slug: "idempotency-key-in-flight",
        detail: "a request with this Idempotency-Key is still being processed; retry shortly"
            .into(),
    }
}

/// The saved response again, if the request is the same one.
fn replay(saved: SavedResponse, fingerprint: &[u8]) -> Result<Response, ApiError> {
    if saved.request_fingerprint != fingerprint {
        return Err(ApiError::Unprocessable {
            slug: "idempotency-key-reused",
            detail: "this Idempotency-Key was used with a different request; use a new key".into(),
        });
    }
    let status = StatusCode::from_u16(saved.response_status as u16).unwrap_or(StatusCode::OK);
    let mut response = (status, axum::Json(saved.response_body)).into_response();
    response.headers_mut().insert(
        "idempotent-replayed",
        axum::http::HeaderValue::from_static("true"),
    );
    Ok(response)
}

impl Fresh {
    /// Saves the response with the work and commits both.
    pub async fn finish(
        mut self,
        status: StatusCode,
        body: serde_json::Value,
    ) -> Result<Response, ApiError> {
        let saved = idempotency::save(
            &mut self.tx,
            self.caller.0.id,
            &self.key,
            &self.fingerprint,
            status.as_u16(),
            &body,
        )
        .await;
        // The twin committed first; this one's work rolls back with it.
        saved.map_err(twin_saved_first)?;
        self.tx.commit().await?;
        Ok((status, axum::Json(body)).into_response())
    }
}
