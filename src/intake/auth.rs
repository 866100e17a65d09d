//! Who is calling: the bearer token, looked up by its hash, checked
//! against the route's roles, and charged against its own rate limit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::AppState;
use super::problem::ApiError;
use crate::store::tokens::{Role, TokenIdentity};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenIdentity);

impl Caller {
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this route is for {} tokens; this token is a {} token",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.0.role.as_str()
            )))
        }
    }

    /// The partner a portal token acts for (`None` for operators, who see all).
    /// For routes only a portal may call: its partner, or 403.
    pub fn portal_partner(&self) -> Result<String, ApiError> {
        self.require(&[Role::Portal])?;
        Ok(self
            .partner_scope()
            .expect("portal tokens have a partner")
            .to_owned())
    }

    pub fn partner_scope(&self) -> Option<&str> {
        match self.0.role {
            Role::Portal => self.0.partner_id.as_deref(),
            _ => None,
        }
    }

    /// Whether this caller may see data of `partner_id`.
    pub fn can_see(&self, partner_id: Option<&str>) -> bool {
        match self.0.role {
            Role::Operator => true,
            Role::Portal => partner_id.is_some() && partner_id == self.0.partner_id.as_deref(),
            Role::Scheduler => false,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| v.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, secret)| secret.trim())
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let identity = state
            .tokens
            .find(&state.pool, secret)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state.rate_limits.check(&identity)?;
        Ok(Caller(identity))
    }
}

/// One token bucket per token, so a noisy portal slows only itself.
pub struct RateLimits {
    default_per_second: NonZeroU32,
    default_burst: NonZeroU32,
    buckets: Mutex<HashMap<Uuid, Arc<DefaultDirectRateLimiter>>>,
}

impl RateLimits {
    pub fn new(per_second: u32, burst: u32) -> RateLimits {
        RateLimits {
            default_per_second: NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN),
            default_burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, token: &TokenIdentity) -> Result<(), ApiError> {
        let limiter = {
            let mut buckets = self.buckets.lock().expect("rate-limit table poisoned");
            buckets
                .entry(token.id)
                .or_insert_with(|| {
                    let (per_second, burst) = match token
                        .rate_limit_per_second
                        .and_then(|r| NonZeroU32::new(r as u32))
                    {
                        Some(rate) => (
                            rate,
                            rate.saturating_mul(NonZeroU32::new(2).expect("2 > 0")),
                        ),
                        None => (self.default_per_second, self.default_burst),
                    };
                    Arc::new(RateLimiter::direct(
                        Quota::per_second(per_second).allow_burst(burst),
                    ))
                })
                .clone()
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })
    }
}
