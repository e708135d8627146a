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
    /// The job this one replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<uuid::Uuid>,
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
            replay_of: job.replay_of,
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

/// A job to create (API.md, `POST /v1/jobs`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    plugin: String,
    version: Option<u32>,
    /// Any JSON value, kept as the client wrote it.
    input: Box<RawValue>,
    queue: Option<String>,
    priority: Option<i32>,
    run_at: Option<Timestamp>,
    max_attempts: Option<u32>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    jobs: Vec<CreateJob>,
}

/// The header that makes a retried create return the first job.
const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Turn API requests into store jobs, checking them against the tenant's
/// quotas (limit caps answer 422 and store nothing).
async fn new_jobs(
    state: &AppState,
    key: &TenantKey,
    jobs: Vec<CreateJob>,
    idempotency_key: Option<String>,
) -> Result<Vec<crate::model::NewJob>, ApiError> {
    let quotas = key.quotas(state).await?;
    let many = jobs.len() > 1;
    jobs.into_iter()
        .enumerate()
        .map(|(i, job)| {
            let at = |m: String| if many { format!("job {i}: {m}") } else { m };
            if let Some(timeout) = job.timeout_ms
                && timeout > quotas.max_timeout_ms
            {
                return Err(ApiError::Unprocessable(
                    "over_limit",
                    at(format!(
                        "timeout_ms {timeout} is over the tenant's max_timeout_ms of {}",
                        quotas.max_timeout_ms
                    )),
                ));
            }
            Ok(crate::model::NewJob {
                plugin: job.plugin,
                version: job.version,
                input: job.input.get().to_string(),
                queue: job.queue.unwrap_or_else(crate::model::default_queue),
                priority: job.priority.unwrap_or(0),
                run_at: job.run_at,
                max_attempts: job.max_attempts,
                timeout_ms: job.timeout_ms,
                idempotency_key: idempotency_key.clone(),
                replay_of: None,
            })
        })
        .collect()
}

/// Unknown plugins in a request body are a broken rule (422), not a missing route.
fn enqueue_error(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::NotFound(m) => ApiError::Unprocessable("unknown_plugin", m),
        other => other.into(),
    }
}

/// Enqueue one job and read it back; `created` is false when an
/// idempotency key matched an earlier job (which is the one returned).
async fn enqueue_one(
    state: &AppState,
    tenant: &str,
    job: &[crate::model::NewJob],
) -> Result<(Job, bool), ApiError> {
    let inserted = state
        .store
        .job_insert_batch(tenant, job, chrono::Utc::now())
        .await
        .map_err(enqueue_error)?;
    let first = inserted
        .first()
        .ok_or_else(|| ApiError::Internal("enqueue returned no job".into()))?;
    let stored = state
        .store
        .job_get(tenant, first.id)
        .await?
        .ok_or_else(|| ApiError::Internal("an enqueued job vanished".into()))?;
    Ok((stored, first.created))
}

/// `POST /v1/jobs`: 201 with the job; with an `Idempotency-Key` seen before,
/// 200 with the first job instead.
pub async fn create(
    State(state): State<AppState>,
    key: TenantKey,
    headers: axum::http::HeaderMap,
    super::JsonBody(body): super::JsonBody<CreateJob>,
) -> Result<(axum::http::StatusCode, Json<JobView>), ApiError> {
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::BadRequest(
                        "invalid_header",
                        "Idempotency-Key must be visible ASCII".into(),
                    )
                })?
                .to_string(),
        ),
    };
    let jobs = new_jobs(&state, &key, vec![body], idempotency_key).await?;
    let (job, created) = enqueue_one(&state, &key.tenant, &jobs).await?;
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, Json(JobView::of(job)?)))
}

/// `POST /v1/jobs/batch`: up to 1000 jobs, all or nothing; 201 with their ids in order.
pub async fn create_batch(
    State(state): State<AppState>,
    key: TenantKey,
    super::JsonBody(body): super::JsonBody<CreateBatch>,
) -> Result<(axum::http::StatusCode, Json<serde_json::Value>), ApiError> {
    if body.jobs.is_empty() {
        return Err(ApiError::Unprocessable(
            "invalid",
            "a batch needs at least one job".into(),
        ));
    }
    let jobs = new_jobs(&state, &key, body.jobs, None).await?;
    let inserted = state
        .store
        .job_insert_batch(&key.tenant, &jobs, chrono::Utc::now())
        .await
        .map_err(enqueue_error)?;
    let ids: Vec<uuid::Uuid> = inserted.iter().map(|i| i.id).collect();
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::json!({ "ids": ids })),
    ))
}

fn job_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no job `{id}`")))
}

/// `POST /v1/jobs/{id}/cancel`: 200 with the job (a waiting job is cancelled
/// at once; a running one is stopped by its host within a second), 409 if
/// it already finished.
pub async fn cancel(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    use crate::store::CancelResult;
    let job_id = job_id(&id)?;
    match state
        .store
        .job_cancel(&key.tenant, job_id, chrono::Utc::now())
        .await?
    {
        CancelResult::NotFound => return Err(ApiError::NotFound(format!("no job `{id}`"))),
        CancelResult::AlreadyFinished => {
            return Err(ApiError::Conflict(format!(
                "job `{id}` has already finished"
            )));
        }
        CancelResult::Cancelled | CancelResult::Requested => {}
    }
    let job = state
        .store
        .job_get(&key.tenant, job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job `{id}`")))?;
    Ok(Json(JobView::of(job)?))
}

/// One attempt in the timeline (its log is under `/logs`).
#[derive(Debug, Serialize)]
struct AttemptView {
    attempt: u32,
    outcome: crate::model::OutcomeKind,
    message: Option<String>,
    started_at: Timestamp,
    finished_at: Timestamp,
    duration_ms: i64,
    fuel_consumed: u64,
    peak_memory_bytes: u64,
    host_id: String,
}

async fn attempts_of(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<Vec<crate::model::Attempt>, ApiError> {
    let job_id = job_id(id)?;
    if state.store.job_get(tenant, job_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no job `{id}`")));
    }
    Ok(state.store.attempt_list(tenant, job_id).await?)
}

/// `GET /v1/jobs/{id}/attempts`: every attempt with outcome, times, fuel, memory.
pub async fn attempts(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let attempts: Vec<AttemptView> = attempts_of(&state, &key.tenant, &id)
        .await?
        .into_iter()
        .map(|a| AttemptView {
            duration_ms: (a.finished_at - a.started_at).num_milliseconds(),
            attempt: a.attempt,
            outcome: a.outcome,
            message: a.message,
            started_at: a.started_at,
            finished_at: a.finished_at,
            fuel_consumed: a.fuel_consumed,
            peak_memory_bytes: a.peak_memory_bytes,
            host_id: a.host_id,
        })
        .collect();
    Ok(Json(serde_json::json!({ "attempts": attempts })))
}

/// `GET /v1/jobs/{id}/logs`: the captured guest log of each attempt.
pub async fn logs(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let logs: Vec<serde_json::Value> = attempts_of(&state, &key.tenant, &id)
        .await?
        .into_iter()
        .map(|a| {
            serde_json::json!({
                "attempt": a.attempt,
                "log": a.log,
                "truncated": a.log_dropped_bytes > 0,
                "dropped_bytes": a.log_dropped_bytes,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "logs": logs })))
}

/// Jobs per page unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;
/// Most jobs per page: bounds one response.
const MAX_PAGE: u32 = 500;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    queue: Option<String>,
    plugin: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/jobs`: newest first; `next_cursor` is there when more remain.
pub async fn list(
    State(state): State<AppState>,
    key: TenantKey,
    super::QueryParams(query): super::QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let job_state = query
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::BadRequest(
                    "invalid_query",
                    format!("unknown state `{s}`; one of {}", names.join(", ")),
                )
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = query
        .cursor
        .as_deref()
        .map(|c| {
            uuid::Uuid::parse_str(c).map_err(|_| {
                ApiError::BadRequest("invalid_query", "cursor is not one this API gave".into())
            })
        })
        .transpose()?;
    let filter = crate::store::JobFilter {
        state: job_state,
        queue: query.queue,
        plugin: query.plugin,
    };
    // One more than asked tells whether another page exists.
    let mut jobs = state
        .store
        .job_list(&key.tenant, &filter, after, limit + 1)
        .await?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let next_cursor = if more {
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    let jobs = jobs
        .into_iter()
        .map(JobView::of)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(
        serde_json::json!({ "jobs": jobs, "next_cursor": next_cursor }),
    ))
}

/// `POST /v1/jobs/{id}/replay`: 201 a new job with the same plugin version,
/// input, queue, priority and limits, linked to the original by `replay_of`.
pub async fn replay(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<(axum::http::StatusCode, Json<JobView>), ApiError> {
    let original = state
        .store
        .job_get(&key.tenant, job_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job `{id}`")))?;
    let new = crate::model::NewJob {
        plugin: original.plugin,
        version: Some(original.version),
        input: original.input,
        queue: original.queue,
        priority: original.priority,
        run_at: None,
        max_attempts: Some(original.max_attempts),
        timeout_ms: original.timeout_ms,
        idempotency_key: None,
        replay_of: Some(original.id),
    };
    let (job, _) = enqueue_one(&state, &key.tenant, &[new]).await?;
    Ok((axum::http::StatusCode::CREATED, Json(JobView::of(job)?)))
}

/// What the event stream of one job remembers between events.
struct EventCursor {
    state: AppState,
    tenant: String,
    id: uuid::Uuid,
    events: tokio::sync::broadcast::Receiver<crate::store::StoreEvent>,
    last: Option<JobState>,
    /// The first event is the job as it is now; the stream ends after a terminal state.
    first: Option<Job>,
    done: bool,
}

fn state_event(job: &Job) -> axum::response::sse::Event {
    axum::response::sse::Event::default().event("state").data(
        serde_json::json!({ "id": job.id, "state": job.state, "attempt": job.attempt, "error": job.error }).to_string(),
    )
}

/// `GET /v1/jobs/{id}/events`: Server-Sent Events, one `state` event per
/// change of the job's state (the first is its state now), until it reaches
/// a terminal state. Driven by the database's notifications, so it follows
/// the job whichever host runs it.
pub async fn events(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    let id = job_id(&id)?;
    // Subscribe before reading, so no change falls between the two.
    let events = state.store.subscribe();
    let job = state
        .store
        .job_get(&key.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job `{id}`")))?;
    let cursor = EventCursor {
        state,
        tenant: key.tenant,
        id,
        events,
        last: None,
        first: Some(job),
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        if let Some(job) = c.first.take() {
            c.last = Some(job.state);
            c.done = job.state.is_terminal();
            return Some((Ok(state_event(&job)), c));
        }
        loop {
            use tokio::sync::broadcast::error::RecvError;
            // Notifications of one job arrive in commit order, so each names
            // the state the job moved to then, even if it has moved on since.
            let announced = match c.events.recv().await {
                Ok(crate::store::StoreEvent::JobState(id, state)) if id == c.id => Some(state),
                Ok(_) => continue,
                // Missed events: the database says where the job is now.
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return None,
            };
            if announced.is_some() && announced == c.last {
                continue;
            }
            let mut job = match c.state.store.job_get(&c.tenant, c.id).await {
                Ok(Some(job)) => job,
                Ok(None) | Err(_) => return None,
            };
            if let Some(state) = announced {
                job.state = state;
            }
            if Some(job.state) != c.last {
                c.last = Some(job.state);
                c.done = job.state.is_terminal();
                return Some((Ok(state_event(&job)), c));
            }
        }
    });
    Ok(axum::response::sse::Sse::new(stream).keep_alive(axum::response::sse::KeepAlive::default()))
}
