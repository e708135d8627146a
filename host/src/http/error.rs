//! The one error shape of the API: `{"error": {"code", "message"}}` with a
//! fitting status. 4xx are the client's business and are not logged as
//! errors; 5xx hide internals from the client and are logged.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{1}")]
    BadRequest(&'static str, String),
    /// 401: no key, or a key Corral does not know.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid key of the wrong kind (an admin key on tenant routes, or the reverse).
    #[error("{0}")]
    Forbidden(String),
    /// 404: nothing by that name for this key.
    #[error("{0}")]
    NotFound(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not of a type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 405: the route exists, but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed, but breaks a rule.
    #[error("{1}")]
    Unprocessable(&'static str, String),
    /// 429: over a rate or size quota; `Retry-After` says in how many
    /// seconds trying again may succeed.
    #[error("{1}")]
    TooManyRequests(&'static str, String, u64),
    /// 503: not ready (the database is away); `Retry-After` is
    /// [`UNAVAILABLE_RETRY_AFTER_SECS`].
    #[error("{0}")]
    Unavailable(String),
    /// 503: the host is at a limit of its own (compiles at once); try again
    /// after `Retry-After` seconds.
    #[error("{0}")]
    Busy(String, u64),
    /// 408: the request did not arrive (or was not answered) in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 500: a fault of ours; the detail is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

/// `Retry-After` of a 503 for a database that does not answer: long enough
/// that a crowd of retrying clients does not add to the outage, short enough
/// to notice a restart.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    /// Seconds for `Retry-After`: every 429 and 503 carries one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests(_, _, seconds) | ApiError::Busy(_, seconds) => Some(*seconds),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
            ),
            ApiError::Unprocessable(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::TooManyRequests(code, ..) => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Busy(..) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(m) => ApiError::NotFound(m),
            // A request body that names a plugin the tenant lacks breaks a
            // rule (422); it is not a missing route.
            StoreError::UnknownPlugin(m) => ApiError::Unprocessable("unknown_plugin", m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::Unprocessable("invalid", m),
            StoreError::InvalidDefinition(e) => {
                ApiError::Unprocessable("invalid_workflow", e.to_string())
            }
            StoreError::OverQuota(m) => ApiError::Unprocessable("over_quota", m),
            StoreError::QueueFull(m) => ApiError::TooManyRequests(
                "queue_full",
                m,
                super::quotas::QUEUE_FULL_RETRY_AFTER_SECS,
            ),
            StoreError::RateLimited { per_minute, at } => {
                super::quotas::rate_limited(per_minute, at)
            }
            StoreError::KeyReused(m) => ApiError::Unprocessable("idempotency_key_reused", m),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "the database is unavailable");
                ApiError::Unavailable("the database cannot be reached".into())
            }
            StoreError::Failed(e) => ApiError::Internal(format!("database: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error answering a request");
        }
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
