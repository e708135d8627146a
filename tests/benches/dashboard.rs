//! `just bench-dashboard`: what the dashboard's reads cost on a tenant with
//! 1,000,000 finished jobs, through the real `corral serve` binary.
//!
//! Per backend, a fresh database with tenant `big` (1,000,000 finished
//! jobs: about 98% completed, 1.5% dead under five errors, 0.5% cancelled)
//! and tenant `small` (1,000 jobs, the same mix: the same-run baseline).
//! Then `corral serve --mode api` on it, and each of the dashboard's reads
//! timed `ROUNDS` times over loopback (so the figures include HTTP; the
//! server's own share is less). One JSON line per backend: per read, the
//! median and the slowest on `big`, and the median on `small`; the target
//! is a median <= 200 ms for every read on `big`.
//!
//! `CORRAL_BENCH_JOBS=100000` seeds fewer jobs (a quicker look).

use std::time::{Duration, Instant};

use corral::model::{Limits, NewJob};
use corral_tests::db::{Kind, TestDb};
use serde_json::{Value, json};

const JOBS: usize = 1_000_000;
const BASELINE_JOBS: usize = 1_000;
const ROUNDS: usize = 30;
const TARGET_MS: f64 = 200.0;
const ADMIN: &str = "bench-dashboard-admin-token-0123456789";

fn main() {
    corral_tests::bench::runtime().block_on(async {
        for (kind, name) in corral_tests::bench::backends() {
            bench(kind, name).await;
        }
    });
}

/// `jobs` finished jobs for `tenant`: enqueued in batches through the
/// store, then finished by one statement. The queue a job is enqueued into
/// says how it ends (`d` dead, `x` cancelled, else completed); its priority
/// (0 to 999) how long ago it finished, in steps of ten minutes (so the
/// million accumulated over the last seven days, as under the default
/// retention, about 6,000 of them in the last hour), and which of five
/// errors a dead one has.
async fn seed(db: &TestDb, tenant: &str, jobs: usize) {
    let batch: Vec<NewJob> = (0..1_000)
        .map(|i| {
            let mut job = NewJob::new("work", "{}");
            job.queue = match i {
                i if i % 200 == 0 => "x".into(),
                i if i % 67 == 0 => "d".into(),
                _ => "c".into(),
            };
            job.priority = i;
            job
        })
        .collect();
    for _ in 0..jobs.div_ceil(1_000) {
        db.store
            .job_insert_batch(tenant, &batch, chrono::Utc::now())
            .await
            .expect("enqueue");
    }
    // The one statement per backend: JSON literals are typed differently.
    let finish = |result: &str, ten_minutes: &str| {
        format!(
            "UPDATE jobs SET attempt = 1, finished_at = run_at - priority * {ten_minutes}, \
             state = CASE queue WHEN 'd' THEN 'dead' WHEN 'x' THEN 'cancelled' ELSE 'completed' END, \
             result = CASE queue WHEN 'c' THEN {result} END, \
             error = CASE queue WHEN 'd' THEN 'upstream failed with error ' || (priority % 5) END \
             WHERE tenant_id = $1 AND finished_at IS NULL"
        )
    };
    match db_pool(db).await {
        Pool::Postgres(pool) => {
            sqlx::query(&finish("'{}'::jsonb", "interval '10 minutes'"))
                .bind(tenant)
                .execute(&pool)
                .await
                .expect("finish");
            // What autovacuum would have done by the time a million jobs
            // had finished.
            sqlx::query("VACUUM ANALYZE jobs")
                .execute(&pool)
                .await
                .expect("analyze");
        }
        Pool::Sqlite(pool) => {
            sqlx::query(&finish("'{}'", "600000000"))
                .bind(tenant)
                .execute(&pool)
                .await
                .expect("finish");
            // No ANALYZE: corral never runs one, so its SQLite plans are
            // made without statistics, as measured here.
        }
    }
}

enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

async fn db_pool(db: &TestDb) -> Pool {
    if db.url.starts_with("sqlite") {
        Pool::Sqlite(sqlx::SqlitePool::connect(&db.url).await.expect("sqlite"))
    } else {
        Pool::Postgres(sqlx::PgPool::connect(&db.url).await.expect("postgres"))
    }
}

/// The reads the dashboard makes, by name: GET paths, or a POST body.
fn reads(middle: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("jobs_first_page", "/v1/jobs".into(), None),
        ("jobs_dead", "/v1/jobs?state=dead".into(), None),
        (
            "jobs_completed_of_plugin",
            "/v1/jobs?state=completed&plugin=work".into(),
            None,
        ),
        ("jobs_error_text", "/v1/jobs?error=error%203".into(), None),
        (
            "jobs_error_text_no_match",
            "/v1/jobs?error=nowhere".into(),
            None,
        ),
        (
            "jobs_created_before_middle",
            format!("/v1/jobs?created_before={middle}"),
            None,
        ),
        ("overview", "/v1/overview".into(), None),
        ("dead_letters", "/v1/dead-letters".into(), None),
        (
            "replay_dry_run",
            "/v1/jobs/replay".into(),
            Some(json!({"dry_run": true})),
        ),
    ]
}

/// Median and slowest of `ROUNDS` calls (after two unmeasured), in ms.
async fn time(http: &reqwest::Client, url: &str, key: &str, body: &Option<Value>) -> (f64, f64) {
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 2 {
        let request = match body {
            Some(body) => http.post(url).json(body),
            None => http.get(url),
        };
        let started = Instant::now();
        let response = request.bearer_auth(key).send().await.expect("answer");
        let status = response.status();
        let text = response.text().await.expect("body");
        let elapsed = started.elapsed();
        assert!(status.is_success(), "{url}: {status} {text}");
        if round >= 2 {
            times.push(elapsed);
        }
    }
    times.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    (ms(times[ROUNDS / 2]), ms(times[ROUNDS - 1]))
}

async fn bench(kind: Kind, name: &str) {
    let jobs = std::env::var("CORRAL_BENCH_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(JOBS);
    let db = TestDb::new(kind).await;
    let started = Instant::now();
    for tenant in ["small", "big"] {
        db.tenant(tenant, 1_000).await;
        db.plugin(tenant, "work", b"c", Limits::default(), 1).await;
    }
    seed(&db, "small", BASELINE_JOBS).await;
    seed(&db, "big", jobs / 2).await;
    // The middle of `big`'s ids: a page deep in its history.
    let middle = (chrono::Utc::now()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    seed(&db, "big", jobs - jobs / 2).await;
    eprintln!("{name}: seeded {jobs} jobs in {:.0?}", started.elapsed());

    let cache = tempfile::tempdir().expect("temp dir");
    let port = corral_tests::free_port();
    let (server, _) =
        corral_tests::serve_api_with(&db.url, port, cache.path(), Some(ADMIN), &["--mode", "api"]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut keys = Vec::new();
    for tenant in ["big", "small"] {
        let key: Value = http
            .post(format!("{base}/v1/tenants/{tenant}/keys"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("key")
            .json()
            .await
            .expect("key json");
        keys.push(key["key"].as_str().expect("key").to_string());
    }
    let middle = middle.replace(':', "%3A");
    let mut rows = serde_json::Map::new();
    let mut worst: f64 = 0.0;
    for (read, path, body) in reads(&middle) {
        let url = format!("{base}{path}");
        let (p50, max) = time(&http, &url, &keys[0], &body).await;
        let (baseline, _) = time(&http, &url, &keys[1], &body).await;
        eprintln!(
            "{name}: {read}: p50 {p50} ms, max {max} ms ({BASELINE_JOBS} jobs: {baseline} ms)"
        );
        worst = worst.max(p50);
        rows.insert(
            read.into(),
            json!({"p50_ms": p50, "max_ms": max, "baseline_p50_ms": baseline}),
        );
    }
    corral_tests::stop(server);
    let line = json!({
        "bench": "dashboard",
        "backend": name,
        "jobs": jobs,
        "baseline_jobs": BASELINE_JOBS,
        "reads": rows,
        "worst_p50_ms": worst,
        "target_p50_ms": TARGET_MS,
        "meets_target": worst <= TARGET_MS,
    });
    println!("{line}");
}
