//! `just bench-serve`: the real `corral serve` binary, as users run it,
//! beside the native peer queue in the same run.
//!
//! - **Drain**: `N` `echo` jobs enqueued, then `corral serve --mode worker
//!   --concurrency 256` started as a separate process; timed by the
//!   database's own timestamps (first attempt start to last attempt finish,
//!   `per_s`), and by the wall clock from the process's start until the
//!   last job's recorded finish (`wall_per_s`, which includes starting up).
//! - **Peer**: graphile_worker 0.14.1 (`../shared/peers/graphile-worker`,
//!   built here when present) processing `N` no-op jobs with its own tuned
//!   recipe, interleaved with Corral's rounds (A B A B …); `over_peer` is
//!   the ratio of the medians.
//! - **Hosts**: four `corral serve` processes on the same database drain `N`
//!   jobs (`hosts4_per_s`), beside one (`hosts4_over_1`).
//! - **Pickup under load**: while one host (API and worker) drains another
//!   tenant's backlog of 50,000 jobs, single jobs of a small tenant enqueued
//!   through its API, from the enqueue call to their claim (the job's
//!   `started_at`, which the claim sets), and from their `created_at` (the
//!   host accepted the job) to the claim.
//!
//! Knobs while iterating: `CORRAL_BENCH_QUICK=1` (one drain of one host),
//! `CORRAL_BENCH_PICKUPS=1` (the pickups only), `CORRAL_BENCH_PICKUP_ANATOMY=1`
//! (the slowest pickups with the claims around them), `CORRAL_BENCH_BACKENDS`,
//! `CORRAL_BENCH_CONCURRENCY` (each host's `--concurrency`).
//!
//! One JSON line per backend (SQLite has one host and no peer).
//! Targets on this 2-core machine: PostgreSQL >= 15,000 jobs/s and >= 1.0x
//! the peer; SQLite >= 12,000 jobs/s; four hosts >= one; pickup p99 <= 20 ms.

use corral_tests::bench::median;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use corral::model::{Limits, NewJob};
use corral::store::StoreEvent;
use corral_client::api::CreatedKey;
use corral_client::{Client, Enqueue};
use corral_tests::db::{Kind, TestDb};
use corral_tests::serve::ServeProcess;
use corral_tests::{db_texts, plugin_bytes, root};
use reqwest::Method;
use serde_json::json;

/// Jobs per drain (the peer runs the same number).
const N: usize = 20_000;
/// Interleaved rounds; medians are reported.
const ROUNDS: usize = 3;
/// Attempts each `corral serve` runs at once (`CORRAL_BENCH_CONCURRENCY`
/// overrides it while iterating).
const CONCURRENCY: &str = "256";

fn concurrency() -> &'static str {
    static VALUE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VALUE.get_or_init(|| {
        std::env::var("CORRAL_BENCH_CONCURRENCY").unwrap_or_else(|_| CONCURRENCY.into())
    })
}
/// The backlog behind which pickups are measured, and how many.
const BACKLOG: usize = 50_000;
const PICKUPS: usize = 400;
/// Clients of the small tenant enqueueing one job at a time side by side:
/// one alone took about 85 samples before the backlog drained, too few for
/// a p99 that means anything.
const SAMPLERS: usize = 4;
/// How long any one wait may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(300);

fn main() {
    let rt = corral_tests::bench::runtime();
    // Build the binary (release, as the bench profile is) before timing.
    corral_tests::corral_bin();
    let peer = build_peer();
    let cache = tempfile::tempdir().expect("cache dir");
    rt.block_on(async {
        for (kind, _) in corral_tests::bench::backends() {
            match kind {
                Kind::Postgres => postgres(cache.path(), peer.as_deref()).await,
                Kind::Sqlite => sqlite(cache.path()).await,
            }
        }
    });
}

/// The peer's binary, built into the cargo target directory; `None` when
/// `../shared/peers` is not beside the project.
fn build_peer() -> Option<PathBuf> {
    let manifest = root().join("../shared/peers/graphile-worker/Cargo.toml");
    if !manifest.exists() {
        eprintln!("no peer at {}: measuring Corral alone", manifest.display());
        return None;
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("peers");
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the peer failed");
    Some(target.join("release/peer-graphile-worker"))
}

/// A fresh database with `jobs` waiting `echo` jobs of tenant `bench`.
async fn with_jobs(kind: Kind, tenant: &str, jobs: usize) -> TestDb {
    let db = TestDb::new(kind).await;
    add_jobs(&db, tenant, jobs).await;
    db
}

async fn add_jobs(db: &TestDb, tenant: &str, jobs: usize) {
    db.tenant(tenant, 100_000).await;
    db.plugin(tenant, "echo", &plugin_bytes("echo"), Limits::default(), 3)
        .await;
    let batch: Vec<NewJob> = (0..1000)
        .map(|i| NewJob::new("echo", format!(r#"{{"n":{i}}}"#)))
        .collect();
    for _ in 0..jobs / 1000 {
        db.store
            .job_insert_batch(tenant, &batch, chrono::Utc::now())
            .await
            .expect("enqueue");
    }
}

/// `CORRAL_BENCH_SERVE_FLAGS="--claim-batch 256"`: more flags for every host.
fn extra_flags() -> Vec<&'static str> {
    static FLAGS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FLAGS
        .get_or_init(|| std::env::var("CORRAL_BENCH_SERVE_FLAGS").unwrap_or_default())
        .split_whitespace()
        .collect()
}

fn start_hosts(db: &TestDb, cache: &Path, hosts: usize) -> Vec<ServeProcess> {
    (0..hosts)
        .map(|h| {
            ServeProcess::start_with(
                &db.url,
                &format!("bench-{h}"),
                cache,
                &[&["--concurrency", concurrency()], extra_flags().as_slice()].concat(),
            )
        })
        .collect()
}

/// Finished jobs of the database (a table scan: used rarely).
async fn finished(db: &TestDb) -> u64 {
    let counts = db.store.job_counts(None).await.expect("counts");
    counts
        .iter()
        .filter(|(state, _)| state.is_terminal())
        .map(|(_, n)| n)
        .sum()
}

/// Wait until `total` jobs are finished: on PostgreSQL on the hosts'
/// notifications (their triggers announce every state change), confirmed
/// by a count; on SQLite (no notifications across processes) by counting
/// once a second on a reader, which never blocks the hosts' writer (the
/// wall clock is then read from the attempts' times, see `drain`). Looking
/// more often cost the host being measured: at each change of the database's
/// files (one per WAL write), or every 20 ms through the indexes of live
/// jobs, its drain fell from 7,300–8,300 to 5,500–7,100 jobs/s. Each
/// second it also checks that every host still runs: one that exited (a
/// binary older than the database's migrations, say) fails the benchmark
/// at once, naming its log, instead of after `PATIENCE`.
async fn wait_finished(db: &TestDb, total: u64, hosts: &mut [ServeProcess]) {
    let mut events = db.store.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut done = finished(db).await;
    while done < total {
        // A count scans the jobs (about 18 ms of the database's CPU at 20,000
        // jobs, taken from the host being measured): once a second at most,
        // and once the events say every job is done.
        let tick = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(tick.min(deadline), events.recv()).await {
                Ok(Ok(StoreEvent::JobState(_, state))) if state.is_terminal() => done += 1,
                Ok(Ok(_)) => continue,
                Ok(Err(_)) | Err(_) => break,
            }
            if done >= total {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of {total} finished"
        );
        for host in hosts.iter_mut() {
            if let Ok(Some(status)) = host.child.try_wait() {
                let log = host.log_text();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                panic!(
                    "a `corral serve` exited ({status}) with {done} of {total} jobs finished; \
                     the end of its log ({}):\n{}",
                    host.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        done = finished(db).await;
    }
}

/// The first attempt's start and the last one's finish, as the database
/// recorded them, in microseconds since the epoch.
async fn attempt_times(db: &TestDb) -> (i64, i64) {
    let texts = db_texts(
        db,
        "SELECT (extract(epoch FROM min(started_at)) * 1000000)::bigint::text || ' ' || \
                (extract(epoch FROM max(finished_at)) * 1000000)::bigint::text FROM attempts",
        "SELECT CAST(min(started_at) AS TEXT) || ' ' || CAST(max(finished_at) AS TEXT) FROM attempts",
    )
    .await;
    let times: Vec<i64> = texts
        .first()
        .map(|t| t.split(' ').filter_map(|m| m.parse().ok()).collect())
        .unwrap_or_default();
    match times[..] {
        [first, last] => (first, last),
        _ => panic!("attempt times: {texts:?}"),
    }
}

/// One drain of `N` jobs by `hosts` processes: (per_s by the database's
/// timestamps, per_s by the wall clock from the processes' start to the
/// last attempt's finish as recorded). The wall clock ends at the recorded
/// finish, not when the wait saw it, which on SQLite is up to a second
/// later (`wait_finished`); the last outcome's commit follows its finish
/// by at most an outcome batch's delay.
async fn drain(kind: Kind, cache: &Path, hosts: usize) -> (f64, f64) {
    let db = with_jobs(kind, "bench", N).await;
    let started = chrono::Utc::now().timestamp_micros();
    let mut processes = start_hosts(&db, cache, hosts);
    wait_finished(&db, N as u64, &mut processes).await;
    drop(processes);
    let (first, last) = attempt_times(&db).await;
    let seconds = |micros: i64| micros as f64 / 1e6;
    (
        N as f64 / seconds(last - first),
        N as f64 / seconds(last - started),
    )
}

/// One run of the peer: its processed jobs per second.
fn peer_round(peer: &Path) -> f64 {
    let admin = corral_tests::db::postgres_admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .unwrap_or(admin);
    let output = Command::new(peer)
        .env("N", N.to_string())
        .env("CONCURRENCY", "50")
        .env("GW_MODE", "lq")
        .env("PG_BASE", base)
        .output()
        .expect("the peer runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "peer failed: {text}");
    text.split_whitespace()
        .find_map(|field| field.strip_prefix("process_per_s="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no process_per_s in {text:?}"))
}

/// Pickup latencies behind a backlog, in ms.
struct Pickups {
    /// From just before the enqueue call to the claim.
    p50: f64,
    p99: f64,
    /// From the job's `created_at` (the host accepted it, before its
    /// insert) to the claim: without the client's half of the call.
    accepted_p50: f64,
    accepted_p99: f64,
    /// The enqueue call alone (it answers once the job is committed).
    enqueue_p50: f64,
    enqueue_p99: f64,
    /// Taken while the backlog still waited.
    samples: usize,
}

impl Pickups {
    fn json(&self) -> serde_json::Value {
        json!({
            "pickup_under_backlog_p50_ms": self.p50,
            "pickup_under_backlog_p99_ms": self.p99,
            "pickup_from_accept_p50_ms": self.accepted_p50,
            "pickup_from_accept_p99_ms": self.accepted_p99,
            "enqueue_call_p50_ms": self.enqueue_p50,
            "enqueue_call_p99_ms": self.enqueue_p99,
            "pickup_samples": self.samples,
        })
    }
}

/// Pickup latency of a small tenant's single jobs while one host drains
/// another tenant's backlog. Each job goes in through the host's own API,
/// as a user's would, and is followed over its event stream; its pickup is
/// from just before the enqueue call (and from its `created_at`) to its
/// `started_at` (which the claim sets). Through the API, so SQLite is
/// measured too: a second process's enqueue would write to the host's
/// database file from outside.
async fn pickups_under_backlog(kind: Kind, cache: &Path) -> Pickups {
    const ADMIN: &str = "bench-serve-admin-token-0123456789";
    let db = with_jobs(kind, "big", BACKLOG).await;
    add_jobs(&db, "small", 0).await;
    let port = corral_tests::free_port();
    let flags = [&["--concurrency", concurrency()], extra_flags().as_slice()].concat();
    // With the anatomy, the host traces its claims and the announcements
    // it hears, into a log read once the pickups are taken.
    let anatomy = (kind == Kind::Postgres && anatomy()).then(|| cache.join("pickup-host.log"));
    let envs: &[(&str, &str)] = match anatomy {
        Some(_) => &[("RUST_LOG", "info,corral::claims=debug")],
        None => &[],
    };
    let (host, _) = corral_tests::serve_api_logged(
        &db.url,
        port,
        cache,
        Some(ADMIN),
        &flags,
        envs,
        anatomy.as_deref(),
        None,
    );
    let _host = KillOnDrop(host);
    let url = format!("http://127.0.0.1:{port}");
    let admin = Client::new(&url, ADMIN).expect("client");
    let key: CreatedKey = admin
        .json(admin.request(Method::POST, &["v1", "tenants", "small", "keys"]))
        .await
        .expect("a key for the small tenant");
    let small = Client::new(&url, key.key).expect("client");
    // Pickups are taken while the host drains, once it has recorded its
    // first outcomes, not while it starts (opening its connections to the
    // database, loading the plugin, its first claims): each client's first
    // pickup, taken then, was 3-10 times as long as its others and made
    // most of the p99 (docs/benchmarks.md, "One statement per enqueue").
    // A first job of the small tenant, followed over its event stream and
    // not counted, ends once the host has recorded an outcome batch.
    let warm_up = small
        .enqueue(Enqueue::new("echo", &json!({})).expect("a job"))
        .await
        .expect("enqueue");
    small
        .wait(warm_up.id, PATIENCE)
        .await
        .expect("the host runs a first job");
    let sampler = |small: Client, store: std::sync::Arc<dyn corral::store::Store>| async move {
        let mut samples = Vec::with_capacity(PICKUPS / SAMPLERS);
        for _ in 0..PICKUPS / SAMPLERS {
            if store.job_waiting_count("big", 1).await.expect("count") == 0 {
                break;
            }
            let enqueued = chrono::Utc::now();
            let job = small
                .enqueue(Enqueue::new("echo", &json!({})).expect("a job"))
                .await
                .expect("enqueue");
            let answered = chrono::Utc::now();
            let job = small.wait(job.id, PATIENCE).await.expect("the job ends");
            let started = job.started_at.expect("a finished job has started_at");
            samples.push((
                (started - enqueued).to_std().unwrap_or_default(),
                (started - job.created_at).to_std().unwrap_or_default(),
                (answered - enqueued).to_std().unwrap_or_default(),
            ));
        }
        samples
    };
    let mut samplers = tokio::task::JoinSet::new();
    for _ in 0..SAMPLERS {
        samplers.spawn(sampler(small.clone(), db.store.clone()));
    }
    let mut samples = Vec::with_capacity(PICKUPS);
    while let Some(taken) = samplers.join_next().await {
        samples.extend(taken.expect("a sampler"));
    }
    let taken = samples.len();
    if let Some(log) = &anatomy {
        print_slowest_pickups(&db.url, log).await;
    }
    let (mut call, mut accepted, mut enqueue) = (Vec::new(), Vec::new(), Vec::new());
    for (c, a, e) in samples {
        call.push(c);
        accepted.push(a);
        enqueue.push(e);
    }
    let quantiles = |d: &mut Vec<Duration>| {
        d.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        (ms(d[taken / 2]), ms(d[(taken * 99 / 100).min(taken - 1)]))
    };
    let ((p50, p99), (accepted_p50, accepted_p99), (enqueue_p50, enqueue_p99)) = (
        quantiles(&mut call),
        quantiles(&mut accepted),
        quantiles(&mut enqueue),
    );
    Pickups {
        p50,
        p99,
        accepted_p50,
        accepted_p99,
        enqueue_p50,
        enqueue_p99,
        samples: taken,
    }
}

/// `CORRAL_BENCH_PICKUP_ANATOMY=1` (PostgreSQL): the six slowest pickups,
/// each with what the host did around it, in ms from the job's
/// `created_at`: the claims that took jobs, from the jobs' `started_at`
/// (which a claim sets once for all its jobs, to its start), and from the
/// host's trace ([`corral::worker::CLAIMS_TRACE`]) every claim, empty ones
/// too (`lane`/`loop`, the tenants it was for, jobs asked and taken, how
/// long it took) and every announcement it heard. Tells a job that waited
/// for a claim from one whose enqueue had not committed yet, and a fresh
/// lane that was busy from one that was not told.
async fn print_slowest_pickups(url: &str, log: &Path) {
    use chrono::{DateTime, Utc};
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let slow: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = sqlx::query_as(
        "WITH slow AS (SELECT created_at, started_at FROM jobs WHERE tenant_id = 'small' \
                       ORDER BY started_at - created_at DESC LIMIT 6) \
         SELECT s.created_at, s.started_at, \
                coalesce((SELECT string_agg(format('%s:%s', \
                                   round(extract(epoch FROM c.at - s.created_at) * 1000, 1), c.n), \
                                   ' ' ORDER BY c.at) \
                          FROM (SELECT started_at AS at, count(*) AS n FROM jobs \
                                WHERE started_at BETWEEN s.created_at - interval '30 ms' AND s.started_at \
                                GROUP BY started_at) c), '') \
         FROM slow s ORDER BY s.started_at - s.created_at DESC",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the slowest pickups");
    // The trace: (when, what), in the order of `when`.
    let mut traced: Vec<(DateTime<Utc>, String)> = Vec::new();
    let text = std::fs::read_to_string(log).expect("the host's log");
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["target"] != corral::worker::CLAIMS_TRACE {
            continue;
        }
        let time = |field: &str| {
            event[field]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        };
        let entry = match event["message"].as_str() {
            Some("claim") => time("started").map(|at| {
                let by = if event["lane"] == true {
                    "lane"
                } else {
                    "loop"
                };
                let ms = event["ms"].as_f64().unwrap_or_default();
                let (tenants, asked, took) = (&event["tenants"], &event["asked"], &event["took"]);
                (
                    at,
                    format!("{by} claim for {tenants}: {took} of {asked} jobs, {ms:.1} ms"),
                )
            }),
            Some("announced") => time("timestamp").map(|at| {
                let (tenant, ready, free) =
                    (&event["tenant"], &event["loop_ready"], &event["lane_free"]);
                (
                    at,
                    format!("announced {tenant} (loop ready {ready}, lane permits {free})"),
                )
            }),
            _ => None,
        };
        traced.extend(entry);
    }
    traced.sort_by_key(|(at, _)| *at);
    for (created, started, claims) in slow {
        let ms =
            |at: DateTime<Utc>| (at - created).num_microseconds().unwrap_or_default() as f64 / 1e3;
        eprintln!(
            "pickup {:.1} ms (created {}); claims that took jobs (ms:jobs): {claims}",
            ms(started),
            created.format("%H:%M:%S%.6f")
        );
        let window = created - chrono::Duration::milliseconds(30)
            ..=started + chrono::Duration::milliseconds(5);
        for (at, what) in traced.iter().filter(|(at, _)| window.contains(at)) {
            eprintln!("  {:7.1} {what}", ms(*at));
        }
    }
}

/// Whether to print the slowest pickups' anatomy
/// (`CORRAL_BENCH_PICKUP_ANATOMY=1`).
fn anatomy() -> bool {
    std::env::var("CORRAL_BENCH_PICKUP_ANATOMY").is_ok_and(|v| v == "1")
}

/// A `corral serve` with its API, stopped when the measurement ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `CORRAL_BENCH_QUICK=1`: one round of one host only, while iterating.
fn quick() -> bool {
    std::env::var("CORRAL_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// `CORRAL_BENCH_PICKUPS=1`: the pickup measurement only, while iterating.
fn pickups_only() -> bool {
    std::env::var("CORRAL_BENCH_PICKUPS").is_ok_and(|v| v == "1")
}

/// `CORRAL_BENCH_PICKUPS=1`'s line.
async fn print_pickups(kind: Kind, backend: &str, cache: &Path) {
    let mut line = json!({"bench": "serve", "backend": backend, "quick": true});
    merge(&mut line, pickups_under_backlog(kind, cache).await.json());
    println!("{line}");
}

/// Add `extra`'s fields to the object `line`.
fn merge(line: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
}

async fn postgres(cache: &Path, peer: Option<&Path>) {
    if pickups_only() {
        return print_pickups(Kind::Postgres, "postgres", cache).await;
    }
    if quick() {
        let (per_s, wall) = drain(Kind::Postgres, cache, 1).await;
        println!(
            r#"{{"bench":"serve","backend":"postgres","quick":true,"per_s":{per_s:.0},"wall_per_s":{wall:.0}}}"#
        );
        return;
    }
    let (mut one, mut wall, mut four, mut peers) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let (per_s, wall_per_s) = drain(Kind::Postgres, cache, 1).await;
        eprintln!("postgres round {round}: 1 host {per_s:.0}/s (wall {wall_per_s:.0}/s)");
        one.push(per_s);
        wall.push(wall_per_s);
        if let Some(peer) = peer {
            let per_s = peer_round(peer);
            eprintln!("postgres round {round}: graphile_worker {per_s:.0}/s");
            peers.push(per_s);
        }
        let (per_s, _) = drain(Kind::Postgres, cache, 4).await;
        eprintln!("postgres round {round}: 4 hosts {per_s:.0}/s");
        four.push(per_s);
    }
    let pickups = pickups_under_backlog(Kind::Postgres, cache).await;
    let (one, wall, four) = (median(one), median(wall), median(four));
    let peer = (!peers.is_empty()).then(|| median(peers));
    let mut line = json!({
        "bench": "serve",
        "backend": "postgres",
        "n": N,
        "concurrency": concurrency(),
        "per_s": one.round(),
        "wall_per_s": wall.round(),
        "peer": "graphile_worker@0.14.1+localqueue, concurrency 50",
        "peer_per_s": peer.map(f64::round),
        "over_peer": peer.map(|p| (one / p * 100.0).round() / 100.0),
        "hosts4_per_s": four.round(),
        "hosts4_over_1": (four / one * 100.0).round() / 100.0,
        "targets": {"per_s": 15_000, "over_peer": 1.0, "hosts4_over_1": 1.0, "pickup_p99_ms": 20},
        "meets_targets": one >= 15_000.0 && peer.is_some_and(|p| one >= p) && four >= one && pickups.p99 <= 20.0,
    });
    merge(&mut line, pickups.json());
    println!("{line}");
}

async fn sqlite(cache: &Path) {
    if pickups_only() {
        return print_pickups(Kind::Sqlite, "sqlite", cache).await;
    }
    if quick() {
        let (per_s, wall) = drain(Kind::Sqlite, cache, 1).await;
        println!(
            r#"{{"bench":"serve","backend":"sqlite","quick":true,"per_s":{per_s:.0},"wall_per_s":{wall:.0}}}"#
        );
        return;
    }
    let (mut one, mut wall) = (vec![], vec![]);
    for round in 0..ROUNDS {
        let (per_s, wall_per_s) = drain(Kind::Sqlite, cache, 1).await;
        eprintln!("sqlite round {round}: {per_s:.0}/s (wall {wall_per_s:.0}/s)");
        one.push(per_s);
        wall.push(wall_per_s);
    }
    let pickups = pickups_under_backlog(Kind::Sqlite, cache).await;
    let (one, wall) = (median(one), median(wall));
    let mut line = json!({
        "bench": "serve",
        "backend": "sqlite",
        "n": N,
        "concurrency": concurrency(),
        "per_s": one.round(),
        "wall_per_s": wall.round(),
        "targets": {"per_s": 12_000, "pickup_p99_ms": 20},
        "meets_targets": one >= 12_000.0 && pickups.p99 <= 20.0,
    });
    merge(&mut line, pickups.json());
    println!("{line}");
}
