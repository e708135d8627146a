//! Routes for operators: `/metrics` (Prometheus), and the router a
//! worker-only host serves (`/health`, `/ready`, `/metrics`) so it can be
//! probed and scraped like any other.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// How long a scrape waits for the database's job counts. Prometheus gives
/// a scrape 10 s by default; past this the scrape answers without them
/// (`corral_database_up 0`) rather than fail whole.
const SCRAPE_DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /metrics`: no key, like `/health`. It shows counts, never a
/// tenant's data; bind the port to a private network.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", security(()),
    responses((status = 200, description = "OpenMetrics text (Prometheus scrapes it; docs/operations.md lists every metric)",
               content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let live = match tokio::time::timeout(
        SCRAPE_DATABASE_TIMEOUT,
        state.store.job_live_counts(chrono::Utc::now()),
    )
    .await
    {
        Ok(Ok(live)) => Some(live),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: reading job counts failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                timeout = ?SCRAPE_DATABASE_TIMEOUT,
                "metrics: the database did not answer in time"
            );
            None
        }
    };
    let body = state.metrics.render(live.as_ref(), &state.runtime);
    (
        StatusCode::OK,
        [(CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// What a host without the API serves on its port.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(super::health))
        .route("/ready", get(super::ready))
        .route("/metrics", get(metrics))
        .fallback(super::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::request_span::trace,
        ))
        .with_state(state)
}
