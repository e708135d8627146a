//! Replay or cancel many jobs by filter (`POST /v1/jobs/replay`,
//! `POST /v1/jobs/cancel`): the dead-letter view's bulk buttons, the CLI's
//! `job replay --filter` and `job cancel --filter`. Each request acts on at
//! most [`MAX_BULK_JOBS`] jobs and answers a cursor to continue; a dry run
//! counts what the filter matches and changes nothing.

use axum::Json;
use axum::extract::State;

use super::auth::TenantKey;
use super::openapi::{ErrorBody, Refusals};
use super::{ApiError, AppState, JsonBody};
use crate::model::JobState;
use crate::store::{CancelResult, JobFilter};
use corral_client::api::{BulkOutcome, BulkRequest, JobSelector};

/// Jobs one bulk request acts on at most. Threat: one request replaying a
/// million jobs would hold the database (and the request) for minutes; the
/// client continues with the answer's cursor instead.
pub const MAX_BULK_JOBS: u32 = 1000;

/// Which jobs a bulk action touches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Replay,
    Cancel,
}

/// The store's filter for a selector, with the action's rule on states.
fn filter_of(selector: JobSelector, action: Action) -> Result<JobFilter, ApiError> {
    let refuse = |message: String| ApiError::Unprocessable("invalid_filter", message);
    let mut filter = JobFilter {
        state: selector.state,
        queue: super::jobs::filter_text("queue", selector.queue).map_err(refuse)?,
        plugin: super::jobs::filter_text("plugin", selector.plugin).map_err(refuse)?,
        created_after: selector.created_after,
        created_before: selector.created_before,
        error_contains: super::jobs::filter_text("error_contains", selector.error_contains)
            .map_err(refuse)?,
        ..JobFilter::default()
    };
    match action {
        Action::Replay => {
            let state = *filter.state.get_or_insert(JobState::Dead);
            if !state.is_terminal() {
                return Err(refuse(format!(
                    "replay takes finished jobs: state must be dead, completed or cancelled, not {}",
                    state.as_str()
                )));
            }
            // Replaying twice would run each job twice: a job some job
            // already replays is skipped.
            filter.unreplayed = true;
        }
        Action::Cancel => match filter.state {
            Some(state) if state.is_terminal() => {
                return Err(refuse(format!(
                    "cancel takes unfinished jobs: state {} has finished",
                    state.as_str()
                )));
            }
            Some(_) => {}
            None => filter.unfinished = true,
        },
    }
    Ok(filter)
}

/// The request's page, checked.
fn page_of(request: &BulkRequest) -> Result<super::pages::Page, ApiError> {
    let limit = request.limit.unwrap_or(MAX_BULK_JOBS);
    if !(1..=MAX_BULK_JOBS).contains(&limit) {
        return Err(ApiError::Unprocessable(
            "invalid_body",
            format!("limit must be between 1 and {MAX_BULK_JOBS}"),
        ));
    }
    super::pages::Page::at(limit, request.cursor.as_deref())
}

/// The dry run's answer: the count, nothing done.
async fn dry_run(
    state: &AppState,
    tenant: &str,
    filter: &JobFilter,
) -> Result<Json<BulkOutcome>, ApiError> {
    let count = state.store.job_count(tenant, filter).await?;
    Ok(Json(BulkOutcome {
        matched: Some(count.matched),
        matched_is_lower_bound: count.lower_bound,
        ..BulkOutcome::default()
    }))
}

/// `POST /v1/jobs/replay`: replay up to `limit` finished jobs that match the
/// filter (dead ones unless it names another state) and no job replays yet,
/// each as `POST /v1/jobs/{id}/replay` would; all or nothing under the
/// tenant's quotas.
#[utoipa::path(post, path = "/v1/jobs/replay", operation_id = "replay_jobs", tag = "jobs",
    request_body = BulkRequest,
    responses((status = 200, description = "The jobs replayed and their replays, or the dry run's count", body = BulkOutcome),
              (status = 429, description = "Over max_queued_jobs or enqueue_per_minute: nothing replayed", body = ErrorBody),
              Refusals))]
pub async fn replay(
    State(state): State<AppState>,
    key: TenantKey,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let page = page_of(&request)?;
    let mut filter = filter_of(request.filter, Action::Replay)?;
    if request.dry_run {
        return dry_run(&state, &key.tenant, &filter).await;
    }
    filter.bodies = true;
    let listed = state
        .store
        .job_list(&key.tenant, &filter, page.after, page.fetch())
        .await?;
    let (originals, next_cursor) = super::jobs::cut_page(page, true, listed);
    let new: Vec<crate::model::NewJob> = originals
        .iter()
        .map(|original| crate::model::NewJob {
            // Two bulk replays at once replay each job once: the second
            // finds the first's replay under this key.
            idempotency_key: Some(format!("replay:{}", original.id)),
            ..crate::model::NewJob::replay_of(original)
        })
        .collect();
    let replays = if new.is_empty() {
        Vec::new()
    } else {
        let quotas = key.quotas;
        super::jobs::enqueue_admitted(&state, &key.tenant, &quotas, &new, None).await?
    };
    Ok(Json(BulkOutcome {
        jobs: originals.iter().map(|j| j.id).collect(),
        replays: replays.iter().map(|i| i.id).collect(),
        next_cursor,
        ..BulkOutcome::default()
    }))
}

/// `POST /v1/jobs/cancel`: cancel up to `limit` unfinished jobs that match
/// the filter, in one transaction, each as `POST /v1/jobs/{id}/cancel`
/// would (a waiting job at once, a running one stopped by its host within a
/// second).
#[utoipa::path(post, path = "/v1/jobs/cancel", operation_id = "cancel_jobs", tag = "jobs",
    request_body = BulkRequest,
    responses((status = 200, description = "The jobs cancelled (or being stopped), or the dry run's count", body = BulkOutcome),
              Refusals))]
pub async fn cancel(
    State(state): State<AppState>,
    key: TenantKey,
    JsonBody(request): JsonBody<BulkRequest>,
) -> Result<Json<BulkOutcome>, ApiError> {
    let page = page_of(&request)?;
    let filter = filter_of(request.filter, Action::Cancel)?;
    if request.dry_run {
        return dry_run(&state, &key.tenant, &filter).await;
    }
    let listed = state
        .store
        .job_list(&key.tenant, &filter, page.after, page.fetch())
        .await?;
    let (jobs, next_cursor) = super::jobs::cut_page(page, false, listed);
    let ids: Vec<_> = jobs.iter().map(|job| job.id).collect();
    let results = state
        .store
        .job_cancel_many(&key.tenant, &ids, chrono::Utc::now())
        .await?;
    // A job that finished since it was listed is left as it is.
    let cancelled = ids
        .into_iter()
        .zip(results)
        .filter(|(_, result)| matches!(result, CancelResult::Cancelled | CancelResult::Requested))
        .map(|(id, _)| id)
        .collect();
    Ok(Json(BulkOutcome {
        jobs: cancelled,
        next_cursor,
        ..BulkOutcome::default()
    }))
}
