//! Cron schedules, as a tenant sees them (docs/api.md, "Schedules";
//! docs/schedules.md).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::auth::TenantKey;
use super::openapi::Refusals;
use super::{ApiError, AppState};
use crate::store::StoreError;
use crate::workflow::schedule::{Schedule, ScheduleSpec};
use corral_client::api::ScheduleList;

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no schedule `{name}`"))
}

/// `PUT /v1/schedules/{name}`: create (201) or replace (200) a schedule.
/// Its next tick is the first after now; a bad cron expression, time zone,
/// target or input: 422 naming it, nothing stored.
#[utoipa::path(put, path = "/v1/schedules/{name}", operation_id = "put_schedule", tag = "schedules",
    request_body = ScheduleSpec,
    params(("name" = String, Path, description = "The schedule's name: 1-63 characters of a-z, 0-9, _ and -")),
    responses((status = 201, description = "Created", body = Schedule),
              (status = 200, description = "Replaced", body = Schedule),
              Refusals))]
pub async fn put(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    super::JsonBody(spec): super::JsonBody<ScheduleSpec>,
) -> Result<super::Saved<Schedule>, ApiError> {
    let (schedule, created) = state
        .store
        .schedule_put(&key.tenant, &name, &spec, chrono::Utc::now())
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) => ApiError::Unprocessable("invalid_schedule", m),
            other => other.into(),
        })?;
    Ok(super::Saved {
        created,
        location: super::path_of(&["v1", "schedules", &name]),
        body: schedule,
    })
}

/// `GET /v1/schedules`: every schedule of the tenant, by name.
#[utoipa::path(get, path = "/v1/schedules", operation_id = "list_schedules", tag = "schedules",
    responses((status = 200, description = "The schedules", body = ScheduleList), Refusals))]
pub async fn list(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = state.store.schedule_list(&key.tenant).await?;
    Ok(Json(ScheduleList { schedules }))
}

/// `GET /v1/schedules/{name}`: the schedule, its next tick and its latest fired ticks.
#[utoipa::path(get, path = "/v1/schedules/{name}", operation_id = "get_schedule", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses((status = 200, description = "The schedule", body = Schedule), Refusals))]
pub async fn get(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    let schedule = state
        .store
        .schedule_get(&key.tenant, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(schedule))
}

/// `DELETE /v1/schedules/{name}`: 204; its ticks go with it (the jobs and
/// runs they started stay).
#[utoipa::path(delete, path = "/v1/schedules/{name}", operation_id = "delete_schedule", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses((status = 204, description = "Deleted"), Refusals))]
pub async fn delete(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.schedule_delete(&key.tenant, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}

async fn set_paused(
    state: &AppState,
    tenant: &str,
    name: &str,
    paused: bool,
) -> Result<Json<Schedule>, ApiError> {
    let schedule = state
        .store
        .schedule_pause(tenant, name, paused, chrono::Utc::now())
        .await?
        .ok_or_else(|| not_found(name))?;
    Ok(Json(schedule))
}

/// `POST /v1/schedules/{name}/pause`: it fires nothing until resumed.
#[utoipa::path(post, path = "/v1/schedules/{name}/pause", operation_id = "pause_schedule", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses((status = 200, description = "The paused schedule", body = Schedule), Refusals))]
pub async fn pause(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_paused(&state, &key.tenant, &name, true).await
}

/// `POST /v1/schedules/{name}/resume`: its next tick is the first after now
/// (ticks missed while paused do not fire).
#[utoipa::path(post, path = "/v1/schedules/{name}/resume", operation_id = "resume_schedule", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses((status = 200, description = "The resumed schedule", body = Schedule), Refusals))]
pub async fn resume(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
) -> Result<Json<Schedule>, ApiError> {
    set_paused(&state, &key.tenant, &name, false).await
}
