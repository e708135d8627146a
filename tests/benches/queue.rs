//! `just bench-queue`: the durable queue on PostgreSQL and on SQLite.
//!
//! Per backend, one JSON line with:
//! - `enqueue_per_s`: batch enqueue (1000 jobs a statement) of `JOBS` jobs;
//! - `pipeline_per_s`: those jobs drained by one in-process worker: claim →
//!   sandbox (`echo`) → record;
//! - `no_sandbox_per_s`: the same number of jobs claimed and completed by the
//!   same claim/finish calls without running a sandbox (the baseline, same
//!   run), so the sandbox's share is visible;
//! - `pickup_p50_ms` / `pickup_p99_ms`: on an idle worker, from enqueue
//!   (one job, single insert) to the attempt's start, just before the guest is
//!   instantiated (tens of microseconds before its entry);
//! - `api_batch_enqueue_per_s`: `POST /v1/jobs/batch` (1000 jobs a request)
//!   through the HTTP API over a real socket, beside `enqueue_per_s` (the
//!   store called directly, same run): the cost of HTTP, JSON and quotas;
//! - `api_pickup_p50_ms` / `api_pickup_p99_ms`: from sending `POST /v1/jobs`
//!   to the attempt's start, beside `pickup_*` (enqueued directly).
//!
//! Targets on a 2-core machine with PostgreSQL on the same box: >= 10,000
//! jobs/s through the full pipeline, >= 30,000 jobs/s batch enqueue, pickup
//! p50 <= 5 ms and p99 <= 20 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::model::{Attempt, Finish, Limits, NewJob, OutcomeKind, Transition};
use corral::store::{ClaimRequest, StoreEvent};
use corral::worker::{Worker, WorkerConfig};
use corral_tests::db::{Kind, TestDb};
use corral_tests::{plugin_bytes, runtime_arc};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const JOBS: usize = 50_000;
const PICKUPS: usize = 200;
/// Attempts the worker runs at once (`CORRAL_BENCH_CONCURRENCY` overrides).
const CONCURRENCY: usize = 256;

fn concurrency() -> usize {
    std::env::var("CORRAL_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CONCURRENCY)
}

fn main() {
    corral_tests::bench::runtime().block_on(async {
        for (kind, _) in corral_tests::bench::backends() {
            bench(kind).await;
        }
    });
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        host_id: "bench".into(),
        concurrency: concurrency(),
        claim_batch: 128,
        ..WorkerConfig::default()
    }
}

async fn fresh(kind: Kind) -> TestDb {
    let db = TestDb::new(kind).await;
    db.tenant("bench", 10_000).await;
    db.plugin("bench", "echo", &plugin_bytes("echo"), Limits::default(), 3)
        .await;
    db
}

async fn enqueue_all(db: &TestDb) -> f64 {
    let batch: Vec<NewJob> = (0..1000)
        .map(|i| NewJob::new("echo", format!(r#"{{"n":{i}}}"#)))
        .collect();
    let started = Instant::now();
    for _ in 0..JOBS / 1000 {
        db.store
            .job_insert_batch("bench", &batch, chrono::Utc::now())
            .await
            .expect("enqueue");
    }
    JOBS as f64 / started.elapsed().as_secs_f64()
}

/// Jobs of the bench tenant in a terminal state (a table scan: used rarely).
async fn finished(db: &TestDb) -> u64 {
    let counts = db.store.job_counts(Some("bench")).await.expect("counts");
    counts
        .iter()
        .filter(|(state, _)| state.is_terminal())
        .map(|(_, n)| n)
        .sum()
}

/// Wait, on the store's notifications, until all `JOBS` jobs finished.
/// Counting jobs by state scans the table, so it is done only to confirm the
/// end and after missed notifications, never as a polling loop that would
/// load the database the benchmark measures. `events` must be subscribed
/// before the first job can finish.
async fn wait_drained(db: &TestDb, mut events: tokio::sync::broadcast::Receiver<StoreEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut done = finished(db).await;
    loop {
        if done >= JOBS as u64 {
            done = finished(db).await;
            if done >= JOBS as u64 {
                return;
            }
        }
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Ok(StoreEvent::JobState(_, state))) if state.is_terminal() => done += 1,
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(_))) => done = finished(db).await,
            Ok(Err(RecvError::Closed)) => panic!("the store stopped"),
            Err(_) => panic!("no job finished for 60 s ({done} of {JOBS} done)"),
        }
    }
}

/// The API served on a local port, and a tenant key for it.
async fn serve_api(db: &TestDb) -> (String, String, CancellationToken) {
    let key = corral::keys::generate().expect("key");
    db.store
        .api_key_insert(&corral::model::ApiKey {
            id: key.id.clone(),
            tenant_id: Some("bench".into()),
            secret_hash: key.secret_hash,
            created_at: chrono::Utc::now(),
            revoked_at: None,
        })
        .await
        .expect("key");
    let app = corral::http::router(corral::http::AppState::new(
        db.store.clone(),
        Arc::clone(runtime_arc()),
        None,
        Arc::new(corral::metrics::Metrics::new()),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
            .expect("serve");
    });
    (base, key.token, stop)
}

/// `POST /v1/jobs/batch` of 1000 jobs at a time, `JOBS` in all.
async fn api_enqueue_all(db: &TestDb) -> f64 {
    let (base, key, stop) = serve_api(db).await;
    let client = reqwest::Client::new();
    let body = json!({
        "jobs": (0..1000).map(|i| json!({"plugin": "echo", "input": {"n": i}})).collect::<Vec<_>>()
    })
    .to_string();
    let started = Instant::now();
    for _ in 0..JOBS / 1000 {
        let response = client
            .post(format!("{base}/v1/jobs/batch"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
    }
    let per_s = JOBS as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    per_s
}

/// Pickup latency on an idle worker: from enqueueing one job (through `api`
/// when given, else straight into the store) to the attempt's start.
async fn pickups(db: &TestDb, api: Option<(&str, &str)>) -> (Duration, Duration) {
    let shutdown = CancellationToken::new();
    let worker = Worker::new(db.store.clone(), Arc::clone(runtime_arc()), worker_config());
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let client = reqwest::Client::new();
    let mut events = db.store.subscribe();
    let mut pickups = Vec::with_capacity(PICKUPS);
    for i in 0..PICKUPS + 10 {
        let enqueued = chrono::Utc::now();
        let id = match api {
            Some((base, key)) => {
                let job: serde_json::Value = client
                    .post(format!("{base}/v1/jobs"))
                    .bearer_auth(key)
                    .json(&json!({"plugin": "echo", "input": {}}))
                    .send()
                    .await
                    .expect("request")
                    .json()
                    .await
                    .expect("job");
                uuid::Uuid::parse_str(job["id"].as_str().expect("id")).expect("uuid")
            }
            None => {
                db.store
                    .job_insert_batch("bench", &[NewJob::new("echo", "{}")], enqueued)
                    .await
                    .expect("enqueue")[0]
                    .id
            }
        };
        loop {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
                Ok(Ok(StoreEvent::JobState(done, state))) if done == id && state.is_terminal() => {
                    break;
                }
                Ok(_) => {}
                Err(_) => panic!("job {id} not finished within 30 s"),
            }
        }
        let attempt = &db.store.attempt_list("bench", id).await.expect("attempts")[0];
        if i >= 10 {
            // The first few warm the connection pool and the plugin cache.
            pickups.push((attempt.started_at - enqueued).to_std().unwrap_or_default());
        }
    }
    shutdown.cancel();
    task.await.expect("worker");
    pickups.sort();
    (
        pickups[pickups.len() / 2],
        pickups[pickups.len() * 99 / 100],
    )
}

async fn bench(kind: Kind) {
    // Full pipeline.
    let db = fresh(kind).await;
    let enqueue_per_s = enqueue_all(&db).await;
    let shutdown = CancellationToken::new();
    let worker = Worker::new(db.store.clone(), Arc::clone(runtime_arc()), worker_config());
    let events = db.store.subscribe();
    let started = Instant::now();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    wait_drained(&db, events).await;
    let pipeline_per_s = JOBS as f64 / started.elapsed().as_secs_f64();
    eprintln!("{kind:?}: enqueue {enqueue_per_s:.0}/s, pipeline {pipeline_per_s:.0}/s");
    shutdown.cancel();
    task.await.expect("worker");

    // The same work without the sandbox: claim, then record a completion.
    let db = fresh(kind).await;
    enqueue_all(&db).await;
    let started = Instant::now();
    let lanes: Vec<_> = (0..4)
        .map(|lane| {
            let store = db.store.clone();
            tokio::spawn(async move {
                loop {
                    let claimed = store
                        .job_claim(&ClaimRequest {
                            host_id: format!("baseline-{lane}"),
                            now: chrono::Utc::now(),
                            limit: 128,
                            lease: Duration::from_secs(30),
                            queues: None,
                            tenants: None,
                        })
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return;
                    }
                    let now = chrono::Utc::now();
                    let finishes: Vec<Finish> = claimed
                        .into_iter()
                        .map(|job| Finish {
                            workflow_run_id: None,
                            progress: None,
                            job_id: job.id,
                            lease_token: job.lease_token,
                            attempt: Attempt {
                                attempt: job.attempt,
                                outcome: OutcomeKind::Completed,
                                message: None,
                                started_at: now,
                                finished_at: now,
                                fuel_consumed: 0,
                                peak_memory_bytes: 0,
                                host_id: "baseline".into(),
                                log: String::new(),
                                log_dropped_bytes: 0,
                                http: None,
                            },
                            transition: Transition::Complete { result: job.input },
                        })
                        .collect();
                    store.job_finish(&finishes).await.expect("finish");
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await.expect("lane");
    }
    let no_sandbox_per_s = JOBS as f64 / started.elapsed().as_secs_f64();

    // Pickup latency on an idle worker, then the same through the API.
    let db = fresh(kind).await;
    let (p50, p99) = pickups(&db, None).await;
    let (base, key, stop) = serve_api(&db).await;
    let (api_p50, api_p99) = pickups(&db, Some((&base, &key))).await;
    stop.cancel();
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;

    // Batch enqueue through the API.
    let db = fresh(kind).await;
    let api_enqueue_per_s = api_enqueue_all(&db).await;

    let line = json!({
        "bench": "queue",
        "backend": match kind { Kind::Postgres => "postgres", Kind::Sqlite => "sqlite" },
        "jobs": JOBS,
        "worker_concurrency": concurrency(),
        "enqueue_per_s": enqueue_per_s.round(),
        "pipeline_per_s": pipeline_per_s.round(),
        "no_sandbox_per_s": no_sandbox_per_s.round(),
        "sandbox_share": ((1.0 - pipeline_per_s / no_sandbox_per_s) * 100.0).round() / 100.0,
        "pickup_p50_ms": ms(p50),
        "pickup_p99_ms": ms(p99),
        "api_batch_enqueue_per_s": api_enqueue_per_s.round(),
        "api_pickup_p50_ms": ms(api_p50),
        "api_pickup_p99_ms": ms(api_p99),
        "targets": {"pipeline_per_s": 10_000, "enqueue_per_s": 30_000, "pickup_p50_ms": 5, "pickup_p99_ms": 20},
        "meets_targets": pipeline_per_s >= 10_000.0 && enqueue_per_s >= 30_000.0 && p50 <= Duration::from_millis(5) && p99 <= Duration::from_millis(20),
    });
    println!("{line}");
}
