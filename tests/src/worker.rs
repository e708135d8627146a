//! An in-process worker for tests: real store, the shared runtime, short
//! intervals so retries and wake-ups happen quickly.

use std::sync::Arc;
use std::time::Duration;

use corral::metrics::Metrics;
use corral::worker::{Backoff, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use crate::db::TestDb;
use crate::runtime_arc;

/// How long a worker may take to stop: generous, for a loaded machine.
const STOP_PATIENCE: Duration = Duration::from_secs(120);

/// A worker configuration for tests: 8 slots, quick heartbeats and
/// janitor, backoff of 10 to 100 ms.
pub fn config(host: &str) -> WorkerConfig {
    WorkerConfig {
        host_id: host.into(),
        concurrency: 8,
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_millis(200),
        poll_interval: Duration::from_millis(500),
        janitor_interval: Duration::from_millis(200),
        grace: Duration::from_secs(30),
        backoff: Backoff {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
        },
        secret_key: Some(crate::secret_key()),
        ..WorkerConfig::default()
    }
}

/// A worker (with the expression evaluator every host runs) on the test's
/// tokio runtime until [`Host::stop`].
pub struct Host {
    worker: Arc<Worker>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    evaluator: tokio::task::JoinHandle<()>,
}

impl Host {
    pub fn start(db: &TestDb, config: WorkerConfig) -> Host {
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let worker = Worker::with_metrics(
            db.store.clone(),
            Arc::clone(runtime_arc()),
            config,
            metrics.clone(),
        );
        let task = tokio::spawn(worker.clone().run(shutdown.clone()));
        let evaluator = corral::worker::evaluator::spawn(db.store.clone(), shutdown.clone());
        Host {
            worker,
            metrics,
            shutdown,
            task,
            evaluator,
        }
    }

    /// The host's worker (to follow its claims, say).
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The host's metrics (kept by the caller, they outlive [`Host::stop`]).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(STOP_PATIENCE, self.task)
            .await
            .expect("worker stops")
            .expect("worker task");
        self.evaluator.await.expect("evaluator task");
    }
}
