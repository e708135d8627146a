//! `just bench-workflows`: what a workflow costs beyond its jobs, on
//! PostgreSQL and on SQLite, with one in-process worker running `echo`.
//!
//! Per backend, one JSON line with medians over `ROUNDS` runs of:
//! - `chain10_ms`: a run of a 10-step chain (each step depends on the one
//!   before), from `run_start` to the run's end;
//! - `job_ms`: one plain job, enqueue to completion (the baseline, same run
//!   and worker): a chain step can never take less than this;
//! - `chain_overhead_per_step_ms` = `chain10_ms` / 10 − `job_ms`: what a step
//!   adds to its job (advancing the run in the finishing transaction, the
//!   context, the next job's pickup);
//! - `fanout100_ms`: a run of one `for_each` step over 100 elements (no
//!   `max_parallel`), from `run_start` to the run's end;
//! - `batch100_ms`: 100 plain jobs enqueued in one batch, to the last one's
//!   completion (the baseline);
//! - `fanout_overhead_per_element_ms` = (`fanout100_ms` − `batch100_ms`) / 100.
//!
//! Waits are on the store's notifications (`RunState`, `JobState`), never
//! polls. The machine is shared and noisy: compare a line's fields with each
//! other, not with another day's line.

use corral_tests::bench::median;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::model::{JobState, Limits, NewJob};
use corral::store::{NewRun, StoreEvent};
use corral::worker::{Worker, WorkerConfig};
use corral::workflow::WorkflowSpec;
use corral_tests::db::{Kind, TestDb};
use corral_tests::{plugin_bytes, runtime_arc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Runs of each shape per backend (after one warm-up run).
const ROUNDS: usize = 15;
const CHAIN: usize = 10;
const FAN_OUT: usize = 100;
const PATIENCE: Duration = Duration::from_secs(120);

fn main() {
    corral_tests::bench::runtime().block_on(async {
        for (kind, name) in corral_tests::bench::backends() {
            bench(kind, name).await;
        }
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn define(db: &TestDb, name: &str, steps: serde_json::Value) {
    let spec: WorkflowSpec = serde_json::from_value(json!({ "steps": steps })).expect("spec");
    db.store
        .workflow_insert("bench", name, &spec, chrono::Utc::now())
        .await
        .expect("definition");
}

/// Start a run and wait for its end (on `RunState` notifications).
async fn time_run(db: &TestDb, workflow: &str, input: &str) -> Duration {
    let mut events = db.store.subscribe();
    let started = Instant::now();
    let run = db
        .store
        .run_start(
            "bench",
            &NewRun {
                workflow,
                version: None,
                input,
                schedule: None,
                key: None,
            },
            chrono::Utc::now(),
        )
        .await
        .expect("run")
        .0;
    loop {
        match tokio::time::timeout(PATIENCE, events.recv()).await {
            Ok(Ok(StoreEvent::RunState(id, state))) if id == run.id && state.is_terminal() => {
                assert_eq!(state.as_str(), "completed");
                return started.elapsed();
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                // Missed notifications: look, then listen again.
                events = db.store.subscribe();
                let now = db.store.run_get("bench", run.id).await.unwrap().unwrap();
                if now.state.is_terminal() {
                    return started.elapsed();
                }
            }
            Err(_) => panic!("run {} did not finish", run.id),
        }
    }
}

/// Enqueue `n` plain jobs in one batch and wait until all completed.
async fn time_jobs(db: &TestDb, n: usize) -> Duration {
    let mut events = db.store.subscribe();
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob::new("echo", format!(r#"{{"n":{i}}}"#)))
        .collect();
    let started = Instant::now();
    let ids: std::collections::HashSet<_> = db
        .store
        .job_insert_batch("bench", &jobs, chrono::Utc::now())
        .await
        .expect("enqueue")
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut left = ids.len();
    while left > 0 {
        match tokio::time::timeout(PATIENCE, events.recv()).await {
            Ok(Ok(StoreEvent::JobState(id, JobState::Completed))) if ids.contains(&id) => left -= 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("missed notifications: {e}"),
            Err(_) => panic!("{left} jobs did not finish"),
        }
    }
    started.elapsed()
}

async fn bench(kind: Kind, name: &str) {
    let db = TestDb::new(kind).await;
    db.tenant("bench", 10_000).await;
    db.plugin("bench", "echo", &plugin_bytes("echo"), Limits::default(), 3)
        .await;
    let chain: Vec<_> = (0..CHAIN)
        .map(|i| {
            if i == 0 {
                json!({"name": "s0", "plugin": "echo"})
            } else {
                json!({"name": format!("s{i}"), "plugin": "echo", "depends_on": [format!("s{}", i - 1)]})
            }
        })
        .collect();
    define(&db, "chain", json!(chain)).await;
    define(
        &db,
        "fan",
        json!([{"name": "each", "plugin": "echo", "for_each": "input.items"}]),
    )
    .await;
    let items: Vec<usize> = (0..FAN_OUT).collect();
    let fan_input = json!({ "items": items }).to_string();

    let stop = CancellationToken::new();
    let worker = Worker::new(
        db.store.clone(),
        Arc::clone(runtime_arc()),
        WorkerConfig {
            host_id: "bench".into(),
            concurrency: 16,
            ..WorkerConfig::default()
        },
    );
    let task = tokio::spawn(worker.run(stop.clone()));
    // Every host evaluates the `for_each` of the runs it starts.
    let evaluator = corral::worker::evaluator::spawn(db.store.clone(), stop.clone());
    // Warm up: compile and cache the plugin, fill the pools.
    time_jobs(&db, 10).await;
    time_run(&db, "chain", "{}").await;
    time_run(&db, "fan", &fan_input).await;

    let (mut chain_ms, mut job_ms, mut fan_ms, mut batch_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        job_ms.push(ms(time_jobs(&db, 1).await));
        chain_ms.push(ms(time_run(&db, "chain", "{}").await));
        batch_ms.push(ms(time_jobs(&db, FAN_OUT).await));
        fan_ms.push(ms(time_run(&db, "fan", &fan_input).await));
    }
    stop.cancel();
    let _ = task.await;
    let _ = evaluator.await;

    let (chain, job, fan, batch) = (
        median(chain_ms),
        median(job_ms),
        median(fan_ms),
        median(batch_ms),
    );
    let line = json!({
        "bench": "workflows",
        "backend": name,
        "rounds": ROUNDS,
        "chain10_ms": (chain * 100.0).round() / 100.0,
        "job_ms": (job * 100.0).round() / 100.0,
        "chain_overhead_per_step_ms": ((chain / CHAIN as f64 - job) * 100.0).round() / 100.0,
        "fanout100_ms": (fan * 100.0).round() / 100.0,
        "batch100_ms": (batch * 100.0).round() / 100.0,
        "fanout_overhead_per_element_ms": (((fan - batch) / FAN_OUT as f64) * 1000.0).round() / 1000.0,
    });
    println!("{line}");
}
