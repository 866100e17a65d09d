//! The one error type of the HTTP API, rendered as RFC 9457
//! `application/problem+json` with a stable `type` per kind of problem.
//! 5xx responses hide their cause from the caller and log it instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use crate::fields::FieldError;
use crate::fields::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Not a failure: the saved answer to a request made before with the
    /// same `Idempotency-Key`, sent again as it was. A variant here so that
    /// `?` ends the handler with it.
    #[error("the saved response of an earlier identical request")]
    Replayed(Box<Response>),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    BadRequest { slug: &'static str, detail: String },
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    Conflict { slug: &'static str, detail: String },
    /// 410: the thing existed and is gone for good (an expired link).
    #[error("{detail}")]
    Gone { slug: &'static str, detail: String },
    #[error("{detail}")]
    Unprocessable { slug: &'static str, detail: String },
    /// 422 naming each offending field (a key unknown to the order, say).
    #[error("{detail}")]
    UnprocessableFields {
        slug: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("too many requests for this token; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body must be JSON, sent with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 503: the database (or broker) cannot be reached right now; the
    /// request changed nothing and may be sent again.
    #[error(
        "the service is briefly unavailable (its database cannot be reached); retry after {retry_after_secs} s"
    )]
    Unavailable { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub use crate::store::is_unavailable;

const RETRY_AFTER_UNAVAILABLE: u64 = 2;

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }

    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Replayed(response) => (response.status(), "replayed"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::BadRequest { slug, .. } => (StatusCode::BAD_REQUEST, slug),
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "validation"),
            ApiError::Conflict { slug, .. } => (StatusCode::CONFLICT, slug),
            ApiError::Gone { slug, .. } => (StatusCode::GONE, slug),
            ApiError::Unprocessable { slug, .. } => (StatusCode::UNPROCESSABLE_ENTITY, slug),
            ApiError::UnprocessableFields { slug, .. } => (StatusCode::UNPROCESSABLE_ENTITY, slug),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large")
            }
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// A broken field rule, from the intake or a domain module: 400 naming
/// each field.
impl From<Invalid> for ApiError {
    fn from(Invalid(errors): Invalid) -> ApiError {
        ApiError::Validation(errors)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> ApiError {
        if is_unavailable(&error) {
            tracing::warn!(%error, "the database is unreachable; answering 503");
            return ApiError::Unavailable {
                retry_after_secs: RETRY_AFTER_UNAVAILABLE,
            };
        }
        ApiError::Internal(error.into())
    }
}

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

pub fn problem_type(slug: &str) -> String {
    format!("urn:fulfil:problem:{slug}")
}

/// Gives an error answered without a body by the framework itself (405,
/// say) the problem+json body every error has, keeping its headers
/// (`Allow`).
pub async fn bare_errors_as_problems(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("this route does not take this method; it takes {allowed}")
        }
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let slug = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        _ => "http-error",
    };
    let problem = Problem {
        problem_type: problem_type(slug),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        errors: None,
    };
    let body = serde_json::to_vec(&problem).expect("a problem serialises");
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Replayed(response) = self {
            return *response;
        }
        // A lost database found deep inside a unit of work is still a 503.
        let unreachable = match &self {
            ApiError::Internal(error) => crate::store::unavailable_in(error),
            _ => false,
        };
        if unreachable {
            tracing::warn!("the database is unreachable; answering 503");
            return ApiError::Unavailable {
                retry_after_secs: RETRY_AFTER_UNAVAILABLE,
            }
            .into_response();
        }
        let (status, slug) = self.status_and_slug();
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let problem = Problem {
            problem_type: problem_type(slug),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match &self {
                ApiError::Validation(errors) | ApiError::UnprocessableFields { errors, .. } => {
                    Some(errors.clone())
                }
                _ => None,
            },
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after_secs }
            | ApiError::Unavailable { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}
