//! The dashboard's login: the operator pastes an operator token once; it
//! is kept in an HttpOnly, SameSite=Strict cookie scoped to `/ops`, and
//! every request looks it up again, so revoking the token ends the
//! session. SameSite=Strict keeps other sites from posting a replay with
//! it; the Origin check below refuses the rest.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::intake::AppState;
use crate::intake::problem::ApiError;
use crate::store::tokens::{self, Role, TokenIdentity};

const COOKIE: &str = "fulfil_ops";

/// The operator behind the session cookie, if there is a valid one.
pub async fn operator(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<TokenIdentity>, ApiError> {
    let Some(secret) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    let identity = signed_in(state, &secret).await?;
    if let Some(identity) = &identity {
        state.rate_limits.check(identity)?;
    }
    Ok(identity)
}

/// The operator a pasted token names; `None` for any other token.
pub async fn signed_in(state: &AppState, secret: &str) -> Result<Option<TokenIdentity>, ApiError> {
    let identity = tokens::find_by_secret(&state.pool, secret.trim()).await?;
    Ok(identity.filter(|identity| identity.role == Role::Operator))
}

pub fn start(jar: CookieJar, secret: &str) -> CookieJar {
    let cookie = Cookie::build((COOKIE, secret.trim().to_owned()))
        .path("/ops")
        .http_only(true)
        .same_site(SameSite::Strict)
        .build();
    jar.add(cookie)
}

pub fn end(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(COOKIE).path("/ops"))
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
