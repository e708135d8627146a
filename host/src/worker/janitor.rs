//! The janitor: turns leases that expired (their host died or lost the
//! database) into `lease_expired` attempts, which use up an attempt like any
//! failure, and prunes old finished jobs. Every host runs one; their writes
//! are fenced by lease token, so two janitors never record one loss twice.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::WorkerConfig;
use super::retry;
use crate::metrics::Metrics;
use crate::model::{Attempt, Finish, OutcomeKind, Timestamp};
use crate::store::{Store, StoreError};

/// Expired leases handled per pass: bounds one pass's work.
const EXPIRED_PER_PASS: u32 = 500;
/// Finished jobs deleted per statement: bounds the time locks are held.
const PRUNE_BATCH: u32 = 1000;

pub async fn run(
    store: Arc<dyn Store>,
    config: WorkerConfig,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut expiry = tokio::time::interval(config.janitor_interval);
    let mut retention = tokio::time::interval(config.retention_interval);
    for tick in [&mut expiry, &mut retention] {
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = expiry.tick() => {
                match expire(store.as_ref(), &config, Utc::now()).await {
                    Ok((finishes, applied)) => {
                        for (finish, _) in finishes.iter().zip(applied).filter(|(_, a)| *a) {
                            metrics.attempt_recorded(finish.attempt.outcome, finish.transition.state());
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "janitor: expiring leases failed"),
                }
            }
            _ = retention.tick() => {
                let before = Utc::now() - config.retention;
                if let Err(e) = prune(store.as_ref(), before).await {
                    tracing::warn!(error = %e, "janitor: pruning finished jobs failed");
                }
                let unseen = Utc::now() - super::presence::HOST_FORGET;
                if let Err(e) = store.host_prune(unseen).await {
                    tracing::warn!(error = %e, "janitor: forgetting dead hosts failed");
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Record a `lease_expired` attempt for every running job whose lease
/// expired before `now`, and retry or kill the job. Returns how many.
pub async fn expire_leases(
    store: &dyn Store,
    config: &WorkerConfig,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let (_, applied) = expire(store, config, now).await?;
    Ok(applied.iter().filter(|a| **a).count())
}

/// The outcomes written by one pass, and which of them applied.
async fn expire(
    store: &dyn Store,
    config: &WorkerConfig,
    now: Timestamp,
) -> Result<(Vec<Finish>, Vec<bool>), StoreError> {
    let expired = store.job_expired_leases(now, EXPIRED_PER_PASS).await?;
    if expired.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let finishes: Vec<Finish> = expired
        .into_iter()
        .map(|lease| {
            let message = format!(
                "lease expired: host {} stopped renewing it (it died or lost the database)",
                lease.leased_by
            );
            Finish {
                progress: None,
                workflow_run_id: lease.workflow_run_id,
                job_id: lease.job_id,
                lease_token: lease.lease_token,
                transition: retry::transition(
                    OutcomeKind::LeaseExpired,
                    None,
                    Some(&message),
                    lease.attempt,
                    lease.max_attempts,
                    retry::RetryClock {
                        now,
                        backoff: &config.backoff,
                        unit: fastrand::f64(),
                    },
                ),
                attempt: Attempt {
                    attempt: lease.attempt,
                    outcome: OutcomeKind::LeaseExpired,
                    message: Some(message),
                    started_at: lease.started_at.min(now),
                    finished_at: now,
                    fuel_consumed: 0,
                    peak_memory_bytes: 0,
                    host_id: lease.leased_by,
                    log: String::new(),
                    log_dropped_bytes: 0,
                    http: None,
                },
            }
        })
        .collect();
    let applied = store.job_finish(&finishes).await?;
    let count = applied.iter().filter(|a| **a).count();
    if count > 0 {
        tracing::info!(count, "janitor: expired leases recorded as lease_expired");
    }
    Ok((finishes, applied))
}

/// Delete finished jobs older than `before`, in batches. Returns how many.
pub async fn prune(store: &dyn Store, before: Timestamp) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = store.job_prune(before, PRUNE_BATCH).await?;
        total += deleted;
        if deleted < u64::from(PRUNE_BATCH) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
