//! The enqueue quotas of docs/api.md: `max_queued_jobs` (jobs waiting at once),
//! checked before anything is stored, and `enqueue_per_minute`, counted by the
//! store with the jobs' insert ([`crate::store::RateLimit`]; a workflow run's
//! here, before it starts). A refusal stores and counts nothing. Both answer
//! 429; the rate limit says when to come back (`Retry-After`).
//!
//! - **Rate**: a per-tenant counter in the database for the current minute
//!   (a fixed window), taken atomically, so it holds across API hosts. A
//!   burst of up to twice the rate can straddle a minute boundary.
//! - **Queued jobs**: counted in the database (the count stops at the
//!   quota, so its cost is bounded), at most once per [`QUEUED_COUNT_TTL`]
//!   per tenant and host; in between, the host adds what it enqueued itself.
//!   Only other hosts' enqueues of that last second can pass the quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};

use super::{ApiError, AppState};
use crate::model::Quotas;

/// How long a tenant's count of waiting jobs is trusted. A tenant close to a
/// large quota would otherwise make every enqueue count up to a million rows.
pub const QUEUED_COUNT_TTL: Duration = Duration::from_secs(1);

/// `Retry-After` of a full queue: when room frees depends on the jobs ahead,
/// which nobody can tell; 5 s keeps a polling client to a dozen count reads a
/// minute while jobs drain.
pub const QUEUE_FULL_RETRY_AFTER_SECS: u64 = 5;

/// Recent counts of waiting jobs, per tenant.
#[derive(Debug, Default)]
pub struct QueuedCounts {
    counts: Mutex<HashMap<String, (Instant, u64)>>,
}

impl QueuedCounts {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u64)>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, tenant: &str) -> Option<u64> {
        self.counts()
            .get(tenant)
            .filter(|(at, _)| at.elapsed() < QUEUED_COUNT_TTL)
            .map(|(_, n)| *n)
    }

    fn add(&self, tenant: &str, jobs: u64) {
        if let Some((_, n)) = self.counts().get_mut(tenant) {
            *n = n.saturating_add(jobs);
        }
    }
}

/// Jobs let through the quotas, to be enqueued now. Call [`Admission::done`]
/// with the outcome of the enqueue.
#[must_use]
pub struct Admission {
    tenant: String,
    jobs: u64,
    at: chrono::DateTime<Utc>,
    /// Whether the jobs were counted against the enqueue rate here (else
    /// the store counts them as it inserts them, [`admit_to_insert`]).
    counted: bool,
}

/// Check `jobs` new jobs of `tenant` against its quotas, counting them
/// against its enqueue rate.
pub async fn admit(
    state: &AppState,
    tenant: &str,
    quotas: &Quotas,
    jobs: u64,
) -> Result<Admission, ApiError> {
    let mut admission = admit_to_insert(state, tenant, quotas, jobs).await?;
    let per_minute = u64::from(quotas.enqueue_per_minute);
    if !state
        .store
        .enqueue_rate_take(tenant, jobs, per_minute, admission.at)
        .await?
    {
        return Err(rate_limited(per_minute, admission.at));
    }
    admission.counted = true;
    Ok(admission)
}

/// Check `jobs` new jobs of `tenant` against its queue and its rate's size,
/// leaving the rate's count to the insert: pass
/// [`crate::store::RateLimit`] to [`crate::store::Store::job_insert_keyed`]
/// (on SQLite that spares an enqueue a second wait for the one writer).
pub async fn admit_to_insert(
    state: &AppState,
    tenant: &str,
    quotas: &Quotas,
    jobs: u64,
) -> Result<Admission, ApiError> {
    let max_queued = quotas.max_queued_jobs;
    let queued = match state.queued.fresh(tenant) {
        Some(n) => n,
        None => {
            let n = state
                .store
                .job_waiting_count(tenant, max_queued.saturating_add(1))
                .await?;
            state
                .queued
                .counts()
                .insert(tenant.to_string(), (Instant::now(), n));
            n
        }
    };
    if queued.saturating_add(jobs) > max_queued {
        return Err(ApiError::TooManyRequests(
            "queue_full",
            format!(
                "the tenant has {queued} job(s) waiting and its max_queued_jobs is {max_queued}; \
                 {jobs} more would pass it"
            ),
            QUEUE_FULL_RETRY_AFTER_SECS,
        ));
    }
    let per_minute = u64::from(quotas.enqueue_per_minute);
    if jobs > per_minute {
        return Err(ApiError::TooManyRequests(
            "rate_limited",
            format!(
                "{jobs} jobs in one request is more than the tenant's enqueue_per_minute of \
                 {per_minute}; split the batch"
            ),
            60,
        ));
    }
    Ok(Admission {
        tenant: tenant.to_string(),
        jobs,
        at: Utc::now(),
        counted: false,
    })
}

/// The answer to an enqueue over the tenant's `enqueue_per_minute` in the
/// minute holding `at`: come back when the next minute starts.
pub fn rate_limited(per_minute: u64, at: chrono::DateTime<Utc>) -> ApiError {
    let retry_after = 60 - u64::from(at.second());
    ApiError::TooManyRequests(
        "rate_limited",
        format!(
            "the tenant's enqueue_per_minute of {per_minute} is used up for this minute; \
             retry in {retry_after} s"
        ),
        retry_after,
    )
}

impl Admission {
    /// The enqueue ended having stored `stored` of the admitted jobs (none
    /// when it failed, fewer when an idempotency key answered jobs stored
    /// before): count those as waiting and, if they were counted here, give
    /// the rest's share of the rate back.
    pub async fn done(self, state: &AppState, stored: u64) {
        state.queued.add(&self.tenant, stored);
        let unused = self.jobs.saturating_sub(stored);
        if unused == 0 || !self.counted {
            return;
        }
        if let Err(e) = state
            .store
            .enqueue_rate_return(&self.tenant, unused, self.at)
            .await
        {
            tracing::warn!(tenant = %self.tenant, error = %e, "could not give back an enqueue-rate share");
        }
    }
}
