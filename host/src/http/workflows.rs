//! Workflows and their runs, as a tenant sees them (docs/api.md, "Workflows";
//! docs/workflows.md).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantKey;
use super::openapi::{ErrorBody, Refusals};
use super::{ApiError, AppState};
use crate::model::QuotaCaps;
use crate::store::{NewRun, RunCancel, RunFilter, StoreError};
use crate::workflow::{RunState, Workflow, WorkflowRun, WorkflowSpec};
use corral_client::api::{RunList, WorkflowList};

/// A definition the store refused names its problem: 422 `invalid_workflow`.
fn definition_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(m) => ApiError::Unprocessable("invalid_workflow", m),
        other => other.into(),
    }
}

/// `PUT /v1/workflows/{name}`: a new version (201), or the latest when it is
/// the same definition (200). A cycle, an unknown dependency or step, an
/// unknown plugin: 422 naming it, nothing stored.
#[utoipa::path(put, path = "/v1/workflows/{name}", operation_id = "put_workflow", tag = "workflows",
    request_body = WorkflowSpec,
    params(("name" = String, Path, description = "The workflow's name: 1-63 characters of a-z, 0-9, _ and -")),
    responses((status = 201, description = "A new version", body = Workflow),
              (status = 200, description = "The latest version, identical to this definition", body = Workflow),
              (status = 409, description = "Changed at the same time by another request; send it again", body = ErrorBody),
              Refusals))]
pub async fn put(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    super::JsonBody(spec): super::JsonBody<WorkflowSpec>,
) -> Result<super::Saved<Workflow>, ApiError> {
    // A step's job is held to the quotas like any job (and capped again at
    // claim, should the quotas be lowered later).
    let caps = key.quotas.attempt_caps();
    for step in &spec.steps {
        if let Some(why) = caps.refusal(None, None, step.timeout_ms) {
            return Err(ApiError::Unprocessable(
                "over_limit",
                format!("step `{}`: {why}", step.name),
            ));
        }
    }
    let (workflow, created) = state
        .store
        .workflow_insert(&key.tenant, &name, &spec, chrono::Utc::now())
        .await
        .map_err(definition_error)?;
    Ok(super::Saved {
        created,
        location: super::path_of(&["v1", "workflows", &name]),
        body: workflow,
    })
}

/// `GET /v1/workflows`: the latest version of each.
#[utoipa::path(get, path = "/v1/workflows", operation_id = "list_workflows", tag = "workflows",
    responses((status = 200, description = "The latest version of each workflow", body = WorkflowList),
              Refusals))]
pub async fn list(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<WorkflowList>, ApiError> {
    let workflows = state.store.workflow_list(&key.tenant).await?;
    Ok(Json(WorkflowList { workflows }))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A version; the latest when absent.
    version: Option<u32>,
}

/// `GET /v1/workflows/{name}`: the latest version, or `?version=n`.
#[utoipa::path(get, path = "/v1/workflows/{name}", operation_id = "get_workflow", tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name"), VersionQuery),
    responses((status = 200, description = "The definition", body = Workflow), Refusals))]
pub async fn get(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    super::QueryParams(query): super::QueryParams<VersionQuery>,
) -> Result<Json<Workflow>, ApiError> {
    let workflow = state
        .store
        .workflow_get(&key.tenant, &name, query.version)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(match query.version {
                Some(v) => format!("workflow `{name}` has no version {v}"),
                None => format!("no workflow `{name}`"),
            })
        })?;
    Ok(Json(workflow))
}

/// A run to start.
#[derive(Debug, serde::Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The run's input (any JSON value); `{}` when absent.
    #[schema(value_type = Option<serde_json::Value>)]
    input: Option<Box<RawValue>>,
    /// The workflow version to run; the latest when absent.
    version: Option<u32>,
}

/// `POST /v1/workflows/{name}/runs`: 201 with the run; the steps without
/// dependencies have their jobs already. Counts as one job against the
/// tenant's enqueue quotas. With an `Idempotency-Key` seen before, 200 with
/// the first run.
#[utoipa::path(post, path = "/v1/workflows/{name}/runs", operation_id = "start_run", tag = "workflows",
    request_body = CreateRun,
    params(("name" = String, Path, description = "The workflow's name"),
           ("Idempotency-Key" = Option<String>, Header,
            description = "A retried request with the same key and body returns the first run (200); \
                           the same key with another body or workflow is 422 idempotency_key_reused")),
    responses((status = 201, description = "The run", body = WorkflowRun),
              (status = 200, description = "The run first started with this Idempotency-Key", body = WorkflowRun),
              (status = 429, description = "Over max_queued_jobs or enqueue_per_minute", body = ErrorBody),
              Refusals))]
pub async fn start(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    super::JsonBody(body): super::JsonBody<CreateRun>,
) -> Result<super::Saved<WorkflowRun>, ApiError> {
    let route = format!("POST /v1/workflows/{name}/runs");
    let request_key = super::idempotency::request_key(&headers, &route, &body)?;
    let quotas = key.quotas;
    let input = body.input.as_ref().map_or("{}", |raw| raw.get());
    let admission = super::quotas::admit(&state, &key.tenant, &quotas, 1).await?;
    let outcome = state
        .store
        .run_start(
            &key.tenant,
            &NewRun {
                workflow: &name,
                version: body.version,
                input,
                schedule: None,
                key: request_key.as_ref(),
            },
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) => ApiError::Unprocessable("invalid", m),
            other => other.into(),
        });
    admission
        .done(&state, u64::from(matches!(outcome, Ok((_, true)))))
        .await;
    let (run, created) = outcome?;
    Ok(super::Saved {
        created,
        location: super::path_of(&["v1", "workflow-runs", &run.id.to_string()]),
        body: run,
    })
}

fn run_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::NotFound(format!("no workflow run `{id}`")))
}

async fn load_run(state: &AppState, tenant: &str, id: &str) -> Result<WorkflowRun, ApiError> {
    state
        .store
        .run_get(tenant, run_id(id)?)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no workflow run `{id}`")))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs in this state.
    #[param(value_type = Option<RunState>)]
    state: Option<String>,
    /// Runs per page, 1 to 500 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/workflow-runs`: newest first; `next_cursor` is there when more remain.
#[utoipa::path(get, path = "/v1/workflow-runs", operation_id = "list_runs", tag = "workflows",
    params(RunListQuery),
    responses((status = 200, description = "A page of runs, newest first", body = RunList), Refusals))]
pub async fn runs(
    State(state): State<AppState>,
    key: TenantKey,
    super::QueryParams(query): super::QueryParams<RunListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let run_state = super::pages::state(query.state.as_deref(), &RunState::ALL, RunState::as_str)?;
    let page = super::pages::Page::of(query.limit, query.cursor.as_deref())?;
    let filter = RunFilter {
        workflow: query.workflow,
        state: run_state,
    };
    let mut runs = state
        .store
        .run_list(&key.tenant, &filter, page.after, page.fetch())
        .await?;
    let next_cursor = page.next_cursor(&mut runs, |r| r.id);
    Ok(Json(RunList { runs, next_cursor }))
}

/// `GET /v1/workflow-runs/{id}`: the run, each step's state, job, result and error.
#[utoipa::path(get, path = "/v1/workflow-runs/{id}", operation_id = "get_run", tag = "workflows",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "The run and its steps", body = WorkflowRun), Refusals))]
pub async fn run(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRun>, ApiError> {
    Ok(Json(load_run(&state, &key.tenant, &id).await?))
}

/// `GET /v1/workflow-runs/{id}/diagram`: Mermaid `graph TD` text, one
/// class per step state.
#[utoipa::path(get, path = "/v1/workflow-runs/{id}/diagram", operation_id = "get_run_diagram",
    tag = "workflows",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "Mermaid flowchart text", body = String,
               content_type = "text/plain; charset=utf-8"),
              Refusals))]
pub async fn diagram(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), ApiError> {
    let run = load_run(&state, &key.tenant, &id).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        crate::workflow::diagram::mermaid(&run),
    ))
}

/// `POST /v1/workflow-runs/{id}/cancel`: 200 with the run, every unfinished
/// step cancelled (running attempts are stopped); 409 if it already finished.
#[utoipa::path(post, path = "/v1/workflow-runs/{id}/cancel", operation_id = "cancel_run",
    tag = "workflows",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "The run, cancelled", body = WorkflowRun),
              (status = 409, description = "The run has already finished", body = ErrorBody),
              Refusals))]
pub async fn cancel(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRun>, ApiError> {
    match state
        .store
        .run_cancel(&key.tenant, run_id(&id)?, chrono::Utc::now())
        .await?
    {
        RunCancel::NotFound => return Err(ApiError::NotFound(format!("no workflow run `{id}`"))),
        RunCancel::AlreadyFinished(run_state) => {
            return Err(ApiError::Conflict(format!(
                "workflow run `{id}` has already finished ({run_state})"
            )));
        }
        RunCancel::Cancelled => {}
    }
    Ok(Json(load_run(&state, &key.tenant, &id).await?))
}

/// A run's event stream re-reads the run at most this often, however fast
/// its steps change. Threat: a fan-out of thousands of elements finishing
/// would make each watching stream read (and send) the whole run per
/// element.
const RUN_EVENTS_MIN_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// One Server-Sent Event of `GET /v1/workflow-runs/{id}/events`, as the
/// OpenAPI document describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunEvent {
    /// Always `run`.
    event: String,
    /// JSON: the whole run, as `GET /v1/workflow-runs/{id}` answers.
    data: String,
}

/// Where a run's event stream is.
struct RunCursor {
    state: AppState,
    tenant: String,
    id: crate::workflow::RunId,
    watch: super::streams::Watch,
    /// The run to send first.
    first: Option<WorkflowRun>,
    /// The run as last sent.
    last: Option<WorkflowRun>,
    read_at: Option<tokio::time::Instant>,
}

fn run_event(run: &WorkflowRun) -> super::streams::Event {
    super::streams::Event::default()
        .event("run")
        .data(serde_json::to_string(run).unwrap_or_default())
}

impl super::streams::Cursor for RunCursor {
    async fn next(&mut self) -> Option<super::streams::Event> {
        if self
            .last
            .as_ref()
            .is_some_and(|run| run.state.is_terminal())
        {
            return None;
        }
        if let Some(run) = self.first.take() {
            let event = run_event(&run);
            self.last = Some(run);
            return Some(event);
        }
        loop {
            self.watch.next().await?;
            if let Some(at) = self.read_at {
                tokio::time::sleep_until(at + RUN_EVENTS_MIN_GAP).await;
            }
            // Notes that came while waiting are covered by this one read.
            self.watch.drain();
            self.read_at = Some(tokio::time::Instant::now());
            let run = match self.state.store.run_get(&self.tenant, self.id).await {
                Ok(Some(run)) => run,
                Ok(None) | Err(_) => return None,
            };
            if self.last.as_ref() != Some(&run) {
                let event = run_event(&run);
                self.last = Some(run);
                return Some(event);
            }
        }
    }
}

/// `GET /v1/workflow-runs/{id}/events`: Server-Sent Events until the run
/// ends: a `run` event with the whole run first and after every change of
/// its steps or state (at most four a second), driven by the database's
/// notifications whichever host runs the steps. Counts against the same
/// caps as a job's event stream.
#[utoipa::path(get, path = "/v1/workflow-runs/{id}/events", operation_id = "run_events", tag = "workflows",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, content_type = "text/event-stream", body = RunEvent,
               description = "`event: run` (data: the run) first and on every change; \
                              the stream ends after the run ends"),
              (status = 429, description = "The tenant holds MAX_STREAMS_PER_TENANT streams on this host", body = ErrorBody),
              (status = 503, description = "The host holds MAX_STREAMS streams", body = ErrorBody),
              Refusals))]
pub async fn events(
    State(state): State<AppState>,
    key: TenantKey,
    Path(id): Path<String>,
) -> Result<super::streams::EventStream, ApiError> {
    let run_id = run_id(&id)?;
    // Subscribe before reading, so no change falls between the two.
    let watch = state.watchers.watch(
        state.store.as_ref(),
        &key.tenant,
        super::streams::Topic::Run(run_id),
    )?;
    let run = load_run(&state, &key.tenant, &id).await?;
    Ok(super::streams::sse(RunCursor {
        state,
        tenant: key.tenant,
        id: run_id,
        watch,
        first: Some(run),
        last: None,
        read_at: None,
    }))
}
