//! What the dashboard's overview and dead-letter view read: a tenant's jobs
//! summed up, each read bounded whatever the number of jobs
//! (`store::listings`).

use axum::Json;
use axum::extract::State;

use super::auth::TenantKey;
use super::openapi::Refusals;
use super::{ApiError, AppState};
use corral_client::api::{DeadLetters, Overview};

/// `GET /v1/overview`: jobs waiting and running per state, how late the
/// oldest waiting job is, and the jobs finished in each of the last 60
/// minutes.
#[utoipa::path(get, path = "/v1/overview", operation_id = "overview", tag = "jobs",
    responses((status = 200, description = "The tenant's jobs at a glance", body = Overview), Refusals))]
pub async fn overview(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<Overview>, ApiError> {
    let overview = state
        .store
        .job_overview(&key.tenant, chrono::Utc::now())
        .await?;
    Ok(Json(Overview {
        live: overview
            .live
            .into_iter()
            .map(|(state, n)| (state.as_str().to_string(), n))
            .collect(),
        oldest_due: overview.oldest_due,
        running_by_host: overview.running_by_host,
        finished_per_minute: overview.finished_per_minute,
    }))
}

/// `GET /v1/dead-letters`: the tenant's dead jobs that no job replays yet,
/// grouped by plugin and error, the largest groups first.
#[utoipa::path(get, path = "/v1/dead-letters", operation_id = "dead_letters", tag = "jobs",
    responses((status = 200, description = "Dead jobs grouped by plugin and error", body = DeadLetters), Refusals))]
pub async fn dead_letters(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<DeadLetters>, ApiError> {
    let groups = state.store.job_dead_groups(&key.tenant).await?;
    Ok(Json(DeadLetters { groups }))
}
