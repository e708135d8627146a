//! The sandbox runtime against real compiled plugins: every hostile plugin
//! gives its typed outcome, the host survives them all at once, fuel is
//! deterministic, logs stay bounded, bad components are refused clearly,
//! and compiled artifacts survive a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral::model::{Limits, OutcomeKind};
use corral::runtime::{
    AttemptReport, AttemptRequest, Compiler, JobInput, LoadSource, Progress, ProgressSink, Runtime,
    RuntimeConfig, RuntimeError,
};
use corral_tests::{corral_bin, load, plugin_bytes, runtime_in, shared_runtime};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The failure path of every wait: far longer than anything should take.
const PATIENCE: Duration = Duration::from_secs(120);

fn request(input: Value) -> AttemptRequest {
    AttemptRequest {
        job: JobInput {
            id: "job-1".into(),
            tenant: "tenant-a".into(),
            plugin: "test".into(),
            attempt: 1,
            max_attempts: 3,
            input: input.to_string(),
            context: None,
        },
        ..AttemptRequest::default()
    }
}

async fn run(name: &str, request: AttemptRequest) -> AttemptReport {
    let plugin = load(name).await;
    tokio::time::timeout(PATIENCE, shared_runtime().run(&plugin, request))
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {PATIENCE:?}"))
}

fn result_json(report: &AttemptReport) -> Value {
    let text = report
        .result
        .as_deref()
        .unwrap_or_else(|| panic!("no result: {report:#?}"));
    serde_json::from_str(text).expect("result is JSON")
}

/// One case of the hostile zoo: plugin, input, limits, expected outcome.
fn zoo() -> Vec<(&'static str, AttemptRequest, OutcomeKind)> {
    let short = |input: Value| {
        let mut r = request(input);
        r.limits.timeout_ms = 1_000;
        r
    };
    vec![
        (
            "echo",
            request(json!({"hello": "world"})),
            OutcomeKind::Completed,
        ),
        ("spin", request(json!({})), OutcomeKind::FuelExhausted),
        (
            "alloc-bomb",
            request(json!({})),
            OutcomeKind::MemoryExceeded,
        ),
        ("stack-overflow", request(json!({})), OutcomeKind::Trapped),
        ("panic", request(json!({})), OutcomeKind::Trapped),
        ("fatal-error", request(json!({})), OutcomeKind::Fatal),
        (
            "flaky",
            request(json!({"succeed_on_attempt": 2})),
            OutcomeKind::Failed,
        ),
        (
            "big-output",
            request(json!({})),
            OutcomeKind::OutputTooLarge,
        ),
        ("log-flood", request(json!({})), OutcomeKind::OutputTooLarge),
        ("not-json", request(json!({})), OutcomeKind::InvalidResult),
        ("nul-bytes", request(json!({})), OutcomeKind::InvalidResult),
        ("sleep-forever", short(json!({})), OutcomeKind::Timeout),
        ("escape", request(json!({})), OutcomeKind::Completed),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_plugin_gives_its_outcome() {
    for (name, request, expected) in zoo() {
        let report = run(name, request).await;
        assert_eq!(report.outcome, expected, "{name}: {report:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_carry_the_details_that_explain_them() {
    let report = run("stack-overflow", request(json!({}))).await;
    let message = report.message.unwrap_or_default();
    assert!(
        message.starts_with("wasm trap: call stack exhausted"),
        "{message}"
    );
    assert!(
        message.contains("stack_overflow::deeper"),
        "backtrace names the function: {message}"
    );
    assert!(message.len() < 4096, "the backtrace is capped");

    let report = run("panic", request(json!({}))).await;
    assert!(
        report.log.text.contains("panicked on purpose"),
        "{:?}",
        report.log
    );

    let report = run("alloc-bomb", request(json!({}))).await;
    assert!(report.peak_memory_bytes <= Limits::default().memory_bytes);
    assert!(report.peak_memory_bytes > Limits::default().memory_bytes / 2);

    let report = run("spin", request(json!({}))).await;
    assert_eq!(report.fuel_consumed, Limits::default().fuel);

    let report = run("nul-bytes", request(json!({}))).await;
    assert!(report.message.unwrap_or_default().contains("NUL character"));
    assert_eq!(
        report.log.text,
        "out\u{FFFD}put\nerr\u{FFFD}or\n[info] log\u{FFFD}line\n"
    );

    let report = run("fatal-error", request(json!({}))).await;
    assert_eq!(
        report.message.as_deref(),
        Some("this input can never be processed")
    );

    let mut second = request(json!({"succeed_on_attempt": 2}));
    second.job.attempt = 2;
    let report = run("flaky", second).await;
    assert_eq!(report.outcome, OutcomeKind::Completed);
    assert_eq!(result_json(&report), json!({"succeeded_on_attempt": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_escape_plugin_gets_nothing() {
    let report = run("escape", request(json!({}))).await;
    assert_eq!(report.outcome, OutcomeKind::Completed, "{report:#?}");
    let got = result_json(&report);
    for denied in [
        "read_file",
        "read_relative_file",
        "list_root",
        "write_file",
        "tcp_connect",
        "tcp_listen",
        "udp_bind",
        "dns",
    ] {
        assert!(
            got[denied].get("denied").is_some(),
            "{denied} was not denied: {got:#}"
        );
    }
    assert_eq!(got["env"], json!([]), "no environment");
    assert_eq!(got["args"], json!([]), "no arguments");
    assert_eq!(got["stdin"], json!({"ok": 0}), "stdin is closed");
}

/// A pool slot is reset between attempts: what one attempt wrote into its
/// memory (its heap and statics, and its stack where the compiler keeps
/// it) is gone for the next attempt in the same slot. With one memory in the pool, every attempt takes the same slot, so
/// the reset that keeps pages resident (`MEMORY_KEEP_RESIDENT_BYTES`,
/// PAGEMAP_SCAN) is the one tested, not a fresh slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_finds_nothing_an_earlier_one_left_in_its_slot() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = corral_tests::runtime_with_pool(
        cache.path(),
        corral::runtime::PoolSizes {
            attempts: 1,
            core_instances: 8,
            memories: 1,
            tables: 8,
        },
    );
    let plugin = runtime
        .load(&plugin_bytes("residue"))
        .await
        .expect("residue loads");
    let attempt = |input: Value| {
        let (runtime, plugin) = (&runtime, &plugin);
        async move {
            let report = tokio::time::timeout(PATIENCE, runtime.run(plugin, request(input)))
                .await
                .expect("the attempt finishes");
            assert_eq!(report.outcome, OutcomeKind::Completed, "{report:#?}");
            result_json(&report)
        }
    };
    for round in 0..3 {
        let marker = format!("left-by-attempt-{round}");
        let planted = attempt(json!({"plant": marker})).await;
        // At least the heap's and the static's copies (the stack's is the
        // compiler's to keep or not): the scan sees what is there.
        assert!(
            planted["found"].as_u64() >= Some(2),
            "the scan finds what its own attempt wrote: {planted}"
        );
        let next = attempt(json!({"seek": marker})).await;
        assert_eq!(next["found"], json!(0), "round {round}: {next}");
        assert_eq!(
            next["scanned"], planted["scanned"],
            "the same memory, reset"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_work_with_config_and_progress() {
    let progress = Arc::new(std::sync::Mutex::new(Vec::<Progress>::new()));
    let seen = progress.clone();
    let sink: ProgressSink = Arc::new(move |p: &Progress| seen.lock().unwrap().push(p.clone()));
    let mut req = request(
        json!({"markdown": "# Title\n\nSome *emphasis* and a table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"}),
    );
    req.config = Arc::new(BTreeMap::from([(
        "wrapper_class".to_string(),
        "doc".to_string(),
    )]));
    req.progress = Some(sink);
    let report = run("markdown", req).await;
    assert_eq!(report.outcome, OutcomeKind::Completed, "{report:#?}");
    let out = result_json(&report);
    let html = out["html"].as_str().unwrap();
    assert!(html.starts_with("<div class=\"doc\">"), "{html}");
    assert!(
        html.contains("<h1>Title</h1>")
            && html.contains("<em>emphasis</em>")
            && html.contains("<table>")
    );
    assert_eq!(out["headings"], json!(["Title"]));
    assert!(
        report.log.text.contains("[info] rendered"),
        "{:?}",
        report.log
    );
    let progress = progress.lock().unwrap().clone();
    assert_eq!(
        progress,
        vec![Progress {
            percent: 100,
            message: "rendered".into()
        }]
    );
    assert_eq!(report.progress, progress.last().cloned());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_zoo_at_once_leaves_the_host_healthy() {
    let runtime = shared_runtime();
    let mut tasks = Vec::new();
    for round in 0..3 {
        for (name, request, expected) in zoo() {
            let plugin = load(name).await;
            tasks.push(tokio::spawn(async move {
                let report = runtime.run(&plugin, request).await;
                (round, name, expected, report)
            }));
        }
    }
    for task in tasks {
        let (round, name, expected, report) = tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the zoo finishes")
            .expect("no task panicked");
        assert_eq!(
            report.outcome, expected,
            "round {round}, {name}: {report:#?}"
        );
    }
    // Afterwards the host still runs echo correctly.
    let report = run("echo", request(json!({"still": ["alive", 1, true]}))).await;
    assert_eq!(report.outcome, OutcomeKind::Completed);
    assert_eq!(result_json(&report), json!({"still": ["alive", 1, true]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_for_the_same_input_is_the_same_every_run() {
    let input = json!({"markdown": "# Fuel\n\n".to_string() + &"- item *x*\n".repeat(50)});
    let mut fuel = Vec::new();
    for _ in 0..5 {
        let report = run("markdown", request(input.clone())).await;
        assert_eq!(report.outcome, OutcomeKind::Completed);
        fuel.push(report.fuel_consumed);
    }
    // A second runtime (a "restart") counts the same.
    let dir = tempfile::tempdir().unwrap();
    let other = runtime_in(dir.path());
    let plugin = other.load(&plugin_bytes("markdown")).await.unwrap();
    fuel.push(other.run(&plugin, request(input)).await.fuel_consumed);
    assert!(fuel[0] > 0);
    assert!(
        fuel.iter().all(|f| *f == fuel[0]),
        "fuel differs between runs: {fuel:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_logs_respect_their_bound() {
    for bound in [Limits::default().log_bytes, 10_000, 100] {
        let mut req = request(json!({"megabytes": 2}));
        req.limits.log_bytes = bound;
        let report = run("log-flood", req).await;
        assert_eq!(report.outcome, OutcomeKind::OutputTooLarge);
        assert!(
            report.log.text.len() as u64 <= bound,
            "log of {} bytes over its bound {bound}",
            report.log.text.len()
        );
        assert!(report.log.truncated());
        assert!(report.log.dropped_bytes > 2_000_000 - bound);
        if bound > 1000 {
            assert!(
                report.log.text.ends_with("more bytes dropped]\n"),
                "marker at the end"
            );
            assert!(
                report.log.text.contains("[info] flood"),
                "host.log lines are kept"
            );
        }
    }
    // Under the bound, a small flood completes with its whole log.
    let mut req = request(json!({"megabytes": 0}));
    req.limits.log_bytes = 1000;
    let report = run("log-flood", req).await;
    assert_eq!(report.outcome, OutcomeKind::Completed);
    assert!(!report.log.truncated());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_attempt_can_be_cancelled() {
    let plugin = load("spin").await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let mut req = request(json!({}));
    req.limits.fuel = u64::MAX / 2;
    req.limits.timeout_ms = 600_000;
    req.progress = Some(Arc::new(move |_: &Progress| {
        if let Some(tx) = started_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }));
    let cancel = CancellationToken::new();
    req.cancel = cancel.clone();
    let task = tokio::spawn(async move { shared_runtime().run(&plugin, req).await });
    tokio::time::timeout(PATIENCE, started_rx)
        .await
        .unwrap()
        .unwrap();
    cancel.cancel();
    let report = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    assert_eq!(report.outcome, OutcomeKind::Cancelled, "{report:#?}");

    // A guest parked in a WASI clock wait is cancelled too.
    let plugin = load("sleep-forever").await;
    let mut req = request(json!({}));
    req.limits.timeout_ms = 600_000;
    let cancel = CancellationToken::new();
    req.cancel = cancel.clone();
    let task = tokio::spawn(async move { shared_runtime().run(&plugin, req).await });
    cancel.cancel();
    let report = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    assert_eq!(report.outcome, OutcomeKind::Cancelled, "{report:#?}");
}

fn refusal(result: Result<Arc<corral::runtime::Plugin>, RuntimeError>) -> String {
    match result {
        Ok(_) => panic!("the component was accepted"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_components_are_refused_with_clear_messages() {
    let runtime = shared_runtime();

    // Random bytes (deterministic, from a simple LCG).
    let mut x: u64 = 42;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let message = refusal(runtime.load(&random).await);
    assert!(message.contains("not a WebAssembly binary"), "{message}");

    // A valid core module: `(module (func (export "run")))`.
    let core = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x07\x01\x03run\0\0\x0a\x04\x01\x02\0\x0b";
    let message = refusal(runtime.load(core).await);
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );

    // A truncated component.
    let echo = plugin_bytes("echo");
    let message = refusal(runtime.load(&echo[..echo.len() / 2]).await);
    assert!(message.starts_with("invalid component:"), "{message}");

    // A component of another world: names the missing export.
    let message = refusal(runtime.load(&plugin_bytes("wrong-world")).await);
    assert!(
        message.contains("missing export `corral:plugin/handler@0.1.0`"),
        "{message}"
    );
    assert!(
        message.contains("greet"),
        "says what it exports instead: {message}"
    );

    // A component that imports something Corral does not provide: names it.
    let message = refusal(runtime.load(&plugin_bytes("unknown-import")).await);
    assert!(message.contains("test:unknown/vault"), "{message}");

    // Too large: refused before parsing.
    let huge = vec![0u8; corral::runtime::compile::MAX_COMPONENT_BYTES + 1];
    let message = refusal(runtime.load(&huge).await);
    assert!(message.contains("the limit is"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_once_then_loaded_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = plugin_bytes("echo");

    let first = runtime_in(dir.path());
    let digest = corral::model::Digest::of(&bytes);
    assert!(
        first.load_cached(digest).await.unwrap().is_none(),
        "nothing compiled yet"
    );
    let a = first.load(&bytes).await.unwrap();
    assert_eq!(a.source, LoadSource::Compiled);
    let by_digest = first.load_cached(digest).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &by_digest), "in memory, found by digest");
    let again = first.load(&bytes).await.unwrap();
    assert!(
        Arc::ptr_eq(&a, &again),
        "a second load reuses the plugin in memory"
    );
    drop(first);

    // A restart: the artifact comes from disk, nothing is recompiled; a
    // worker finds it by digest alone, without the bytes.
    let by_digest = runtime_in(dir.path());
    let cached = by_digest.load_cached(digest).await.unwrap().unwrap();
    assert_eq!(cached.source, LoadSource::DiskCache);
    assert_eq!(
        by_digest.run(&cached, request(json!([1]))).await.outcome,
        OutcomeKind::Completed
    );
    drop(by_digest);
    assert_eq!(
        corral::model::Digest::parse(&digest.to_string()),
        Some(digest)
    );
    assert_eq!(corral::model::Digest::parse("sha256:zz"), None);
    let second = runtime_in(dir.path());
    let b = second.load(&bytes).await.unwrap();
    assert_eq!(b.source, LoadSource::DiskCache);
    assert_eq!(a.digest(), b.digest());
    let report = second.run(&b, request(json!([1, 2, 3]))).await;
    assert_eq!(result_json(&report), json!([1, 2, 3]));
    drop(second);

    // A corrupt artifact is dropped and the component recompiled.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = runtime_in(dir.path());
    let c = third.load(&bytes).await.unwrap();
    assert_eq!(c.source, LoadSource::Compiled);
    assert_eq!(
        third.run(&c, request(json!(null))).await.outcome,
        OutcomeKind::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compile_over_its_time_limit_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: dir.path().to_path_buf(),
        compiler: Compiler::new(corral_bin()).with_timeout(Duration::from_millis(1)),
        pool: Default::default(),
        max_loaded_bytes: corral::runtime::loaded::MAX_LOADED_PLUGIN_BYTES,
    })
    .unwrap();
    let message = refusal(runtime.load(&plugin_bytes("markdown")).await);
    assert!(message.contains("took longer than 1 ms"), "{message}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing cached"
    );
}

#[test]
fn corral_run_prints_the_outcome_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let corral = |args: &[&str]| {
        std::process::Command::new(corral_bin())
            .args(args)
            .env("CORRAL_CACHE_DIR", dir.path())
            .output()
            .expect("corral runs")
    };
    let echo = corral_tests::plugin_path("echo");
    let out = corral(&["run", echo.to_str().unwrap(), "--input", r#"{"a":1}"#]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "completed");
    assert_eq!(report["result"], r#"{"a":1}"#);
    for field in ["fuel_consumed", "peak_memory_bytes", "duration_us"] {
        assert!(report[field].as_u64().is_some(), "{field} in {report}");
    }

    let spin = corral_tests::plugin_path("spin");
    let out = corral(&["run", spin.to_str().unwrap(), "--fuel", "1000000"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "fuel_exhausted");
    assert_eq!(report["fuel_consumed"], 1_000_000);

    let out = corral(&["run", echo.to_str().unwrap(), "--input", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--input is not valid JSON"));

    let wrong = corral_tests::plugin_path("wrong-world");
    let out = corral(&["run", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing export"));
}
