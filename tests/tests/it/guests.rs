//! Python and JavaScript plugins (built by `scripts/plugins` with
//! componentize-py and componentize-js, helpers included) end to end through
//! the queue on both backends: uploaded and compiled over the API, claimed by
//! a real worker, their outcomes, retries, logs and memory limit read back
//! over the API. Also: interpreter components, a 40 MB one included, compile
//! once and load from the cache after a restart, and both csv-stats plugins
//! agree.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use corral::model::OutcomeKind;
use corral::runtime::{AttemptRequest, JobInput, LoadSource};
use corral_tests::api::{app, call, tenant_with_key, upload};
use corral_tests::db::TestDb;
use corral_tests::worker::{Host, config};
use corral_tests::{Guest, guest_plugin_bytes, runtime_in, shared_runtime};
use serde_json::{Value, json};

/// The failure path of every wait: far longer than anything should take
/// (the first upload of an interpreter compiles it, ~10-30 s here).
const PATIENCE: Duration = Duration::from_secs(300);

/// The probe's memory limit; its `allocate_mb` case asks for more.
const PROBE_MEMORY_MB: u64 = 48;

corral_tests::on_both_backends!(
    python_plugins_run_through_the_queue,
    javascript_plugins_run_through_the_queue,
);

async fn python_plugins_run_through_the_queue(db: TestDb) {
    through_the_queue(db, Guest::Python).await;
}

async fn javascript_plugins_run_through_the_queue(db: TestDb) {
    through_the_queue(db, Guest::JavaScript).await;
}

async fn push(app: &axum::Router, key: &str, guest: Guest, name: &str, query: &str) {
    let (status, body) = upload(
        app,
        key,
        &format!("/v1/plugins/{name}{query}"),
        guest_plugin_bytes(guest, name),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{guest:?} {name}: {body}");
}

async fn enqueue(app: &axum::Router, key: &str, plugin: &str, input: Value) -> uuid::Uuid {
    let (status, job) = call(app, Method::POST, "/v1/jobs")
        .key(key)
        .json(json!({"plugin": plugin, "input": input}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job["id"].as_str().unwrap().parse().unwrap()
}

async fn get(app: &axum::Router, key: &str, path: &str) -> Value {
    let (status, body) = call(app, Method::GET, path).key(key).send().await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// The outcomes of a job's attempts, first first.
async fn outcomes(app: &axum::Router, key: &str, id: uuid::Uuid) -> Vec<String> {
    get(app, key, &format!("/v1/jobs/{id}/attempts")).await["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect()
}

async fn through_the_queue(db: TestDb, guest: Guest) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(
        &app,
        &key,
        guest,
        "probe",
        &format!("?memory_mb={PROBE_MEMORY_MB}&max_attempts=3"),
    )
    .await;
    push(&app, &key, guest, "greet", "").await;
    push(&app, &key, guest, "csv-stats", "").await;
    let (status, body) = call(&app, Method::PATCH, "/v1/plugins/greet")
        .key(&key)
        .json(json!({"config": {"punctuation": "?"}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let greeting = enqueue(&app, &key, "greet", json!({"name": "Ada"})).await;
    let stats = enqueue(
        &app,
        &key,
        "csv-stats",
        json!({"csv": "city,price\nParis,3\nOslo,\"1.5\"\nParis,4.5\n"}),
    )
    .await;
    let logged = enqueue(&app, &key, "probe", json!({"log": "hello from the guest"})).await;
    let retried = enqueue(&app, &key, "probe", json!({"succeed_on_attempt": 2})).await;
    let fatal = enqueue(&app, &key, "probe", json!({"fatal": "the input is wrong"})).await;
    let raised = enqueue(&app, &key, "probe", json!({"raise": "unexpected"})).await;
    let hog = enqueue(
        &app,
        &key,
        "probe",
        json!({"allocate_mb": PROBE_MEMORY_MB * 2}),
    )
    .await;
    let bad_input = enqueue(&app, &key, "greet", json!({"name": ""})).await;
    // A 40 MB component: streamed up, compiled, stored and fetched by the worker.
    let ballast = if guest == Guest::Python {
        push(&app, &key, guest, "ballast", "").await;
        Some(enqueue(&app, &key, "ballast", json!({})).await)
    } else {
        None
    };

    let host = Host::start(&db, config("host-a"));
    db.wait_until_drained(Some("acme"), PATIENCE).await;
    host.stop().await;

    // A success, with the helper's log line, progress and config.
    let job = get(&app, &key, &format!("/v1/jobs/{greeting}")).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["result"], json!({"greeting": "Hello, Ada?"}));
    assert_eq!(job["progress"]["percent"], 50, "{job}");
    let logs = get(&app, &key, &format!("/v1/jobs/{greeting}/logs")).await;
    assert_eq!(logs["logs"][0]["log"], "[info] greeting Ada (attempt 1)\n");

    // Real work with the language's own library.
    let job = get(&app, &key, &format!("/v1/jobs/{stats}")).await;
    assert_eq!(job["state"], "completed", "{job}");
    let result = &job["result"];
    assert_eq!(result["rows"], 3);
    assert_eq!(
        result["columns"][0]["top"][0],
        json!({"value": "Paris", "count": 2})
    );
    assert_eq!(result["columns"][1]["type"], "number");
    assert_eq!(result["columns"][1]["mean"], 3.0);

    // The helper's log line and the guest's stdout, in the job's log.
    let logs = get(&app, &key, &format!("/v1/jobs/{logged}/logs")).await;
    assert_eq!(
        logs["logs"][0]["log"],
        "[info] hello from the guest\nstdout: hello from the guest\n"
    );

    // A retryable error is retried, and the retry succeeds.
    let job = get(&app, &key, &format!("/v1/jobs/{retried}")).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["result"]["attempt"], 2);
    assert_eq!(outcomes(&app, &key, retried).await, ["failed", "completed"]);
    let attempts = get(&app, &key, &format!("/v1/jobs/{retried}/attempts")).await;
    assert_eq!(
        attempts["attempts"][0]["message"],
        "attempt 1 fails; attempt 2 will succeed"
    );

    // A fatal error dead-letters at once, as does bad input.
    for (id, message) in [
        (fatal, "the input is wrong"),
        (bad_input, "the input needs a non-empty \"name\""),
    ] {
        let job = get(&app, &key, &format!("/v1/jobs/{id}")).await;
        assert_eq!(job["state"], "dead", "{job}");
        assert_eq!(outcomes(&app, &key, id).await, ["fatal"]);
        let attempts = get(&app, &key, &format!("/v1/jobs/{id}/attempts")).await;
        assert_eq!(attempts["attempts"][0]["message"], message);
    }

    // An exception the helper does not know is retryable, with its
    // traceback or stack in the log.
    let job = get(&app, &key, &format!("/v1/jobs/{raised}")).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(
        outcomes(&app, &key, raised).await,
        ["failed", "failed", "failed"]
    );
    let logs = get(&app, &key, &format!("/v1/jobs/{raised}/logs")).await;
    let log = logs["logs"][0]["log"].as_str().unwrap();
    let error = match guest {
        Guest::Python => "ValueError: unexpected",
        Guest::JavaScript => "TypeError: unexpected",
    };
    assert!(log.starts_with("[error] ") && log.contains(error), "{log}");

    if let Some(id) = ballast {
        let job = get(&app, &key, &format!("/v1/jobs/{id}")).await;
        assert_eq!(job["result"], ballast_result(), "{job}");
    }

    // Past the memory limit: `memory_exceeded`, dead at once.
    let job = get(&app, &key, &format!("/v1/jobs/{hog}")).await;
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(outcomes(&app, &key, hog).await, ["memory_exceeded"]);
    let attempts = get(&app, &key, &format!("/v1/jobs/{hog}/attempts")).await;
    let attempt = &attempts["attempts"][0];
    let limit = PROBE_MEMORY_MB << 20;
    assert!(
        attempt["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("memory limit of {limit} bytes reached")),
        "{attempt}"
    );
    assert!(attempt["peak_memory_bytes"].as_u64().unwrap() <= limit);
}

fn request(plugin: &str, input: &Value) -> AttemptRequest {
    AttemptRequest {
        job: JobInput {
            id: "job-1".into(),
            tenant: "tenant-a".into(),
            plugin: plugin.into(),
            attempt: 1,
            max_attempts: 3,
            input: input.to_string(),
            context: None,
        },
        ..AttemptRequest::default()
    }
}

/// Interpreter components (10-40 MB) are compiled on their first load, and
/// a restarted runtime loads the compiled artifact instead of compiling again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interpreters_compile_once_and_load_from_the_cache_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let greeting = json!({"greeting": "Hello, Grace!"});
    for (guest, name, result) in [
        (Guest::Python, "greet", &greeting),
        (Guest::JavaScript, "greet", &greeting),
        (Guest::Python, "ballast", &ballast_result()),
    ] {
        let bytes = guest_plugin_bytes(guest, name);
        let first = runtime_in(dir.path());
        let compiled = first.load(&bytes).await.unwrap();
        assert_eq!(compiled.source, LoadSource::Compiled, "{guest:?} {name}");
        drop(first);

        let restarted = runtime_in(dir.path());
        let cached = restarted.load(&bytes).await.unwrap();
        assert_eq!(cached.source, LoadSource::DiskCache, "{guest:?} {name}");
        let report = restarted
            .run(&cached, request(name, &json!({"name": "Grace"})))
            .await;
        assert_eq!(
            report.outcome,
            OutcomeKind::Completed,
            "{guest:?} {name}: {report:?}"
        );
        assert_eq!(
            &serde_json::from_str::<Value>(report.result.as_deref().unwrap()).unwrap(),
            result
        );
    }
}

/// What `ballast` answers: the CRC-32 of its 20 MiB, as CPython computes it
/// natively, so its memory image arrived intact.
fn ballast_result() -> Value {
    json!({"ballast_bytes": 20 << 20, "crc32": 2_569_237_419u32})
}

/// The Python and JavaScript csv-stats plugins give the same statistics
/// (to floating-point rounding: Python sums exactly, JavaScript in order)
/// and the same refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_csv_stats_plugins_agree() {
    let csv = "name,score,team,joined\n\
               Ada,91.5,red,2021\n\
               \"Hopper, Grace\",78,blue,\n\
               Alan,,red,2019\n\
               \"Lin \"\"Q\"\"\",1e2,green,2020\n\
               \n\
               Kay,-3.25,red,2022\n";
    let mut results = Vec::new();
    for guest in [Guest::Python, Guest::JavaScript] {
        let plugin = shared_runtime()
            .load(&guest_plugin_bytes(guest, "csv-stats"))
            .await
            .unwrap();
        let report = shared_runtime()
            .run(&plugin, request("csv-stats", &json!({"csv": csv})))
            .await;
        assert_eq!(
            report.outcome,
            OutcomeKind::Completed,
            "{guest:?}: {report:?}"
        );
        results.push(serde_json::from_str::<Value>(report.result.as_deref().unwrap()).unwrap());

        let ragged = shared_runtime()
            .run(
                &plugin,
                request("csv-stats", &json!({"csv": "a,b\n1,2\n3\n"})),
            )
            .await;
        assert_eq!(ragged.outcome, OutcomeKind::Fatal, "{guest:?}");
        assert_eq!(
            ragged.message.as_deref(),
            Some("line 3: 1 fields, the header has 2"),
            "{guest:?}"
        );
        let empty = shared_runtime()
            .run(&plugin, request("csv-stats", &json!({"csv": ""})))
            .await;
        assert_eq!(
            empty.message.as_deref(),
            Some("the CSV has no header row"),
            "{guest:?}"
        );
    }
    let python = &results[0];
    assert_eq!(python["rows"], 5);
    assert_eq!(
        python["columns"][0]["top"][1],
        json!({"value": "Alan", "count": 1})
    );
    assert_eq!(
        python["columns"][0]["top"][3],
        json!({"value": "Kay", "count": 1})
    );
    assert_eq!(python["columns"][1]["missing"], 1);
    assert_eq!(python["columns"][3]["median"], 2020.5);
    assert_close(python, &results[1]);
}

/// Equal JSON, but numbers within a relative 1e-12.
fn assert_close(a: &Value, b: &Value) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(y.abs()), "{x} != {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{a} != {b}");
            x.iter().zip(y).for_each(|(x, y)| assert_close(x, y));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{a} != {b}"
            );
            x.values()
                .zip(y.values())
                .for_each(|(x, y)| assert_close(x, y));
        }
        _ => assert_eq!(a, b),
    }
}
