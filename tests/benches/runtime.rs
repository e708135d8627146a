//! `just bench-runtime`: the per-attempt cost of the `echo` plugin (fresh
//! store + instantiate + run + drop), sequentially and with many concurrent
//! tasks, beside a native Rust function doing the same JSON round trip in the
//! same run (this machine is shared and noisy; compare within a run only).
//!
//! Then the guest languages side by side, Rust's `echo` as their baseline:
//! Python and JavaScript `probe` (the same JSON round trip through the
//! helper) and the 40 MB Python `ballast`. For each, the compile on first
//! load (what an upload pays), the load from the artifact cache in a fresh
//! runtime (what a restart pays), and per-attempt p50/p99.
//!
//! Then outbound HTTP: an attempt of the `fetch` plugin making one GET to a
//! local server, beside the same GET made natively with reqwest (a new
//! connection each time, as the host makes), and beside an attempt of
//! `fetch` that makes no request (so the request's own cost shows).
//!
//! Prints one JSON line. Targets on a 2-core machine: p50 <= 50 us per
//! attempt, >= 10,000 attempts/s with concurrency, an attempt with one
//! request <= 1.5x the native request at the median.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral::model::OutcomeKind;
use corral::runtime::{AttemptRequest, JobInput, LoadSource};
use corral_tests::{Guest, guest_plugin_bytes, load, plugin_bytes, runtime_in, shared_runtime};
use serde_json::{Value, json};

const INPUT: &str = r#"{"id":12345,"name":"corral","tags":["queue","sandbox","wasm"],"nested":{"ratio":1.5,"ok":true}}"#;
const WARMUP: usize = 2_000;
const SEQUENTIAL: usize = 20_000;
const CONCURRENT_TASKS: usize = 64;
const CONCURRENT_PER_TASK: usize = 500;
/// Loads from the cache per guest (each in a fresh runtime); the median is kept.
const CACHE_LOADS: usize = 5;
/// Attempts per guest for the per-attempt percentiles.
const GUEST_ATTEMPTS: usize = 400;
/// Requests per side of the HTTP comparison (after as many for warm-up).
const HTTP_REQUESTS: usize = 1_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// The native baseline: parse the input and encode it again, as echo does.
fn native_echo(input: &str) -> String {
    let value: Value = serde_json::from_str(input).expect("valid input");
    serde_json::to_string(&value).expect("encodes")
}

fn request() -> AttemptRequest {
    request_for("echo", INPUT)
}

fn request_for(plugin: &str, input: &str) -> AttemptRequest {
    AttemptRequest {
        job: JobInput {
            id: "bench".into(),
            tenant: "bench".into(),
            plugin: plugin.into(),
            attempt: 1,
            max_attempts: 1,
            input: input.into(),
            context: None,
        },
        ..AttemptRequest::default()
    }
}

/// One guest's numbers: compile on first load, load from the cache after a
/// restart, per-attempt percentiles.
async fn guest(label: &str, bytes: &[u8], plugin: &str, input: &str) -> Value {
    let cache = tempfile::tempdir().expect("temp dir");
    let runtime = runtime_in(cache.path());
    let started = Instant::now();
    let compiled = runtime.load(bytes).await.expect("compiles");
    let compile = started.elapsed();
    assert_eq!(compiled.source, LoadSource::Compiled, "{label}");
    drop((compiled, runtime));

    let mut loads = Vec::with_capacity(CACHE_LOADS);
    let mut loaded = None;
    for _ in 0..CACHE_LOADS {
        let restarted = runtime_in(cache.path());
        let started = Instant::now();
        let plugin = restarted.load(bytes).await.expect("loads");
        loads.push(started.elapsed());
        assert_eq!(plugin.source, LoadSource::DiskCache, "{label}");
        loaded = Some((restarted, plugin));
    }
    loads.sort();
    let (runtime, loaded) = loaded.expect("loaded at least once");

    let check = runtime.run(&loaded, request_for(plugin, input)).await;
    assert_eq!(check.outcome, OutcomeKind::Completed, "{label}: {check:?}");
    let mut times = Vec::with_capacity(GUEST_ATTEMPTS);
    for _ in 0..GUEST_ATTEMPTS {
        let t = Instant::now();
        let report = runtime.run(&loaded, request_for(plugin, input)).await;
        times.push(t.elapsed());
        debug_assert_eq!(report.outcome, OutcomeKind::Completed);
    }
    times.sort();
    json!({
        "component_mb": round(bytes.len() as f64 / 1e6),
        "compile_ms": round(compile.as_secs_f64() * 1e3),
        "cache_load_ms": round(loads[CACHE_LOADS / 2].as_secs_f64() * 1e3),
        "attempt_p50_us": round(percentile(&times, 0.50)),
        "attempt_p99_us": round(percentile(&times, 0.99)),
        "fuel_per_attempt": check.fuel_consumed,
        "peak_memory_mb": round(check.peak_memory_bytes as f64 / 1e6),
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(bench());
}

async fn bench() {
    let runtime = shared_runtime();
    let plugin = load("echo").await;
    let expected: Value = serde_json::from_str(INPUT).unwrap();
    let check = runtime.run(&plugin, request()).await;
    assert_eq!(check.outcome, OutcomeKind::Completed);
    assert_eq!(
        serde_json::from_str::<Value>(check.result.as_deref().unwrap()).unwrap(),
        expected
    );

    for _ in 0..WARMUP {
        runtime.run(&plugin, request()).await;
    }

    // Sequential: one attempt at a time.
    let mut times = Vec::with_capacity(SEQUENTIAL);
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let report = runtime.run(&plugin, request()).await;
        times.push(t.elapsed());
        debug_assert_eq!(report.outcome, OutcomeKind::Completed);
    }
    let sequential_rate = SEQUENTIAL as f64 / started.elapsed().as_secs_f64();
    times.sort();

    // Concurrent: many tasks on the 2 worker threads.
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|_| {
            let plugin = Arc::clone(&plugin);
            tokio::spawn(async move {
                for _ in 0..CONCURRENT_PER_TASK {
                    let report = shared_runtime().run(&plugin, request()).await;
                    assert_eq!(report.outcome, OutcomeKind::Completed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let concurrent_rate =
        (CONCURRENT_TASKS * CONCURRENT_PER_TASK) as f64 / started.elapsed().as_secs_f64();

    // Native baseline, same input, same run.
    let mut native = Vec::with_capacity(SEQUENTIAL);
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        std::hint::black_box(native_echo(std::hint::black_box(INPUT)));
        native.push(t.elapsed());
    }
    let native_rate = SEQUENTIAL as f64 / started.elapsed().as_secs_f64();
    native.sort();

    // The guest languages, Rust's echo first as their baseline.
    let rust = guest("rust", &plugin_bytes("echo"), "echo", INPUT).await;
    let python = guest(
        "python",
        &guest_plugin_bytes(Guest::Python, "probe"),
        "probe",
        INPUT,
    )
    .await;
    let javascript = guest(
        "javascript",
        &guest_plugin_bytes(Guest::JavaScript, "probe"),
        "probe",
        INPUT,
    )
    .await;
    let python_40mb = guest(
        "python_40mb",
        &guest_plugin_bytes(Guest::Python, "ballast"),
        "ballast",
        "{}",
    )
    .await;
    let over_rust = |g: &Value| {
        round(g["attempt_p50_us"].as_f64().unwrap() / rust["attempt_p50_us"].as_f64().unwrap())
    };

    let http = outbound().await;

    let p50 = percentile(&times, 0.50);
    let line = json!({
        "http": http,
        "guests": {
            "rust": rust,
            "python": python,
            "javascript": javascript,
            "python_40mb": python_40mb,
        },
        "python_over_rust_p50": over_rust(&python),
        "javascript_over_rust_p50": over_rust(&javascript),
        "bench": "runtime",
        "plugin": "echo",
        "attempt_p50_us": round(p50),
        "attempt_p99_us": round(percentile(&times, 0.99)),
        "attempts_per_s_1_task": sequential_rate.round(),
        "attempts_per_s_concurrent": concurrent_rate.round(),
        "concurrent_tasks": CONCURRENT_TASKS,
        "native_p50_us": round(percentile(&native, 0.50)),
        "native_p99_us": round(percentile(&native, 0.99)),
        "native_per_s": native_rate.round(),
        "sandbox_over_native_p50": round(p50 / percentile(&native, 0.50)),
        "target_p50_us": 50,
        "target_concurrent_per_s": 10_000,
        "meets_targets": p50 <= 50.0 && concurrent_rate >= 10_000.0,
    });
    println!("{line}");
}

/// One GET from a plugin (through the sandbox, the allow-list and the
/// network policy) against the same GET made natively, in the same run.
async fn outbound() -> Value {
    use corral::runtime::outbound::{
        AllowEntry, HttpGrant, HttpRules, HttpSettings, NetworkPolicy, OutboundContext,
    };
    let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://127.0.0.1:{port}/hello");

    let settings = HttpSettings {
        allow: vec![AllowEntry::Url(format!("http://127.0.0.1:{port}"))],
        ..HttpSettings::default()
    };
    let grant = HttpGrant {
        allow: settings.validate().expect("valid"),
        limits: settings.limits(),
        secrets: Arc::default(),
        context: Arc::new(
            OutboundContext::new(
                NetworkPolicy {
                    allowed_private: vec!["127.0.0.1/32".parse().expect("a range")],
                },
                b"",
            )
            .expect("context"),
        ),
    };
    let plugin = load("fetch").await;
    let one = json!({"requests": [{"url": url}]}).to_string();
    let none = json!({"requests": []}).to_string();
    let attempt = |input: &str| {
        let mut request = request_for("fetch", input);
        request.http = grant.clone();
        request
    };
    let check = shared_runtime().run(&plugin, attempt(&one)).await;
    assert_eq!(check.outcome, OutcomeKind::Completed, "{check:?}");
    assert_eq!(check.http.calls[0].status, Some(200), "{check:?}");

    // Native: a new connection per request, as the host opens one per request.
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let native_get = || async {
        let body = client
            .get(&url)
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "hi");
    };

    let (mut with_request, mut without, mut native) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..2 * HTTP_REQUESTS {
        // Interleaved, so the machine's noise falls on all three alike.
        let t = Instant::now();
        let report = shared_runtime().run(&plugin, attempt(&one)).await;
        let a = t.elapsed();
        debug_assert_eq!(report.http.calls[0].status, Some(200));
        let t = Instant::now();
        shared_runtime().run(&plugin, attempt(&none)).await;
        let b = t.elapsed();
        let t = Instant::now();
        native_get().await;
        let c = t.elapsed();
        if round >= HTTP_REQUESTS {
            with_request.push(a);
            without.push(b);
            native.push(c);
        }
    }
    for v in [&mut with_request, &mut without, &mut native] {
        v.sort();
    }
    let attempt_p50 = percentile(&with_request, 0.50);
    let native_p50 = percentile(&native, 0.50);
    json!({
        "requests": HTTP_REQUESTS,
        "attempt_with_request_p50_us": round(attempt_p50),
        "attempt_with_request_p99_us": round(percentile(&with_request, 0.99)),
        "attempt_without_request_p50_us": round(percentile(&without, 0.50)),
        "request_in_sandbox_p50_us": round(attempt_p50 - percentile(&without, 0.50)),
        "native_request_p50_us": round(native_p50),
        "native_request_p99_us": round(percentile(&native, 0.99)),
        "attempt_over_native_p50": round(attempt_p50 / native_p50),
        "target_over_native_p50": 1.5,
        "meets_target": attempt_p50 <= 1.5 * native_p50,
    })
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
