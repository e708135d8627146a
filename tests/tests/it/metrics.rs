//! `/metrics` on both backends: a worker runs real jobs in process, sharing
//! its `Metrics` with the API router, and the exposition is read back
//! through the router (`oneshot`) and checked value by value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use corral::http::{AppState, router};
use corral::metrics::Metrics;
use corral::model::{JobState, Limits, NewJob};
use corral::worker::{Backoff, Worker, WorkerConfig};
use corral_tests::db::{Kind, TestDb};
use corral_tests::{plugin_bytes, runtime_arc};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const PATIENCE: Duration = Duration::from_secs(120);

corral_tests::on_both_backends!(metrics_count_what_the_worker_ran);

fn app(db: &TestDb, metrics: &Arc<Metrics>) -> axum::Router {
    router(AppState::new(
        db.store.clone(),
        Arc::clone(runtime_arc()),
        None,
        metrics.clone(),
    ))
}

/// GET `uri`: status, headers, body text.
async fn get(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The samples of an exposition, by series (`name{labels}`) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with EOF"
    );
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line: {line:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("a numeric value: {line:?}"));
            (series.to_string(), value)
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

async fn scrape(app: &axum::Router) -> HashMap<String, f64> {
    let (status, headers, body) = get(app, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    samples(&body)
}

/// A scrape that holds the database's job counts. On a loaded machine a
/// scrape may answer without them once the database has taken longer than
/// the scrape waits (`corral_database_up 0`), as it should; the test then
/// asks again, until the database answers within `PATIENCE`.
async fn scrape_with_counts(app: &axum::Router) -> HashMap<String, f64> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let samples = scrape(app).await;
        if value(&samples, "corral_database_up") == 1.0 {
            return samples;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scrape read the database's counts: {samples:#?}"
        );
    }
}

async fn metrics_count_what_the_worker_ran(db: TestDb) {
    db.tenant("acme", 16).await;
    for name in ["echo", "panic"] {
        db.plugin("acme", name, &plugin_bytes(name), Limits::default(), 3)
            .await;
    }
    let now = chrono::Utc::now();
    let mut jobs: Vec<NewJob> = (0..3)
        .map(|i| NewJob::new("echo", format!("{i}")))
        .collect();
    let mut panic = NewJob::new("panic", "{}");
    panic.max_attempts = Some(1);
    jobs.push(panic);
    let ran = db.store.job_insert_batch("acme", &jobs, now).await.unwrap();
    // Left waiting: two due in an hour, four in a queue this worker does not take.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let mut job = NewJob::new("echo", "{}");
        job.run_at = Some(now + chrono::Duration::hours(1));
        waiting.push(job);
    }
    for _ in 0..4 {
        let mut job = NewJob::new("echo", "{}");
        job.queue = "parked".into();
        waiting.push(job);
    }
    db.store
        .job_insert_batch("acme", &waiting, now)
        .await
        .unwrap();

    let metrics = Arc::new(Metrics::new());
    let app = app(&db, &metrics);
    let before = scrape_with_counts(&app).await;
    assert_eq!(value(&before, "corral_jobs{state=\"available\"}"), 8.0);
    assert_eq!(value(&before, "corral_jobs{state=\"scheduled\"}"), 2.0);
    assert_eq!(value(&before, "corral_worker_capacity"), 0.0);
    assert_eq!(
        value(&before, "corral_attempts_total{outcome=\"completed\"}"),
        0.0,
        "every outcome is shown from the start"
    );

    let shutdown = CancellationToken::new();
    let worker = Worker::with_metrics(
        db.store.clone(),
        Arc::clone(runtime_arc()),
        WorkerConfig {
            host_id: "host-a".into(),
            concurrency: 8,
            poll_interval: Duration::from_millis(500),
            backoff: Backoff {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(100),
            },
            queues: Some(vec!["default".into()]),
            ..WorkerConfig::default()
        },
        metrics.clone(),
    );
    let task = tokio::spawn(worker.run(shutdown.clone()));
    for job in &ran {
        db.wait_for("acme", job.id, PATIENCE, JobState::is_terminal)
            .await;
    }
    let running = scrape(&app).await;
    assert_eq!(value(&running, "corral_worker_capacity"), 8.0);
    // Stopping the worker waits for its recorder: every outcome is counted.
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("the worker stops")
        .unwrap();

    let after = scrape_with_counts(&app).await;
    let expect = |series: &str, expected: f64| {
        assert_eq!(value(&after, series), expected, "{series}");
    };
    expect("corral_attempts_total{outcome=\"completed\"}", 3.0);
    expect("corral_attempts_total{outcome=\"trapped\"}", 1.0);
    expect("corral_attempts_total{outcome=\"failed\"}", 0.0);
    expect("corral_jobs_finished_total{state=\"completed\"}", 3.0);
    expect("corral_jobs_finished_total{state=\"dead\"}", 1.0);
    expect("corral_jobs_finished_total{state=\"cancelled\"}", 0.0);
    expect("corral_jobs_claimed_total", 4.0);
    for histogram in [
        "corral_attempt_duration_seconds",
        "corral_attempt_fuel_consumed",
        "corral_attempt_peak_memory_bytes",
        "corral_pickup_delay_seconds",
    ] {
        expect(&format!("{histogram}_count"), 4.0);
        expect(&format!("{histogram}_bucket{{le=\"+Inf\"}}"), 4.0);
    }
    assert!(value(&after, "corral_attempt_fuel_consumed_sum") > 0.0);
    assert!(value(&after, "corral_attempt_peak_memory_bytes_sum") >= 4.0 * 65536.0);
    // At least one claim found the four jobs; empty polls are claims too.
    assert!(value(&after, "corral_claim_duration_seconds_count") >= 1.0);
    expect("corral_attempts_in_flight", 0.0);
    expect("corral_worker_capacity", 0.0);
    // What was left waiting, read from the database at scrape time.
    expect("corral_jobs{state=\"scheduled\"}", 2.0);
    expect("corral_jobs{state=\"available\"}", 4.0);
    expect("corral_jobs{state=\"running\"}", 0.0);
    expect("corral_jobs{state=\"retrying\"}", 0.0);
    expect("corral_queue_depth{queue=\"parked\"}", 4.0);
    assert!(
        !after.contains_key("corral_queue_depth{queue=\"default\"}"),
        "jobs due in an hour are not due yet: {after:?}"
    );
    assert!(
        !after
            .keys()
            .any(|k| k.contains("state=\"completed\"}") && k.starts_with("corral_jobs{")),
        "terminal states are never counted at scrape time"
    );
    expect("corral_database_up", 1.0);
    expect("corral_build_info{version=\"0.1.0\"}", 1.0);
    assert!(value(&after, "corral_plugins_loaded") >= 2.0);
    expect("corral_sandbox_slots_in_use", 0.0);
    // The earlier scrapes, by route template (this one is counted once answered).
    expect(
        "corral_http_requests_total{method=\"GET\",path=\"/metrics\",status=\"200\"}",
        2.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_an_id_and_are_counted_by_route() {
    let db = TestDb::new(Kind::Sqlite).await;
    let metrics = Arc::new(Metrics::new());
    let app = app(&db, &metrics);

    let (_, headers, _) = get(&app, "/health", &[("x-request-id", "client-id_1.2:3")]).await;
    assert_eq!(
        headers["x-request-id"], "client-id_1.2:3",
        "a sane id is echoed"
    );
    for unsafe_id in ["two words", "", &"x".repeat(129), "quote\"d"] {
        let (_, headers, _) = get(&app, "/health", &[("x-request-id", unsafe_id)]).await;
        let id = headers["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{unsafe_id:?} is replaced by a generated id, got {id:?}"
        );
    }
    let (_, headers, _) = get(&app, "/health", &[]).await;
    assert!(uuid::Uuid::parse_str(headers["x-request-id"].to_str().unwrap()).is_ok());

    let id = uuid::Uuid::new_v4();
    for _ in 0..2 {
        let (status, _, _) = get(&app, &format!("/v1/jobs/{id}"), &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    get(&app, "/no/such/route", &[]).await;
    let samples = scrape(&app).await;
    assert_eq!(
        value(
            &samples,
            "corral_http_requests_total{method=\"GET\",path=\"/v1/jobs/{id}\",status=\"401\"}"
        ),
        2.0,
        "counted by route template, never by raw path"
    );
    assert_eq!(
        value(
            &samples,
            "corral_http_requests_total{method=\"GET\",path=\"/health\",status=\"200\"}"
        ),
        6.0
    );
    assert_eq!(
        value(
            &samples,
            "corral_http_requests_total{method=\"GET\",path=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    assert!(!samples.keys().any(|k| k.contains(&id.to_string())));
}
