//! The HTTP intake API (axum): authentication, idempotency, validation,
//! and the routes that turn portal requests into jobs.

pub mod auth;
pub mod body;
pub mod cancellations;
pub mod customer_services;
pub mod directory;
pub mod health;
pub mod idempotency;
pub mod jobs;
pub mod license_orders;
pub mod openapi;
pub mod ops;
pub mod order_placer;
pub mod partnerships;
pub mod problem;
pub mod registrations;
pub mod relationships;
pub mod review;
pub mod signup;
pub mod sweeps;
pub mod token_cache;
pub mod transfer_forms;
pub mod transfers;
pub mod trial_changes;
pub mod trials;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sqlx::PgPool;

use crate::clock::Clock;
use crate::settings::Settings;

/// What every handler shares. Handlers take it by value (axum's `State`
/// clones it for each request), so it is one reference count: cloned
/// field by field it cost a dozen of them and the replica name's
/// allocation, per request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub rate_limits: Arc<auth::RateLimits>,
    /// Token lookups; [`token_cache::TokenCache::watch`] keeps it fresh.
    pub tokens: Arc<token_cache::TokenCache>,
    pub mailer: crate::mail::queue::Mailer,
    /// Runs `POST /v1/sweeps/…`; shares the mailer's compiled templates.
    pub sweeper: crate::sweeps::Sweeper,
    /// Writes the new orders of concurrent requests together.
    pub orders: order_placer::OrderPlacer,
}

impl AppState {
    pub fn new(
        pool: PgPool,
        settings: Arc<Settings>,
        clock: Clock,
        mailer: crate::mail::queue::Mailer,
        relay_wake: Option<crate::broker::relay::RelayWake>,
    ) -> AppState {
        let rate_limits = Arc::new(auth::RateLimits::new(
            settings.http.rate_limit_per_second,
            settings.http.rate_limit_burst,
        ));
        let sweeper =
            crate::sweeps::Sweeper::new(pool.clone(), settings.clone(), clock, mailer.clone());
        AppState(Arc::new(Shared {
            orders: order_placer::OrderPlacer::start(&pool, relay_wake),
            pool,
            settings,
            clock,
            rate_limits,
            tokens: Arc::default(),
            mailer,
            sweeper,
        }))
    }
}

/// The API's routes, with `pages` (the `/ops` dashboard, which the caller
/// brings so that intake does not depend on it) behind the same
/// middleware: problem answers, body limit, request counting and spans.
pub fn router(state: AppState, pages: Router<AppState>) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/license-orders", post(license_orders::create_order))
        .route("/v1/license-orders/{id}", get(license_orders::get_order))
        .route(
            "/v1/license-orders/{id}/additions",
            post(license_orders::add_licenses),
        )
        .route(
            "/v1/license-orders/{id}/vm-count",
            post(license_orders::raise_vm_count),
        )
        .route(
            "/v1/license-orders/{id}/cancellations",
            post(cancellations::cancel_licenses),
        )
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/ops/audit", get(ops::audit))
        .route("/v1/ops/queues", get(ops::queues))
        .route("/v1/ops/dead-letters", get(ops::dead_letters))
        .route("/v1/ops/dead-letters/replay", post(ops::replay))
        .route("/v1/ops/sla", get(ops::sla))
        .route("/v1/transfers", post(transfers::submit))
        .route("/v1/transfers/{id}", get(transfers::get))
        .route("/v1/transfers/{id}/cancellation", post(transfers::cancel))
        .route("/v1/transfers/{id}/retry", post(transfers::retry))
        .route("/v1/role-cleanups", post(transfers::role_cleanup))
        .route("/v1/transfer-forms", post(transfer_forms::open))
        .route("/v1/transfer-forms/{id}", get(transfer_forms::get))
        .route(
            "/v1/transfer-forms/{token}/completion",
            post(transfer_forms::complete),
        )
        .route(
            "/v1/transfer-forms/{id}/submission",
            post(transfer_forms::submit),
        )
        .route(
            "/v1/transfer-forms/{id}/withdrawal",
            post(transfer_forms::withdraw),
        )
        .route("/v1/trials", post(trials::create))
        .route("/v1/trials/{id}", get(trials::get))
        .route("/v1/trials/{id}/extensions", post(trials::extend))
        .route("/v1/trials/{id}/conversions", post(trials::convert))
        .route(
            "/v1/trials/{id}/services",
            post(trial_changes::add_services),
        )
        .route(
            "/v1/trials/{id}/purchase-requests",
            post(trial_changes::request_purchase),
        )
        .route(
            "/v1/customers/{id}/services",
            get(customer_services::list_services),
        )
        .route(
            "/v1/customers/{id}/services/{service}",
            axum::routing::put(customer_services::put_service),
        )
        .route("/register", get(signup::show).post(signup::complete))
        .route("/v1/registrations", post(registrations::create))
        .route("/v1/registrations/{id}", get(registrations::get))
        .route(
            "/v1/registrations/{token}/completion",
            post(registrations::complete),
        )
        .route("/v1/registrations/{id}/approval", post(review::approve))
        .route("/v1/registrations/{id}/rejection", post(review::reject))
        .route("/v1/sweeps/{sweep}", post(sweeps::run))
        .route(
            "/v1/partners/{id}",
            get(directory::get_partner).put(directory::put_partner),
        )
        .route(
            "/v1/customers/{id}",
            get(directory::get_customer).put(directory::put_customer),
        )
        .route(
            "/v1/users/{id}",
            get(directory::get_user).put(directory::put_user),
        )
        .route(
            "/v1/subscriptions/{id}",
            get(directory::get_subscription).put(directory::put_subscription),
        )
        .route(
            "/v1/role-assignments/{id}",
            get(directory::get_role).put(directory::put_role),
        )
        .route(
            "/v1/reseller-relationships/{partner_id}/{customer_id}",
            get(relationships::get_relationship)
                .put(relationships::put_relationship)
                .delete(relationships::end_relationship),
        )
        .route("/v1/relationship-requests", post(relationships::request))
        .route(
            "/v1/relationship-requests/{id}",
            get(relationships::get_request),
        )
        .route(
            "/v1/relationship-requests/{token}/acceptance",
            post(relationships::accept),
        )
        .route(
            "/v1/relationship-requests/{token}/decline",
            post(relationships::decline),
        )
        .route("/v1/partnerships", post(partnerships::invite))
        .route(
            "/v1/partnerships/{id}",
            get(partnerships::get).delete(partnerships::end),
        )
        .route(
            "/v1/partnerships/{token}/acceptance",
            post(partnerships::accept),
        )
        .route(
            "/v1/partnerships/{token}/decline",
            post(partnerships::decline),
        )
        .merge(pages)
        .fallback(|| async { problem::ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::from_fn(problem::bare_errors_as_problems))
        .layer(axum::middleware::from_fn(health::count_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(body::BodyLimit(body_limit)))
        // Spans name the route's template, never the path itself: a path
        // may carry a one-time registration token.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |request: &axum::http::Request<axum::body::Body>| {
                    let route = request
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", |path| path.as_str());
                    tracing::debug_span!("http", method = %request.method(), route)
                },
            ),
        )
        .with_state(state)
}
