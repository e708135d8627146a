//! Progress reports of running attempts, on their way to the store.
//!
//! A guest may call `host.progress` on every iteration of a loop, so reports
//! are not written one by one: each running job keeps only its latest
//! report, and one task writes whatever is pending in one batch, at most once
//! per [`PROGRESS_FLUSH_INTERVAL`]. The database sees at most a few writes a
//! second per host however chatty the guests are. The last report of an
//! attempt travels with its outcome instead (see [`crate::model::Finish`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::model::{JobId, ProgressUpdate};
use crate::runtime::ProgressSink;
use crate::store::Store;

/// Shortest time between two progress writes of one host. Bounds the write
/// load chatty guests put on the database; live progress lags by this much.
pub const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct ProgressBoard {
    pending: Mutex<HashMap<JobId, ProgressUpdate>>,
    wake: Notify,
}

impl ProgressBoard {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, ProgressUpdate>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sink an attempt's sandbox calls on each report: it only replaces
    /// the job's pending report (the guest is waiting on it).
    pub fn sink(self: &Arc<Self>, job_id: JobId, lease_token: uuid::Uuid) -> ProgressSink {
        let board = self.clone();
        Arc::new(move |progress| {
            board.pending().insert(
                job_id,
                ProgressUpdate {
                    job_id,
                    lease_token,
                    progress: progress.clone(),
                },
            );
            board.wake.notify_one();
        })
    }

    /// The attempt under `lease_token` is over: its outcome carries its
    /// last report. A report of a newer attempt of the job stays.
    pub fn forget(&self, job_id: JobId, lease_token: uuid::Uuid) {
        super::remove_own(&mut self.pending(), job_id, |update| {
            update.lease_token == lease_token
        });
    }

    /// Write pending reports until `stop` fires.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = stop.cancelled() => return,
            }
            let batch: Vec<ProgressUpdate> = self.pending().drain().map(|(_, u)| u).collect();
            if let Err(e) = store.job_progress(&batch).await {
                // Progress is advisory: the next report (or the outcome) carries on.
                tracing::warn!(error = %e, jobs = batch.len(), "recording progress failed");
            }
            tokio::select! {
                () = tokio::time::sleep(PROGRESS_FLUSH_INTERVAL) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
