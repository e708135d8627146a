//! Jobs, as a tenant sees them.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth::TenantKey;
use super::{ApiError, AppState};
use crate::model::{Job, JobState, Timestamp};

/// A job in API responses (API.md, "Jobs"). Input and result are JSON.
#[derive(Debug, Serialize)]
pub struct JobView {
    id: uuid::Uuid,
    plugin: String,
    version: u32,
    digest: String,
    queue: String,
    priority: i32,
    state: JobState,
    input: Box<RawValue>,
    result: Option<Box<RawValue>>,
    error: Option<String>,
    attempt: u32,
    max_attempts: u32,
    run_at: Timestamp,
    created_at: Timestamp,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

/// Stored JSON text as a JSON value (stored text is always valid JSON: it is
/// checked before it is written).
fn raw(text: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(text)
        .map_err(|e| ApiError::Internal(format!("stored JSON does not parse: {e}")))
}

impl JobView {
    pub fn of(job: Job) -> Result<JobView, ApiError> {
        Ok(JobView {
            id: job.id,
            plugin: job.plugin,
            version: job.version,
            digest: job.digest,
            queue: job.queue,
            priority: job.priority,
            state: job.state,
            input: raw(job.input)?,
            result: job.result.map(raw).transpose()?,
            error: job.error,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            run_at: job.run_at,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        })
    }
}

/// Another tenant's job answers 404 like a missing one: ids leak nothing.
pub async fn get(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no job `{id}`"));
    let job_id = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    let job = state
        .store
        .job_get(&key.tenant, job_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(JobView::of(job)?))
}
