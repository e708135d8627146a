//! The HTTP API (docs/api.md). `router(state)` builds the routes apart from any
//! socket, so tests drive it with `oneshot`; `serve` binds it.
//!
//! - [`error`]: the one error shape;
//! - [`auth`]: bearer keys, tenant and admin scopes;
//! - [`tenants`]: tenants and keys (admin);
//! - [`plugins`]: plugin upload and versions (tenant);
//! - [`jobs`]: jobs (tenant);
//! - [`bulk`]: replay or cancel many jobs by filter (tenant);
//! - [`summaries`]: the overview and dead-letter groups (tenant);
//! - [`ui`]: the dashboard at `/ui` and its session cookie;
//! - [`workflows`]: workflows and their runs (tenant);
//! - [`schedules`]: cron schedules (tenant);
//! - [`quotas`]: the enqueue quotas (429);
//! - [`idempotency`]: the `Idempotency-Key` of creating requests;
//! - [`pages`]: paged listings (limit, cursor, state filters);
//! - [`openapi`]: the OpenAPI document and `/docs`;
//! - [`ops`]: `/metrics`, and the routes of a worker-only host;
//! - [`request_span`]: a span and a closing log line per request.

pub mod admin_keys;
pub mod auth;
pub mod auth_failures;
pub mod bulk;
pub mod error;
pub mod idempotency;
pub mod jobs;
pub mod launch;
pub mod linger;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod plugins;
pub mod quotas;
pub mod request_span;
pub mod schedules;
pub mod secrets;
pub mod server;
pub mod streams;
pub mod summaries;
pub mod tenants;
pub mod ui;
pub mod workflows;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use error::ApiError;

use crate::store::Store;

/// Largest JSON request body. Bounds what one request can make the host
/// buffer (plugin uploads are streamed separately, with their own cap).
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Validates and compiles uploads (and shares its compiled plugins with a worker in the same process).
    pub runtime: Arc<crate::runtime::Runtime>,
    /// SHA-256 of `CORRAL_ADMIN_TOKEN`, when set.
    pub admin_token_hash: Option<Arc<str>>,
    /// Recent counts of waiting jobs per tenant (the `max_queued_jobs` quota).
    pub queued: Arc<quotas::QueuedCounts>,
    /// Shared with the worker of the same process; served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<auth_failures::AuthFailures>,
    /// The job event streams open on this host.
    pub watchers: Arc<streams::Watchers>,
    /// Seals tenant secrets; none turns the secret routes off (503).
    pub secret_key: Option<Arc<crate::secrets::SecretKey>>,
    /// The hosts plugins' allow-lists may name (`--outbound-hosts`).
    pub outbound_hosts: Arc<crate::runtime::outbound::HostLimit>,
    /// The one-time sign-in code of `corral serve --open`.
    pub launch: Arc<launch::LaunchCode>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<crate::runtime::Runtime>,
        admin_token_hash: Option<Arc<str>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> AppState {
        AppState {
            store,
            runtime,
            admin_token_hash,
            queued: Arc::default(),
            metrics,
            auth_failures: Arc::default(),
            watchers: Arc::default(),
            secret_key: None,
            outbound_hosts: Arc::default(),
            launch: Arc::default(),
        }
    }
}

/// A JSON body whose rejections (bad JSON, wrong shape, wrong content type)
/// use the API's error shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "unsupported_content_type",
                "send the body as JSON with `Content-Type: application/json`".into(),
            )),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::Unprocessable("invalid_body", e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest("invalid_json", e.body_text())),
        }
    }
}

/// Query parameters whose rejections use the API's error shape.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> axum::extract::FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))
    }
}

/// What a create or create-or-replace answers: 201 with `Location` (the
/// path of what was made) when something new was stored, else 200 (a
/// replace, or the same request answered again), with the resource.
pub struct Saved<T> {
    pub created: bool,
    pub location: String,
    pub body: T,
}

impl<T> Saved<T> {
    /// A 201 at `location`.
    pub fn created(location: String, body: T) -> Saved<T> {
        Saved {
            created: true,
            location,
            body,
        }
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Saved<T> {
    fn into_response(self) -> axum::response::Response {
        let mut response = Json(self.body).into_response();
        if self.created {
            *response.status_mut() = axum::http::StatusCode::CREATED;
            if let Ok(location) = axum::http::HeaderValue::from_str(&self.location) {
                response
                    .headers_mut()
                    .insert(axum::http::header::LOCATION, location);
            }
        }
        response
    }
}

/// `/a/b/c`: segments are ids and names that passed their rules by the
/// time something was stored (a-z, 0-9, `_`, `-`), so none needs escaping.
pub fn path_of(segments: &[&str]) -> String {
    segments.iter().map(|s| format!("/{s}")).collect()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(ops::metrics))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/v1/tenants/{id}",
            get(tenants::get)
                .patch(tenants::update)
                .delete(tenants::delete),
        )
        .route(
            "/v1/tenants/{id}/keys",
            post(tenants::create_key).get(tenants::list_keys),
        )
        .route(
            "/v1/admin-keys",
            get(admin_keys::list).post(admin_keys::create),
        )
        .route("/v1/admin-keys/{key_id}", delete(admin_keys::revoke))
        .route(
            "/v1/tenants/{id}/keys/{key_id}",
            delete(tenants::revoke_key),
        )
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            post(plugins::upload)
                .get(plugins::versions)
                .patch(plugins::update),
        )
        .route(
            "/v1/plugins/{name}/{version}",
            get(plugins::get).delete(plugins::delete),
        )
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/batch", post(jobs::create_batch))
        .route("/v1/jobs/replay", post(bulk::replay))
        .route("/v1/jobs/cancel", post(bulk::cancel))
        .route("/v1/overview", get(summaries::overview))
        .route("/v1/dead-letters", get(summaries::dead_letters))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/replay", post(jobs::replay))
        .route("/v1/jobs/{id}/attempts", get(jobs::attempts))
        .route("/v1/jobs/{id}/logs", get(jobs::logs))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/workflows", get(workflows::list))
        .route(
            "/v1/workflows/{name}",
            put(workflows::put).get(workflows::get),
        )
        .route("/v1/workflows/{name}/runs", post(workflows::start))
        .route("/v1/workflow-runs", get(workflows::runs))
        .route("/v1/workflow-runs/{id}", get(workflows::run))
        .route("/v1/workflow-runs/{id}/diagram", get(workflows::diagram))
        .route("/v1/workflow-runs/{id}/cancel", post(workflows::cancel))
        .route("/v1/workflow-runs/{id}/events", get(workflows::events))
        .route("/v1/secrets", get(secrets::list))
        .route(
            "/v1/secrets/{name}",
            put(secrets::put).delete(secrets::delete),
        )
        .route("/v1/schedules", get(schedules::list))
        .route(
            "/v1/schedules/{name}",
            put(schedules::put)
                .get(schedules::get)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/v1/schedules/{name}/resume", post(schedules::resume))
        .merge(openapi::routes())
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(axum::middleware::from_fn(answer_panics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_span::trace,
        ))
        .with_state(state)
}

/// A handler that panics (a bug: none is known) answers 500 in the error
/// shape, logged, instead of dropping the client's connection without a word.
pub async fn answer_panics(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::Internal(format!("a handler panicked: {what}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(axum::middleware::from_fn(super::answer_panics));
        let response = app
            .oneshot(
                axum::http::Request::builder()
                    .uri("/boom")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
    }
}

/// The process is alive.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = openapi::Status)))]
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The database answers and its migrations are applied.
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = openapi::Status),
              (status = 503, description = "Not ready", body = openapi::ErrorBody)))]
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ready().await.map_err(|e| {
        // Anyone may ask: the database's own words (addresses, users,
        // versions) go to the log, not to the caller.
        tracing::warn!(error = %e, "not ready");
        ApiError::Unavailable(
            "not ready: the database does not answer, or its migrations are not applied".into(),
        )
    })?;
    Ok(Json(json!({"status": "ready"})))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this route does not take that method".into())
}
