//! The real binary's operations surface: `--log-format json` writes one JSON
//! object per line, attempts' lines carry the job's fields and requests'
//! lines the request's; a `--mode worker` host answers `/metrics`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use corral::model::{JobState, Limits};
use corral_tests::db::{Kind, TestDb};
use corral_tests::{corral_bin, free_port, http_exchange as http};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(300);
const ADMIN_TOKEN: &str = "an-admin-token-for-the-ops-test";

/// A `corral serve` whose stderr lines arrive on a channel; killed when dropped.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl Serve {
    fn start(database_url: &str, cache: &std::path::Path, port: u16, extra: &[&str]) -> Serve {
        let mut child = Command::new(corral_bin())
            .args(["serve", "--port", &port.to_string(), "--log-format", "json"])
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env("CORRAL_CACHE_DIR", cache.join("artifacts"))
            .env("CORRAL_ADMIN_TOKEN", ADMIN_TOKEN)
            // The worker's debug lines too: `job completed` is one.
            .env("RUST_LOG", "info,corral::worker=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("corral serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Serve {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line (parsed: every line must be JSON) that `wanted`
    /// accepts; panics after PATIENCE.
    fn wait_for(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no line {what} within {PATIENCE:?}; lines:\n{}",
                    self.seen.join("\n")
                )
            });
            self.seen.push(line.clone());
            let json: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
            if wanted(&json) {
                return json;
            }
        }
    }

    fn wait_for_message(&mut self, message: &str) -> Value {
        self.wait_for(message, |line| line["message"] == message)
    }

    fn stop(mut self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "serve exited with {status}");
        // Whatever it wrote while stopping is JSON too.
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            assert!(
                serde_json::from_str::<Value>(&line).is_ok(),
                "a log line that is not JSON: {line}"
            );
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_jobs_and_requests_and_a_worker_host_is_scraped() {
    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", 16).await;
    db.plugin(
        "acme",
        "echo",
        &corral_tests::plugin_bytes("echo"),
        Limits::default(),
        3,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut serve = Serve::start(&db.url, cache.path(), port, &[]);
    serve.wait_for_message("the API is listening");

    let admin = format!("Bearer {ADMIN_TOKEN}");
    let key = http(
        port,
        "POST",
        "/v1/tenants/acme/keys",
        &[("Authorization", &admin)],
        "",
    );
    assert_eq!(key.status, 201, "{}", key.body);
    let key: Value = serde_json::from_str(&key.body).unwrap();
    let bearer = format!("Bearer {}", key["key"].as_str().unwrap());
    let created = http(
        port,
        "POST",
        "/v1/jobs",
        &[
            ("Authorization", &bearer),
            ("X-Request-Id", "ops-test-request-1"),
        ],
        r#"{"plugin": "echo", "input": {"hello": "logs"}}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.headers.contains("x-request-id: ops-test-request-1"),
        "the request id is echoed: {}",
        created.headers
    );
    let job: Value = serde_json::from_str(&created.body).unwrap();
    let job_id = job["id"].as_str().unwrap().to_string();

    // The request's closing line: its span holds method, route, id and tenant.
    let request = serve.wait_for("closing the job's request", |line| {
        line["message"] == "request finished" && line["span"]["request_id"] == "ops-test-request-1"
    });
    assert_eq!(request["status"], 201, "{request}");
    assert!(request["latency_ms"].as_f64().is_some(), "{request}");
    assert_eq!(request["span"]["name"], "request");
    assert_eq!(request["span"]["method"], "POST");
    assert_eq!(request["span"]["path"], "/v1/jobs");
    assert_eq!(request["span"]["tenant"], "acme", "{request}");
    assert_eq!(request["level"], "INFO");
    assert!(request["timestamp"].as_str().is_some());

    // The attempt's line, inside the attempt's span.
    let attempt = serve.wait_for("about the job's attempt", |line| {
        line["message"] == "attempt finished" && line["span"]["job"] == job_id.as_str()
    });
    assert_eq!(attempt["outcome"], "completed", "{attempt}");
    assert_eq!(attempt["span"]["name"], "attempt");
    assert_eq!(attempt["span"]["tenant"], "acme");
    assert_eq!(attempt["span"]["attempt"], 1);
    assert_eq!(attempt["span"]["plugin"], "echo");
    assert_eq!(attempt["span"]["version"], 1);
    assert!(
        attempt["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == "attempt")),
        "{attempt}"
    );
    // The recorder's line, once the outcome is written (and counted), in the same span.
    let recorded = serve.wait_for("about the job's outcome", |line| {
        line["message"] == "job completed" && line["span"]["job"] == job_id.as_str()
    });
    assert_eq!(recorded["span"]["attempt"], 1, "{recorded}");
    let job_id: uuid::Uuid = job_id.parse().unwrap();
    let state = db
        .store
        .job_get("acme", job_id)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, JobState::Completed);

    // A worker-only host serves the ops routes on its port, and only those.
    let worker_port = free_port();
    let mut worker = Serve::start(
        &db.url,
        cache.path(),
        worker_port,
        &["--mode", "worker", "--host-id", "worker-only"],
    );
    worker.wait_for_message("the ops endpoints are listening");
    let metrics = http(worker_port, "GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics
            .headers
            .contains("content-type: application/openmetrics-text"),
        "{}",
        metrics.headers
    );
    assert!(metrics.body.contains("corral_worker_capacity"));
    assert!(metrics.body.contains("corral_database_up 1"));
    assert!(metrics.body.contains("corral_jobs{state=\"available\"} 0"));
    assert!(metrics.body.ends_with("# EOF\n"));
    assert_eq!(http(worker_port, "GET", "/health", &[], "").status, 200);
    assert_eq!(http(worker_port, "GET", "/ready", &[], "").status, 200);
    assert_eq!(
        http(
            worker_port,
            "GET",
            "/v1/jobs",
            &[("Authorization", &bearer)],
            ""
        )
        .status,
        404,
        "a worker host serves no API"
    );
    // The combined host's own /metrics counted the job it ran.
    let metrics = http(port, "GET", "/metrics", &[], "");
    assert!(
        metrics
            .body
            .contains("corral_attempts_total{outcome=\"completed\"} 1"),
        "{}",
        metrics.body
    );
    worker.stop();
    serve.stop();
}
