//! Every request runs inside a span (`method`, `path` as the route template,
//! `request_id`, and `tenant` once `auth` has resolved the key), and ends
//! with one line: status and latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;

/// The header a request id is read from and echoed in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id taken from a client. It is copied into every log line
/// of the request, so a client must not be able to make it bulky.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// A client's id is kept when it is short and plain (letters, digits and
/// `-_.:`), so that it cannot forge log content; otherwise one is generated.
fn client_request_id(request: &Request) -> Option<String> {
    let id = request.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let sane = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    sane.then(|| id.to_string())
}

pub async fn trace(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id =
        client_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let method = request.method().clone();
    // An unmatched request shows its raw path in logs (useful for a 404),
    // but only the route template ever reaches metrics.
    let path = route
        .clone()
        .unwrap_or_else(|| request.uri().path().to_string());
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %path,
        request_id = %request_id,
        tenant = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    state
        .metrics
        .http_request(method.as_str(), route.as_deref(), status);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
