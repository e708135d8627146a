//! What the dashboard's overview and dead-letter view read: a tenant's jobs
//! summed up, each read bounded whatever the number of jobs
//! (`store::listings`).

use axum::Json;
use axum::extract::State;

use super::auth::TenantKey;
use super::openapi::Refusals;
use super::{ApiError, AppState};
use crate::store::HostSeen;
use corral_client::api::{DeadLetters, HostAlive, Overview};

/// `GET /v1/overview`: jobs waiting and running per state, how late the
/// oldest waiting job is, the jobs finished in each of the last 60
/// minutes, and the worker hosts alive.
#[utoipa::path(get, path = "/v1/overview", operation_id = "overview", tag = "jobs",
    responses((status = 200, description = "The tenant's jobs at a glance", body = Overview), Refusals))]
pub async fn overview(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<Overview>, ApiError> {
    let now = chrono::Utc::now();
    let overview = state.store.job_overview(&key.tenant, now).await?;
    let seen = state
        .store
        .host_list(now - crate::worker::presence::HOST_ALIVE)
        .await?;
    let hosts = hosts_alive(seen, &overview.running_by_host);
    Ok(Json(Overview {
        hosts,
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

/// The hosts alive, each with the tenant's attempts running on it, and
/// the hosts running its attempts that the registry does not list (one
/// that stopped beating but still holds leases, or runs an older version).
fn hosts_alive(
    seen: Vec<HostSeen>,
    running: &std::collections::BTreeMap<String, u64>,
) -> Vec<HostAlive> {
    let mut hosts: std::collections::BTreeMap<String, HostAlive> = seen
        .into_iter()
        .map(|h| {
            let alive = HostAlive {
                host_id: h.host_id.clone(),
                concurrency: Some(h.concurrency),
                started_at: Some(h.started_at),
                seen_at: Some(h.seen_at),
                running: 0,
            };
            (h.host_id, alive)
        })
        .collect();
    for (host_id, &n) in running {
        hosts
            .entry(host_id.clone())
            .or_insert_with(|| HostAlive {
                host_id: host_id.clone(),
                concurrency: None,
                started_at: None,
                seen_at: None,
                running: 0,
            })
            .running = n;
    }
    hosts.into_values().collect()
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
