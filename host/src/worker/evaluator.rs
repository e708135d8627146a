//! Evaluating `when` and `for_each` expressions outside the store's
//! transactions. A transaction that finds a step with expressions ready
//! (a run starting, a step job finishing, a tick) does not evaluate them: it
//! marks the run (`workflow_runs.evaluate_since`), commits, and announces
//! it to this process's evaluator. The evaluator reads the run without a
//! lock, evaluates on a blocking thread (each expression is bounded by
//! [`crate::workflow::expression::MAX_EVALUATION_COST`]), then advances the run in a
//! short transaction of its own that uses the results. So a tenant's costly
//! expression never holds a row lock, or SQLite's one writer, that another
//! tenant's enqueue or outcome waits for.
//!
//! The mark is durable: a host that crashes between the commit and the
//! evaluation leaves the run marked, and every host's evaluator sweeps for
//! runs marked longer than [`ORPHAN_AFTER`]. Evaluating twice (two hosts
//! sweeping at once) is harmless: a step's data never changes once it is
//! ready, and the transaction uses an evaluation only for a step still
//! waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::model::Timestamp;
use crate::store::{Store, StoreError, StoreEvent};
use crate::workflow::RunId;
use crate::workflow::engine;

/// A run marked this long ago is taken to be orphaned by a crashed host.
/// Longer than any healthy host takes to evaluate what it marked.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(10);
/// How often a host sweeps for orphaned runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Runs one sweep takes at most; a full sweep goes on at once.
const SWEEP_BATCH: u32 = 100;
/// Wait after a database error before sweeping again.
const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// Evaluate, and advance, one run until it waits for nothing. Each round
/// starts at least one step or ends the run, so a run of `n` steps takes at
/// most `n` rounds; the bound below only guards against a bug.
pub async fn settle(store: &dyn Store, run: RunId, now: Timestamp) -> Result<(), StoreError> {
    for _ in 0..=crate::workflow::definition::MAX_STEPS {
        let Some(needed) = store.run_evaluations_needed(run).await? else {
            // Not waiting (another host was first, or it was cancelled).
            return Ok(());
        };
        // Bounded, but milliseconds of CPU: not on the async threads. (With
        // nothing needed, the advance below just clears a stale mark.)
        let evaluated = match tokio::task::spawn_blocking(move || engine::evaluate(&needed)).await {
            Ok(evaluated) => evaluated,
            Err(e) => {
                // A bug in the interpreter, not the tenant's doing: the run
                // stays marked and the sweep tries again.
                tracing::error!(%run, error = %e, "evaluating a run's expressions panicked");
                return Ok(());
            }
        };
        if !store.run_advance_evaluated(run, evaluated, now).await? {
            return Ok(());
        }
    }
    tracing::error!(%run, "a run kept asking for evaluations; left marked for the sweep");
    Ok(())
}

/// Settle every run marked at `since` or before (a sweep). Returns how many
/// runs it took.
pub async fn settle_marked(
    store: &dyn Store,
    since: Timestamp,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let runs = store.runs_awaiting_evaluation(since, SWEEP_BATCH).await?;
    for &run in &runs {
        settle(store, run, now).await?;
    }
    Ok(runs.len())
}

/// Start the evaluator of one host, until `stop`: the runs this process
/// marks, as it announces them, and a sweep for orphaned ones. It listens
/// before this returns, so no run marked afterwards waits for the sweep.
pub fn spawn(store: Arc<dyn Store>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let events = store.subscribe();
    tokio::spawn(run(store, events, stop))
}

async fn run(
    store: Arc<dyn Store>,
    mut events: tokio::sync::broadcast::Receiver<StoreEvent>,
    stop: CancellationToken,
) {
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let result = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(StoreEvent::RunAwaitsEvaluation(run)) => {
                    settle(store.as_ref(), run, chrono::Utc::now()).await
                }
                // Announcements were lost: sweep everything marked.
                Err(RecvError::Lagged(_)) => sweep_now(store.as_ref(), Duration::ZERO).await,
                Err(RecvError::Closed) => return,
                Ok(_) => Ok(()),
            },
            _ = sweep.tick() => sweep_now(store.as_ref(), ORPHAN_AFTER).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "evaluating workflow expressions failed; the sweep retries");
            tokio::select! {
                _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Settle runs marked at least `age` ago, batch after batch.
async fn sweep_now(store: &dyn Store, age: Duration) -> Result<(), StoreError> {
    loop {
        let now = chrono::Utc::now();
        let since = now - chrono::Duration::from_std(age).unwrap_or_default();
        if settle_marked(store, since, now).await? < SWEEP_BATCH as usize {
            return Ok(());
        }
    }
}
