//! Jobs, as a tenant sees them.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantKey;
use super::openapi::{ErrorBody, Refusals};
use super::{ApiError, AppState};
use crate::model::QuotaCaps;
use crate::model::{Job, JobState};
use crate::store::RequestKey;
use corral_client::api::{Attempt as AttemptView, AttemptList, AttemptLog, JobList, LogList};

/// A job in API responses: the client crate's type, so the two cannot drift.
pub use corral_client::api::Job as JobView;
pub use corral_client::api::{BatchCreated, CreateBatch, CreateJob};

/// Stored JSON text as a JSON value (stored text is always valid JSON: it is
/// checked before it is written).
fn raw(text: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(text)
        .map_err(|e| ApiError::Internal(format!("stored JSON does not parse: {e}")))
}

/// A stored job as the API shows it.
pub fn view(job: Job) -> Result<JobView, ApiError> {
    Ok(JobView {
        id: job.id,
        plugin: job.plugin,
        version: job.version,
        digest: job.digest,
        queue: job.queue,
        priority: job.priority,
        state: job.state,
        input: Some(raw(job.input)?),
        result: job.result.map(raw).transpose()?,
        error: job.error,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        run_at: job.run_at,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        progress: job.progress,
        replay_of: job.replay_of,
        workflow_run_id: job.workflow_run_id,
        workflow_step: job.workflow_step,
    })
}

/// A job of a listing: with its input and result only if asked.
fn listed(mut job: Job, include: Include) -> Result<JobView, ApiError> {
    // Without bodies the store read no input ("" here): build the view
    // from a placeholder and leave the field out.
    let input = std::mem::replace(&mut job.input, "null".into());
    let result = job.result.take();
    let mut view = view(job)?;
    view.input = include.input.then(|| raw(input)).transpose()?;
    view.result = if include.result {
        result.map(raw).transpose()?
    } else {
        None
    };
    Ok(view)
}

/// What a listing adds to each job (`include=input,result`).
#[derive(Debug, Clone, Copy, Default)]
struct Include {
    input: bool,
    result: bool,
}

impl Include {
    fn parse(given: Option<&str>) -> Result<Include, ApiError> {
        let mut include = Include::default();
        for part in given.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
            match part {
                "input" => include.input = true,
                "result" => include.result = true,
                other => {
                    return Err(ApiError::BadRequest(
                        "invalid_query",
                        format!(
                            "include: unknown `{other}`; a comma-separated list of input, result"
                        ),
                    ));
                }
            }
        }
        Ok(include)
    }
}

/// Another tenant's job answers 404 like a missing one: ids leak nothing.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "get_job", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView), Refusals))]
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
    Ok(Json(view(job)?))
}

/// Turn API requests into store jobs, checking them against the tenant's
/// quotas (limit caps answer 422 and store nothing).
fn new_jobs(
    key: &TenantKey,
    jobs: Vec<CreateJob>,
    idempotency_key: Option<&str>,
) -> Result<(Vec<crate::model::NewJob>, crate::model::Quotas), ApiError> {
    let quotas = key.quotas;
    let many = jobs.len() > 1;
    let jobs = jobs
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let at = |m: String| if many { format!("job {i}: {m}") } else { m };
            if let Some(why) = quotas.attempt_caps().refusal(None, None, job.timeout_ms) {
                return Err(ApiError::Unprocessable("over_limit", at(why)));
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
                idempotency_key: idempotency_key.map(str::to_string),
                replay_of: None,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((jobs, quotas))
}

/// Enqueue jobs within the tenant's quotas, under the request's key if any.
/// `created` is false when the key answered jobs stored before.
pub(super) async fn enqueue_admitted(
    state: &AppState,
    tenant: &str,
    quotas: &crate::model::Quotas,
    jobs: &[crate::model::NewJob],
    key: Option<&RequestKey>,
) -> Result<Vec<crate::store::Inserted>, ApiError> {
    let admission =
        super::quotas::admit_to_insert(state, tenant, quotas, jobs.len() as u64).await?;
    let rate = crate::store::RateLimit {
        per_minute: u64::from(quotas.enqueue_per_minute),
    };
    let outcome = state
        .store
        .job_insert_keyed(tenant, jobs, key, Some(rate), chrono::Utc::now())
        .await
        .map_err(ApiError::from);
    let stored = outcome
        .as_ref()
        .map_or(0, |inserted| inserted.iter().filter(|i| i.created).count());
    admission.done(state, stored as u64).await;
    outcome
}

/// The one job an enqueue stored (or an idempotency key answered), as
/// stored, and whether this request created it.
async fn read_back(
    state: &AppState,
    tenant: &str,
    inserted: &[crate::store::Inserted],
) -> Result<(Job, bool), ApiError> {
    let first = inserted
        .first()
        .ok_or_else(|| ApiError::Internal("enqueue returned no job".into()))?;
    let job = state
        .store
        .job_get(tenant, first.id)
        .await?
        .ok_or_else(|| ApiError::Internal("an enqueued job vanished".into()))?;
    Ok((job, first.created))
}

/// `POST /v1/jobs`: 201 with the job; with an `Idempotency-Key` seen before,
/// 200 with the first job instead.
#[utoipa::path(post, path = "/v1/jobs", operation_id = "create_job", tag = "jobs", request_body = CreateJob,
    params(("Idempotency-Key" = Option<String>, Header,
            description = "A retried request with the same key and body returns the first job (200); \
                           the same key with another body is 422 idempotency_key_reused")),
    responses((status = 201, description = "The new job", body = JobView),
              (status = 200, description = "The job first created with this Idempotency-Key", body = JobView),
              (status = 429, description = "Over max_queued_jobs or enqueue_per_minute", body = ErrorBody),
              Refusals))]
pub async fn create(
    State(state): State<AppState>,
    key: TenantKey,
    headers: axum::http::HeaderMap,
    super::JsonBody(body): super::JsonBody<CreateJob>,
) -> Result<super::Saved<JobView>, ApiError> {
    let request_key = super::idempotency::request_key(&headers, "POST /v1/jobs", &body)?;
    let (jobs, quotas) = new_jobs(&key, vec![body], request_key.as_ref().map(RequestKey::key))?;
    let inserted =
        enqueue_admitted(&state, &key.tenant, &quotas, &jobs, request_key.as_ref()).await?;
    let (job, created) = read_back(&state, &key.tenant, &inserted).await?;
    Ok(super::Saved {
        created,
        location: super::path_of(&["v1", "jobs", &job.id.to_string()]),
        body: view(job)?,
    })
}

/// `POST /v1/jobs/batch`: up to 1000 jobs, all or nothing; 201 with their
/// ids in order; with an `Idempotency-Key` seen before, 200 with the first
/// batch's ids instead.
#[utoipa::path(post, path = "/v1/jobs/batch", operation_id = "create_jobs", tag = "jobs", request_body = CreateBatch,
    params(("Idempotency-Key" = Option<String>, Header,
            description = "A retried request with the same key and body returns the first batch's ids (200); \
                           the same key with another body is 422 idempotency_key_reused")),
    responses((status = 201, description = "The jobs' ids, in order", body = BatchCreated),
              (status = 200, description = "The ids of the batch first created with this Idempotency-Key", body = BatchCreated),
              (status = 429, description = "Over max_queued_jobs or enqueue_per_minute", body = ErrorBody),
              Refusals))]
pub async fn create_batch(
    State(state): State<AppState>,
    key: TenantKey,
    headers: axum::http::HeaderMap,
    super::JsonBody(body): super::JsonBody<CreateBatch>,
) -> Result<super::Saved<BatchCreated>, ApiError> {
    if body.jobs.is_empty() {
        return Err(ApiError::Unprocessable(
            "invalid",
            "a batch needs at least one job".into(),
        ));
    }
    let request_key = super::idempotency::request_key(&headers, "POST /v1/jobs/batch", &body)?;
    let (jobs, quotas) = new_jobs(&key, body.jobs, None)?;
    let inserted =
        enqueue_admitted(&state, &key.tenant, &quotas, &jobs, request_key.as_ref()).await?;
    let created = inserted.iter().any(|i| i.created);
    let ids: Vec<uuid::Uuid> = inserted.iter().map(|i| i.id).collect();
    // Many jobs, no one resource: `Location` is the list they are in.
    Ok(super::Saved {
        created,
        location: super::path_of(&["v1", "jobs"]),
        body: BatchCreated { ids },
    })
}

fn job_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no job `{id}`")))
}

/// `POST /v1/jobs/{id}/cancel`: 200 with the job (a waiting job is cancelled
/// at once; a running one is stopped by its host within a second), 409 if
/// it already finished.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", operation_id = "cancel_job", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The job, cancelled or being stopped", body = JobView),
              (status = 409, description = "The job has already finished", body = ErrorBody),
              Refusals))]
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
    Ok(Json(view(job)?))
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
#[utoipa::path(get, path = "/v1/jobs/{id}/attempts", operation_id = "list_attempts", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "Every attempt, first first", body = AttemptList),
              Refusals))]
pub async fn attempts(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<AttemptList>, ApiError> {
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
            http: a.http,
        })
        .collect();
    Ok(Json(AttemptList { attempts }))
}

/// `GET /v1/jobs/{id}/logs`: the captured guest log of each attempt.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", operation_id = "list_logs", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "The log of each attempt", body = LogList),
              Refusals))]
pub async fn logs(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<LogList>, ApiError> {
    let logs = attempts_of(&state, &key.tenant, &id)
        .await?
        .into_iter()
        .map(|a| AttemptLog {
            attempt: a.attempt,
            log: a.log,
            truncated: a.log_dropped_bytes > 0,
            dropped_bytes: a.log_dropped_bytes,
        })
        .collect();
    Ok(Json(LogList { logs }))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
    /// Only jobs of this plugin.
    plugin: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_after: Option<crate::model::Timestamp>,
    /// Only jobs created before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_before: Option<crate::model::Timestamp>,
    /// Only jobs whose error contains this text (case-sensitive, at most 200 bytes).
    error: Option<String>,
    /// Jobs per page, 1 to 500 (default 50). A filtered page examines at
    /// most 10,000 jobs: it may come back short, even empty, with a
    /// `next_cursor` to continue.
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// What to add to each job: `input`, `result` or `input,result`
    /// (left out by default). A page with them ends early, with a cursor,
    /// once they reach 16 MiB together.
    include: Option<String>,
}

/// `GET /v1/jobs`: newest first; `next_cursor` is there when more remain.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "list_jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, description = "A page of jobs, newest first", body = JobList),
              Refusals))]
pub async fn list(
    State(state): State<AppState>,
    key: TenantKey,
    super::QueryParams(query): super::QueryParams<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let job_state = super::pages::state(query.state.as_deref(), &JobState::ALL, JobState::as_str)?;
    let page = super::pages::Page::of(query.limit, query.cursor.as_deref())?;
    let include = Include::parse(query.include.as_deref())?;
    let filter = crate::store::JobFilter {
        state: job_state,
        queue: filter_text("queue", query.queue)
            .map_err(|m| ApiError::BadRequest("invalid_query", m))?,
        plugin: filter_text("plugin", query.plugin)
            .map_err(|m| ApiError::BadRequest("invalid_query", m))?,
        created_after: query.created_after,
        created_before: query.created_before,
        error_contains: filter_text("error", query.error)
            .map_err(|m| ApiError::BadRequest("invalid_query", m))?,
        bodies: include.input || include.result,
        ..crate::store::JobFilter::default()
    };
    let listed_page = state
        .store
        .job_list(&key.tenant, &filter, page.after, page.fetch())
        .await?;
    let (jobs, next_cursor) = cut_page(page, filter.bodies, listed_page);
    let jobs = jobs
        .into_iter()
        .map(|job| listed(job, include))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(JobList { jobs, next_cursor }))
}

/// A page from the store cut to `page`, and the cursor of the next one:
/// after the last job when more remain, or below the last job examined when
/// the store stopped at its bound of rows examined.
pub(super) fn cut_page(
    page: super::pages::Page,
    bodies: bool,
    listed: crate::store::JobPage,
) -> (Vec<Job>, Option<String>) {
    let mut jobs = listed.jobs;
    let next_cursor = if bodies && crate::store::page_cut_by_bytes(&jobs) {
        // Cut short by bytes: the next page starts after the last job read.
        jobs.truncate(page.limit as usize);
        jobs.last().map(|j| j.id.to_string())
    } else {
        page.next_cursor(&mut jobs, |j| j.id)
    };
    let next_cursor = next_cursor.or_else(|| listed.scanned_to.map(|id| id.to_string()));
    (jobs, next_cursor)
}

/// A text filter's value (`queue`, `plugin`, text in the error), or why it
/// is refused: past [`crate::store::MAX_FILTER_TEXT`] bytes (each row
/// examined pays for its length), or holding NUL (which no stored text
/// holds, and PostgreSQL refuses in a parameter). Empty is no filter.
pub(super) fn filter_text(name: &str, text: Option<String>) -> Result<Option<String>, String> {
    match text {
        Some(text) if text.len() > crate::store::MAX_FILTER_TEXT => Err(format!(
            "{name}: at most {} bytes of text to look for",
            crate::store::MAX_FILTER_TEXT
        )),
        Some(text) if text.contains('\0') => Err(format!("{name} holds a NUL character")),
        Some(text) if text.is_empty() => Ok(None),
        text => Ok(text),
    }
}

/// `POST /v1/jobs/{id}/replay`: 201 a new job with the same plugin version,
/// input, queue, priority and limits, linked to the original by `replay_of`.
#[utoipa::path(post, path = "/v1/jobs/{id}/replay", operation_id = "replay_job", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 201, description = "The new job", body = JobView),
              (status = 429, description = "Over max_queued_jobs or enqueue_per_minute", body = ErrorBody),
              Refusals))]
pub async fn replay(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<super::Saved<JobView>, ApiError> {
    let original = state
        .store
        .job_get(&key.tenant, job_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job `{id}`")))?;
    let new = crate::model::NewJob::replay_of(&original);
    let quotas = key.quotas;
    let inserted = enqueue_admitted(&state, &key.tenant, &quotas, &[new], None).await?;
    let (job, _) = read_back(&state, &key.tenant, &inserted).await?;
    Ok(super::Saved::created(
        super::path_of(&["v1", "jobs", &job.id.to_string()]),
        view(job)?,
    ))
}

/// What the event stream of one job remembers between events.
struct EventCursor {
    state: AppState,
    tenant: String,
    id: uuid::Uuid,
    /// This stream's notes about the job (and its place under the caps).
    watch: super::streams::Watch,
    last: Option<JobState>,
    last_progress: Option<crate::model::Progress>,
    /// The first event is the job as it is now; the stream ends after a terminal state.
    first: Option<Job>,
    done: bool,
}

use super::streams::Event as SseEvent;

/// `state`: the whole job, as `GET /v1/jobs/{id}` shows it.
fn state_event(job: Job) -> SseEvent {
    let data = view(job)
        .ok()
        .and_then(|view| serde_json::to_string(&view).ok())
        .unwrap_or_default();
    SseEvent::default().event("state").data(data)
}

/// One Server-Sent Event of `GET /v1/jobs/{id}/events`, as the OpenAPI
/// document describes it (the stream writes these with [`state_event`] and
/// [`progress_event`]).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobEvent {
    event: JobEventKind,
    /// JSON: for `state`, the whole job (as `GET /v1/jobs/{id}` answers);
    /// for `progress`, `{"percent": 0-100, "message": "..."}`.
    data: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum JobEventKind {
    State,
    Progress,
}

/// `progress`: `{"percent", "message"}`.
fn progress_event(progress: &crate::model::Progress) -> SseEvent {
    SseEvent::default()
        .event("progress")
        .data(serde_json::to_string(progress).unwrap_or_default())
}

impl super::streams::Cursor for EventCursor {
    async fn next(&mut self) -> Option<SseEvent> {
        use super::streams::Note;
        if self.done {
            return None;
        }
        if let Some(job) = self.first.take() {
            self.last = Some(job.state);
            self.last_progress = job.progress.clone();
            self.done = job.state.is_terminal();
            return Some(state_event(job));
        }
        loop {
            // Notifications of one job arrive in commit order, so a state
            // notification names the state the job moved to then, even if it
            // has moved on since.
            let (announced, progress) = match self.watch.next().await? {
                Note::State(state) => (Some(state), false),
                Note::Progress => (None, true),
                // Not sent for jobs.
                Note::RunChanged => (None, false),
                // Missed notes: the database says where the job is now.
                Note::Lagged => (None, false),
            };
            if announced.is_some() && announced == self.last {
                continue;
            }
            let mut job = match self.state.store.job_get(&self.tenant, self.id).await {
                Ok(Some(job)) => job,
                Ok(None) | Err(_) => return None,
            };
            if let Some(state) = announced {
                job.state = state;
            }
            if Some(job.state) != self.last {
                self.last = Some(job.state);
                self.last_progress = job.progress.clone();
                self.done = job.state.is_terminal();
                return Some(state_event(job));
            }
            if (progress || announced.is_none())
                && job.progress.is_some()
                && job.progress != self.last_progress
            {
                self.last_progress = job.progress.clone();
                return job.progress.as_ref().map(progress_event);
            }
        }
    }
}

/// `GET /v1/jobs/{id}/events`: Server-Sent Events until the job is
/// terminal: a `state` event with the whole job first and on every change of
/// state, and a `progress` event (`{"percent", "message"}`) whenever its
/// plugin's reported progress is recorded (at most a few times a second).
/// Driven by the database's notifications, whichever host runs the job;
/// at most [`super::streams::MAX_STREAMS_PER_TENANT`] per tenant and
/// [`super::streams::MAX_STREAMS`] per host are open at once.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", operation_id = "job_events", tag = "jobs",
    params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, content_type = "text/event-stream", body = JobEvent,
               description = "`event: state` (data: the job) first and on every change of state; \
                              `event: progress` (data: `{\"percent\", \"message\"}`) on progress; \
                              the stream ends after a terminal state"),
              (status = 429, description = "The tenant holds MAX_STREAMS_PER_TENANT streams on this host", body = ErrorBody),
              (status = 503, description = "The host holds MAX_STREAMS streams", body = ErrorBody),
              Refusals))]
pub async fn events(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<super::streams::EventStream, ApiError> {
    let id = job_id(&id)?;
    // Subscribe before reading, so no change falls between the two.
    let watch = state.watchers.watch(
        state.store.as_ref(),
        &key.tenant,
        super::streams::Topic::Job(id),
    )?;
    let job = state
        .store
        .job_get(&key.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no job `{id}`")))?;
    Ok(super::streams::sse(EventCursor {
        state,
        tenant: key.tenant,
        id,
        watch,
        last: None,
        last_progress: None,
        first: Some(job),
        done: false,
    }))
}
