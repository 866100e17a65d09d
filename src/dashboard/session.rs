//! The dashboard's sign-in. The operator pastes an operator token once;
//! the browser then holds a random session secret (never the token) in an
//! HttpOnly, SameSite=Strict cookie scoped to `/ops`. Every request looks
//! the session up with its token, so expiry (`ops.session_ttl`), sign-out
//! and revoking the token all end it. Sign-in and sign-out are audited
//! with the token. SameSite=Strict keeps other sites from posting a replay
//! with the cookie; the Origin check below refuses the rest.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde_json::json;
use uuid::Uuid;

use crate::intake::AppState;
use crate::intake::problem::ApiError;
use crate::store::audit::{self, AuditEvent};
use crate::store::ops_sessions;
use crate::store::tokens::{self, Role, TokenIdentity};

const COOKIE: &str = "fulfil_ops";

/// The operator behind the session cookie, if its session is live.
pub async fn operator(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<TokenIdentity>, ApiError> {
    let Some(secret) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    let identity = ops_sessions::operator(&state.pool, &secret).await?;
    if let Some(identity) = &identity {
        state.rate_limits.check(identity)?;
    }
    Ok(identity)
}

/// Signs in with a pasted token: `None` unless it is an operator's. The
/// returned jar carries the new session's cookie.
pub async fn sign_in(
    state: &AppState,
    jar: CookieJar,
    pasted: &str,
) -> Result<Option<(TokenIdentity, CookieJar)>, ApiError> {
    let Some(operator) = tokens::find_by_secret(&state.pool, pasted.trim())
        .await?
        .filter(|identity| identity.role == Role::Operator)
    else {
        return Ok(None);
    };
    let ttl = state.settings.ops.session_ttl;
    let mut tx = state.pool.begin().await?;
    let (session, secret) = ops_sessions::start(&mut tx, operator.id, ttl).await?;
    record(state, &mut tx, "ops.signed_in", session, operator.id).await?;
    tx.commit().await?;
    let cookie = Cookie::build((COOKIE, secret))
        .path("/ops")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.ops.secure_cookie)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    Ok(Some((operator, jar.add(cookie))))
}

/// Ends the cookie's session, if any, and removes the cookie.
pub async fn sign_out(state: &AppState, jar: CookieJar) -> Result<CookieJar, ApiError> {
    if let Some(secret) = jar.get(COOKIE).map(|c| c.value().to_owned()) {
        let mut tx = state.pool.begin().await?;
        if let Some((session, token)) = ops_sessions::end(&mut tx, &secret).await? {
            record(state, &mut tx, "ops.signed_out", session, token).await?;
        }
        tx.commit().await?;
    }
    Ok(jar.remove(Cookie::build(COOKIE).path("/ops")))
}

async fn record(
    state: &AppState,
    tx: &mut crate::store::Tx<'_>,
    action: &'static str,
    session: Uuid,
    token: Uuid,
) -> Result<(), ApiError> {
    let event = AuditEvent {
        at: state.clock.now(),
        entity_type: "ops_session",
        entity_id: session,
        action,
        from_state: None,
        to_state: None,
        token_id: Some(token),
        job_id: None,
        detail: json!({}),
    };
    audit::record(tx, event).await?;
    Ok(())
}

/// A form post must come from this page: a browser names the page's
/// origin, which must be the host it posted to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get("host").and_then(|v| v.to_str().ok());
    match headers.get("origin").and_then(|v| v.to_str().ok()) {
        // Old browsers and curl send none; the cookie's SameSite covers them.
        None => true,
        Some(origin) => host.is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority == host)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_the_page_itself_may_post() {
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
    }
}
