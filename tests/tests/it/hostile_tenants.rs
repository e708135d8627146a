//! No tenant can hurt another. Each test performs one attack (or
//! the load that broke a promise) through the public API, a hostile plugin
//! or the real binary, and asserts the bound that now holds.

use std::time::Duration;

use corral::model::{JobState, Limits, NewJob, OutcomeKind};
use corral_tests::db::{Kind, TestDb};
use corral_tests::plugin_bytes;
use corral_tests::serve::ServeProcess;
use sqlx::Connection;

const PATIENCE: Duration = Duration::from_secs(300);

// The attacks that touch the database, on both backends.
corral_tests::on_both_backends!(
    every_path_is_held_to_the_tenants_attempt_quotas,
    a_guests_message_cannot_forge_log_lines,
    deep_json_is_refused_at_enqueue_and_as_a_result,
    ready_keeps_the_databases_words_to_itself,
    an_innocent_job_is_not_charged_for_a_full_pool,
    nul_floods_cost_only_the_logs_room,
    stored_plugin_bytes_are_a_quota_and_deleted_bytes_are_collected,
    schedules_ticks_and_workflow_versions_are_bounded,
    a_costly_expression_fails_its_own_run,
    a_fan_out_cannot_amplify_past_the_tenants_bounds,
    listings_and_event_streams_are_bounded,
);

// ---------------------------------------------------------------------------
// 14. The worker under load: a host holds at most `concurrency` plus one
// batch of claimed-but-unrecorded jobs, and its heartbeat never deadlocks
// with the statement that records outcomes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loaded_host_holds_a_bounded_number_of_claimed_jobs_and_never_deadlocks() {
    const JOBS: usize = 50_000;
    const CONCURRENCY: usize = 256;
    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", CONCURRENCY as u32).await;
    db.plugin("acme", "echo", &plugin_bytes("echo"), Limits::default(), 3)
        .await;
    for batch in 0..JOBS / 1000 {
        let jobs: Vec<NewJob> = (0..1000)
            .map(|i| NewJob::new("echo", format!("{}", batch * 1000 + i)))
            .collect();
        db.store
            .job_insert_batch("acme", &jobs, chrono::Utc::now())
            .await
            .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let mut sampler = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut changes = db.changes();
    let host = ServeProcess::start_with(
        &db.url,
        "loaded",
        cache.path(),
        &[
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--lease-secs",
            "60",
            "--heartbeat-ms",
            "1000",
        ],
    );
    // Sample the host's `running` rows on every change the database
    // announces, until nothing is left to run.
    let bound =
        (CONCURRENCY + corral::worker::MAX_FINISH_BATCH + corral::worker::FRESH_HEADROOM) as i64;
    let (mut most, mut samples) = (0i64, 0u32);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (running, open): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'running' AND leased_by = 'loaded'), \
                    count(*) FILTER (WHERE state IN ('scheduled', 'available', 'running', 'retrying')) \
             FROM jobs",
        )
        .fetch_one(&mut sampler)
        .await
        .unwrap();
        most = most.max(running);
        samples += 1;
        if open == 0 {
            break;
        }
        assert!(
            changes.next(deadline).await,
            "{open} jobs still open; log:\n{}",
            host.log_text()
        );
    }
    let log = host.log_text();
    host.terminate();

    assert!(samples > 10, "sampled while the host ran ({samples})");
    assert!(
        most <= bound,
        "at most {bound} claimed-but-unrecorded jobs, saw {most}"
    );
    assert!(
        !log.contains("deadlock"),
        "no deadlock in the host's log:\n{}",
        log.lines()
            .filter(|l| l.contains("deadlock"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let counts = db.store.job_counts(Some("acme")).await.unwrap();
    assert_eq!(counts.get(&JobState::Completed), Some(&(JOBS as u64)));
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(&mut sampler)
        .await
        .unwrap();
    assert_eq!(attempts, JOBS as i64, "one attempt per job");
}

// ---------------------------------------------------------------------------
// 15. A host restarted under the same `--host-id` (a StatefulSet, a systemd
// unit) must not renew the leases its killed predecessor held.

async fn a_host_restarted_under_its_own_id_lets_its_predecessors_leases_expire(kind: Kind) {
    let db = TestDb::new(kind).await;
    db.tenant("acme", 64).await;
    db.plugin(
        "acme",
        "sleep",
        &plugin_bytes("sleep"),
        Limits::default(),
        3,
    )
    .await;
    let jobs: Vec<NewJob> = (0..6)
        .map(|_| NewJob::new("sleep", r#"{"ms": 3000}"#))
        .collect();
    let ids = db
        .store
        .job_insert_batch("acme", &jobs, chrono::Utc::now())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut changes = db.changes();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut first = ServeProcess::start(&db.url, "steady", cache.path(), &["--concurrency", "4"]);
    let running_when_killed = loop {
        let counts = db.store.job_counts(Some("acme")).await.unwrap();
        if let Some(&n) = counts.get(&JobState::Running) {
            break n;
        }
        assert!(
            changes.next(deadline).await,
            "nothing ran; log:\n{}",
            first.log_text()
        );
    };
    first.kill();
    // The same id again, at once: its heartbeat must leave the dead
    // process's leases alone, so they expire and the janitor retries them.
    let again = ServeProcess::start(&db.url, "steady", cache.path(), &["--concurrency", "4"]);
    loop {
        let counts = db.store.job_counts(Some("acme")).await.unwrap();
        if counts.get(&JobState::Completed) == Some(&6) {
            break;
        }
        assert!(
            changes.next(deadline).await,
            "jobs still open: {counts:?}; log:\n{}",
            again.log_text()
        );
    }
    again.terminate();
    let mut lost = 0;
    for id in &ids {
        let attempts = db.store.attempt_list("acme", id.id).await.unwrap();
        assert_eq!(
            attempts.last().map(|a| a.outcome),
            Some(OutcomeKind::Completed)
        );
        lost += attempts
            .iter()
            .filter(|a| a.outcome == OutcomeKind::LeaseExpired)
            .count() as u64;
    }
    assert!(
        lost >= running_when_killed,
        "the killed process's attempts were recorded as lease_expired ({lost})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_restarted_under_its_own_id_lets_its_predecessors_leases_expire_on_postgres() {
    a_host_restarted_under_its_own_id_lets_its_predecessors_leases_expire(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_restarted_under_its_own_id_lets_its_predecessors_leases_expire_on_sqlite() {
    a_host_restarted_under_its_own_id_lets_its_predecessors_leases_expire(Kind::Sqlite).await;
}

// ---------------------------------------------------------------------------
// 13. The compiler child parses a tenant's bytes: it inherits nothing of the
// host's environment (which holds `CORRAL_ADMIN_TOKEN`, `DATABASE_URL`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiler_child_gets_an_empty_environment() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("environment");
    // A stand-in compiler that writes down the environment it was given,
    // then refuses the bytes as a real compiler refuses a bad component.
    let script = dir.path().join("compiler");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n/usr/bin/env > '{}'\npwd >> '{}'\nexit 2\n",
            seen.display(),
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        std::env::var_os("PATH").is_some(),
        "the test process has an environment to leak"
    );
    let refused = corral::runtime::Compiler::new(&script)
        .compile(&plugin_bytes("echo"))
        .await;
    assert!(refused.is_err());
    let environment = std::fs::read_to_string(&seen).expect("the compiler ran");
    let leaked: Vec<&str> = environment
        .lines()
        .filter(|l| l.contains('='))
        // What the shell sets for itself.
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("OLDPWD=") && !l.starts_with("SHLVL="))
        .collect();
    assert!(leaked.is_empty(), "inherited: {leaked:?}");
    assert_eq!(environment.lines().last(), Some("/"), "runs in /");
}

// ---------------------------------------------------------------------------
// 11. JSON nested deeper than serde_json's 128 levels skipped the NUL check:
// SQLite stored it, PostgreSQL answered 500 (an input) or looped through
// lease expiry (a result). Depth is refused at enqueue and such a result is
// `invalid_result`.

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

async fn deep_json_is_refused_at_enqueue_and_as_a_result(db: TestDb) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{app, assert_error, call, push, tenant_with_key};
    use serde_json::json;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "echo").await;
    push(&app, &key, "deep-result").await;
    // Sent as text: serde_json would not even build such a value.
    let deep = format!(r#"{{"plugin": "echo", "input": {}}}"#, nested(10_000));
    let refused = corral_tests::api::call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .raw(&deep)
        .send()
        .await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("the limit is 64"), "{message}");
    let shallow = format!(r#"{{"plugin": "echo", "input": {}}}"#, nested(64));
    let created = corral_tests::api::call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .raw(&shallow)
        .send()
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(
        db.job_total("acme").await,
        1,
        "the refused job stored nothing"
    );

    let (_, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "deep-result", "input": {"depth": 1000}}))
        .send()
        .await;
    let id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let host = corral_tests::worker::Host::start(&db, corral_tests::worker::config("deep"));
    db.wait_until_drained(Some("acme"), PATIENCE).await;
    host.stop().await;
    let attempts = db.store.attempt_list("acme", id).await.unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "refused once, never retried by lease expiry"
    );
    assert_eq!(attempts[0].outcome, OutcomeKind::InvalidResult);
    assert!(
        attempts[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("nested 1000 levels deep")),
        "{:?}",
        attempts[0].message
    );
}

// ---------------------------------------------------------------------------
// 10. A plugin's message with newlines or a second `message` key must not
// forge log lines: guest text is its own escaped field, in JSON and in text.

async fn a_guests_message_cannot_forge_log_lines(db: TestDb) {
    db.tenant("acme", 4).await;
    db.plugin(
        "acme",
        "fatal-error",
        &plugin_bytes("fatal-error"),
        Limits::default(),
        1,
    )
    .await;
    let forged = "boom\n{\"level\":\"ERROR\",\"message\":\"forged\"}\nERROR forged line\r";
    let cache = tempfile::tempdir().unwrap();
    for format in ["json", "text"] {
        let input = serde_json::json!({ "message": forged }).to_string();
        let ids = db
            .store
            .job_insert_batch(
                "acme",
                &[NewJob::new("fatal-error", input)],
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let mut changes = db.changes();
        let host = ServeProcess::start(
            &db.url,
            &format!("logs-{format}"),
            cache.path(),
            &["--log-format", format],
        );
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while db
            .store
            .job_get("acme", ids[0].id)
            .await
            .unwrap()
            .unwrap()
            .state
            != JobState::Dead
        {
            assert!(changes.next(deadline).await, "log:\n{}", host.log_text());
        }
        // The host has exited once `terminate` returns: every line it
        // wrote about the job is in the file.
        let path = host.log.clone();
        host.terminate();
        let log = std::fs::read_to_string(path).unwrap();
        assert!(log.contains("job dead"), "{log}");
        for line in log.lines() {
            assert!(
                !line.starts_with("ERROR forged")
                    && !line.starts_with("{\"level\":\"ERROR\",\"message\":\"forged\""),
                "a forged line: {line}"
            );
            if format == "json" {
                let parsed: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
                assert_eq!(
                    line.matches("\"message\":").count(),
                    1,
                    "one `message` key: {line}"
                );
                if parsed["message"] == "attempt finished" {
                    assert_eq!(parsed["guest_message"], forged);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. A workflow step's `timeout_ms` bypassed the tenant's `max_timeout_ms`.
// Every path (job, step, replay, schedule) goes through the one rule:
// refused where asked for, capped at claim whatever was stored.

async fn every_path_is_held_to_the_tenants_attempt_quotas(db: TestDb) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{ADMIN_TOKEN, app, assert_error, call, push, tenant_with_key};
    use serde_json::json;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({"max_timeout_ms": 1000})).await;
    push(&app, &key, "echo").await;
    let greedy = json!({"steps": [{"name": "a", "plugin": "echo", "timeout_ms": 9_000_000_000_000_000_000u64}]});
    let refused = call(&app, Method::PUT, "/v1/workflows/greedy")
        .key(&key)
        .json(greedy)
        .send()
        .await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "over_limit");
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("step `a`") && message.contains("max_timeout_ms of 1000"),
        "{message}"
    );
    let (_, listed) = call(&app, Method::GET, "/v1/workflows")
        .key(&key)
        .send()
        .await;
    assert_eq!(listed["workflows"], json!([]), "nothing stored");
    let job = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "echo", "input": 1, "timeout_ms": 5000}))
        .send()
        .await;
    assert_error(&job, StatusCode::UNPROCESSABLE_ENTITY, "over_limit");

    // Stored while the quotas were higher: a step, a job and its replay.
    let raise = |q: serde_json::Value| {
        call(&app, Method::PATCH, "/v1/tenants/acme")
            .key(ADMIN_TOKEN)
            .json(json!({"quotas": q}))
            .send()
    };
    assert_eq!(
        raise(json!({"max_timeout_ms": 600_000})).await.0,
        StatusCode::OK
    );
    let spec = json!({"steps": [{"name": "a", "plugin": "echo", "timeout_ms": 600_000}]});
    assert_eq!(
        call(&app, Method::PUT, "/v1/workflows/slow")
            .key(&key)
            .json(spec)
            .send()
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        call(&app, Method::POST, "/v1/workflows/slow/runs")
            .key(&key)
            .json(json!({"input": {}}))
            .send()
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "echo", "input": 1, "timeout_ms": 600_000}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let replay = call(
        &app,
        Method::POST,
        &format!("/v1/jobs/{}/replay", job["id"].as_str().unwrap()),
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(replay.0, StatusCode::CREATED, "{}", replay.1);
    // Then lowered: every claimed attempt runs within the quotas in force.
    assert_eq!(
        raise(json!({"max_timeout_ms": 1000, "max_fuel_per_attempt": 1000, "max_memory_mb": 1}))
            .await
            .0,
        StatusCode::OK
    );
    let claimed = db
        .store
        .job_claim(&corral::store::ClaimRequest {
            host_id: "h".into(),
            now: chrono::Utc::now() + chrono::TimeDelta::seconds(1),
            limit: 10,
            lease: Duration::from_secs(30),
            queues: None,
            tenants: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3, "the step, the job and its replay");
    for job in &claimed {
        assert_eq!(
            (
                job.limits.timeout_ms,
                job.limits.fuel,
                job.limits.memory_bytes
            ),
            (1000, 1000, 1 << 20),
            "{job:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 8. Slowloris: a connection sending its headers slowly stayed open for
// good; nothing bounded a request's time or the connections one client
// holds. Over real sockets, against the real binary.

/// Drip `bytes` one at a time until the server closes the connection or
/// answers; the read timeout paces the drip (no sleeping). Returns what the
/// server sent (empty when it just closed), or None when it never did.
fn drip_until_closed(
    stream: &mut std::net::TcpStream,
    bytes: &[u8],
    patience: Duration,
) -> Option<String> {
    use std::io::{Read, Write};
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut next = bytes.iter().cycle();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < patience {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !answer.is_empty() {
                    return Some(String::from_utf8_lossy(&answer).into_owned());
                }
                let byte = [*next.next().unwrap()];
                if stream.write_all(&byte).is_err() {
                    return Some(String::new());
                }
            }
            Err(_) => return Some(String::from_utf8_lossy(&answer).into_owned()),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_cannot_take_every_connection() {
    use std::io::Write;
    const ADMIN: &str = "slowloris-admin-token";
    let server = serve_on_sqlite(
        Some(ADMIN),
        &[
            "--header-timeout-ms",
            "1000",
            "--request-timeout-ms",
            "2000",
        ],
    );
    let port = server.port;

    // Headers a byte at a time: closed once the header timeout passes.
    let headers = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        drip_until_closed(&mut stream, b"X-Slow: yes\r\n", Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert!(headers.is_some(), "a dripping header was never cut off");

    // A body a byte at a time: 408 once the request timeout passes.
    let body = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(
                format!(
                    "POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"id\": \""
                )
                .as_bytes(),
            )
            .unwrap();
        drip_until_closed(&mut stream, b"a", Duration::from_secs(60))
    })
    .await
    .unwrap()
    .expect("a dripping body was never answered");
    assert!(body.starts_with("HTTP/1.1 408"), "{body}");
    assert!(body.contains("request_timeout"), "{body}");

    // An event stream outlives the request timeout: its headers went out at once.
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let admin = |r: reqwest::RequestBuilder| r.bearer_auth(ADMIN);
    let created = admin(client.post(format!("{base}/v1/tenants")))
        .json(&serde_json::json!({"id": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let key: serde_json::Value = admin(client.post(format!("{base}/v1/tenants/acme/keys")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let pushed = client
        .post(format!("{base}/v1/plugins/sleep"))
        .bearer_auth(&key)
        .header("content-type", "application/wasm")
        .body(plugin_bytes("sleep"))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 201);
    let job: serde_json::Value = client
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"plugin": "sleep", "input": {"ms": 3000}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut events = client
        .get(format!(
            "{base}/v1/jobs/{}/events",
            job["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen.contains("\"state\":\"completed\"") {
        match tokio::time::timeout_at(deadline, events.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended before the job completed ({other:?}): {seen}"),
        }
    }
    drop(server);

    // Connections per address: one client holds its share, the rest are
    // closed at once, and another address is still served.
    let server = serve_on_sqlite(
        Some(ADMIN),
        &[
            "--header-timeout-ms",
            "600000",
            "--max-connections-per-address",
            "8",
        ],
    );
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
        held.push(stream);
    }
    let refused = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        // The header timeout is ten minutes: only the cap closes this one.
        drip_until_closed(&mut stream, b"X", Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(
        refused.as_deref(),
        Some(""),
        "the ninth connection is closed unanswered"
    );
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(address).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    other
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}

/// The drain that lets a refused client read its answer is bounded: a
/// client refused before its body is read (a wrong key) that never stops
/// sending is cut off after `LINGER_BYTES`, and still got its 401
/// (`http/linger.rs`; `cli::refusals_sent_before_an_upload_is_read_reach_the_client`
/// shows the answer reaching a client that stops, and the next test the
/// bound in time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_that_keeps_sending_is_cut_off() {
    use std::io::{Read, Write};
    let server = serve_on_sqlite(Some("linger-admin-token"), &[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .write_all(
            b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\
              Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n",
        )
        .unwrap();
    // The answer, read while the body is being sent, until the server closes.
    let mut reading = stream.try_clone().unwrap();
    reading.set_read_timeout(Some(PATIENCE)).unwrap();
    let reader = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reading.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let sent = tokio::task::spawn_blocking(move || {
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0u64;
        // Until the server cuts the connection (or the patience runs out:
        // a write that blocks that long fails too).
        while let Ok(n) = stream.write(&chunk) {
            sent += n as u64;
            assert!(
                sent <= 4 * corral::http::linger::LINGER_BYTES,
                "the server kept draining past its bound"
            );
        }
        sent
    })
    .await
    .unwrap();
    let answer = reader.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    assert!(answer.contains("unauthorized"), "{answer}");
    // Socket buffers hold some megabytes beyond what the server read.
    assert!(
        sent <= corral::http::linger::LINGER_BYTES + (64 << 20),
        "{sent} bytes were taken"
    );
    let said = cut_off_said(server.log, PATIENCE).await;
    assert_eq!(said["bound"], "bytes", "{said}");
}

/// The drain's other bound: a client refused before its body is read that
/// then goes silent, its end of the connection left open, holds the
/// connection for at most `LINGER_TIME`, not until it chooses to close. Its
/// address may hold one connection here: a second connection from it is
/// closed unanswered while the first lingers, and served once the host says
/// it closed the first at the time bound (without the bound, never: the
/// test's client never closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_that_goes_silent_is_closed_after_the_linger_time() {
    use corral::http::linger::LINGER_TIME;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// A `GET /health` on a new connection: its answer, empty when the
    /// server closed the connection unanswered.
    async fn health(address: std::net::SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut answer = String::new();
        if stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .is_ok()
        {
            // A reset (the server closed before reading the request) is no answer.
            let _ = stream.read_to_string(&mut answer).await;
        }
        answer
    }
    let server = serve_on_sqlite(
        Some("linger-admin-token"),
        &["--max-connections-per-address", "1"],
    );
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));

    // Before the request, so the server's drain began after this instant.
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    silent
        .write_all(
            b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\
              Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
        )
        .await
        .unwrap();
    // The answer, then the server's end of the stream (its FIN): the drain
    // has begun, and this client neither sends nor closes from here on.
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, silent.read_to_end(&mut answer))
        .await
        .expect("the refusal and the server's end of the stream")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");

    // The address's one slot is held while the first connection lingers
    // (unless this machine stalled past the bound since: then it is free).
    let second = health(address).await;
    assert!(
        second.is_empty() || started.elapsed() >= LINGER_TIME,
        "a second connection was served while the first lingered: {second:?}"
    );

    // The host says when a bound closed the connection, after freeing its
    // slots; nothing else would close it. (Its log is JSON when it is not
    // written to a terminal.)
    let said = cut_off_said(server.log, LINGER_TIME * 12).await;
    assert_eq!(said["bound"], "time", "{said}");
    assert!(
        started.elapsed() >= LINGER_TIME,
        "closed after {:?}",
        started.elapsed()
    );
    let second = health(address).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second:?}");
    drop(silent);
}

/// The host's log event for a connection a bound of the drain closed,
/// waited for on its log lines (JSON, as it does not write to a terminal).
async fn cut_off_said(
    log: std::sync::mpsc::Receiver<String>,
    patience: Duration,
) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match log.recv_timeout(left) {
                Ok(line) => {
                    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if event["message"]
                        == "closed a refused client's connection at the drain's bound"
                    {
                        return event;
                    }
                }
                Err(e) => panic!("no connection was closed by a bound of the drain ({e})"),
            }
        }
    })
    .await
    .unwrap()
}

/// A child process killed (SIGKILL) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `corral serve` on a SQLite file of its own, killed when dropped (before
/// its directory is removed).
struct Served {
    _server: KillOnDrop,
    _dir: tempfile::TempDir,
    port: u16,
    /// What it printed on stdout (the generated admin key, when no admin
    /// token was given).
    printed: String,
    /// Its log, line by line as it comes.
    log: std::sync::mpsc::Receiver<String>,
}

fn serve_on_sqlite(admin_token: Option<&str>, flags: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("corral.db").display());
    let port = corral_tests::free_port();
    let (server, printed, log) =
        corral_tests::serve_api_with_log_lines(&url, port, dir.path(), admin_token, flags);
    Served {
        _server: KillOnDrop(server),
        _dir: dir,
        port,
        printed,
        log,
    }
}

// ---------------------------------------------------------------------------
// 12. Admin keys can be listed and revoked; failed authentications are
// slowed per address; `/ready` keeps the database's words to itself.

/// One request over a plain socket from `source` (a loopback address).
async fn request_from(
    source: [u8; 4],
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    let mut stream = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_are_revocable_and_failed_authentications_are_slowed() {
    let server = serve_on_sqlite(None, &[]);
    let port = server.port;
    let first = server
        .printed
        .split_whitespace()
        .find(|w| w.starts_with("corral_"))
        .expect("a generated admin key")
        .to_string();
    let local = [127, 0, 0, 1];
    let (status, listed) = request_from(local, port, "GET", "/v1/admin-keys", Some(&first)).await;
    assert_eq!(status, 200, "{listed}");
    let first_id = first.split('_').nth(1).unwrap();
    assert!(listed.contains(first_id), "{listed}");
    let (status, created) = request_from(local, port, "POST", "/v1/admin-keys", Some(&first)).await;
    assert_eq!(status, 201, "{created}");
    let body = created.split("\r\n\r\n").nth(1).unwrap();
    let second: serde_json::Value = serde_json::from_str(body).unwrap();
    let second = second["key"].as_str().unwrap().to_string();
    let revoke = format!("/v1/admin-keys/{first_id}");
    assert_eq!(
        request_from(local, port, "DELETE", &revoke, Some(&second))
            .await
            .0,
        204
    );
    assert_eq!(
        request_from(local, port, "GET", "/v1/tenants", Some(&first))
            .await
            .0,
        401
    );
    assert_eq!(
        request_from(local, port, "GET", "/v1/tenants", Some(&second))
            .await
            .0,
        200
    );
    assert_eq!(
        request_from(local, port, "DELETE", &revoke, Some(&second))
            .await
            .0,
        404
    );

    // Guessing from one address: refused before the key is looked up, a
    // valid key included, while another address is served.
    let attacker = [127, 0, 0, 3];
    let bad = format!("corral_{}_{}", "0".repeat(16), "0".repeat(64));
    for _ in 0..corral::http::auth_failures::MAX_AUTH_FAILURES {
        assert_eq!(
            request_from(attacker, port, "GET", "/v1/tenants", Some(&bad))
                .await
                .0,
            401
        );
    }
    let (status, refused) = request_from(attacker, port, "GET", "/v1/tenants", Some(&second)).await;
    assert_eq!(status, 429, "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after:"),
        "{refused}"
    );
    assert!(
        refused.contains("too many failed authentications"),
        "{refused}"
    );
    assert_eq!(
        request_from([127, 0, 0, 4], port, "GET", "/v1/tenants", Some(&second))
            .await
            .0,
        200
    );
}

async fn ready_keeps_the_databases_words_to_itself(db: TestDb) {
    use axum::http::{Method, StatusCode};
    let app = corral_tests::api::app(&db);
    assert_eq!(
        corral_tests::api::call(&app, Method::GET, "/ready")
            .send()
            .await
            .0,
        StatusCode::OK
    );
    // Migrations rolled back under the host's feet.
    db.store.migrate().await.unwrap();
    match db.url.strip_prefix("sqlite://") {
        Some(file) => {
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{file}"))
                    .await
                    .unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        None => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations")
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let answer = corral_tests::api::call(&app, Method::GET, "/ready")
        .send()
        .await;
    corral_tests::api::assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("migrations applied") && !message.contains("corral migrate"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------
// 7. One tenant's plugins can use up the instance pool (core instances,
// memories, tables) so that another tenant's attempt cannot instantiate.
// That attempt is handed back without using one of the job's attempts.

async fn an_innocent_job_is_not_charged_for_a_full_pool(db: TestDb) {
    use corral_tests::worker::config;
    db.tenant("hog", 4).await;
    db.tenant("innocent", 4).await;
    db.plugin("hog", "sleep", &plugin_bytes("sleep"), Limits::default(), 1)
        .await;
    db.plugin(
        "innocent",
        "echo",
        &plugin_bytes("echo"),
        Limits::default(),
        1,
    )
    .await;
    // A pool with one linear memory: whoever holds it holds the pool.
    let cache = tempfile::tempdir().unwrap();
    let runtime = corral_tests::runtime_with_pool(
        cache.path(),
        corral::runtime::PoolSizes {
            attempts: 4,
            core_instances: 64,
            memories: 1,
            tables: 64,
        },
    );
    // Compiled up front: the innocent job must meet the hog running, not
    // the hog gone while its own plugin compiles.
    for name in ["sleep", "echo"] {
        runtime.load(&plugin_bytes(name)).await.unwrap();
    }
    let metrics = std::sync::Arc::new(corral::metrics::Metrics::new());
    let worker = corral::worker::Worker::with_metrics(
        db.store.clone(),
        std::sync::Arc::new(runtime),
        config("pool"),
        metrics.clone(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let host = tokio::spawn(worker.run(shutdown.clone()));
    let now = chrono::Utc::now();
    let hog = db
        .store
        .job_insert_batch("hog", &[NewJob::new("sleep", r#"{"ms": 4000}"#)], now)
        .await
        .unwrap()[0]
        .id;
    // Until the hog reports progress, it may not have instantiated yet.
    let mut events = db.store.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while db
        .store
        .job_get("hog", hog)
        .await
        .unwrap()
        .unwrap()
        .progress
        .is_none()
    {
        assert!(
            tokio::time::timeout_at(deadline, events.recv())
                .await
                .is_ok(),
            "the hog never reported progress"
        );
    }
    let innocent = db
        .store
        .job_insert_batch("innocent", &[NewJob::new("echo", "1")], now)
        .await
        .unwrap()[0]
        .id;
    // One attempt allowed: a charged pool failure would make it dead.
    let state = db
        .wait_for("innocent", innocent, PATIENCE, |s| s.is_terminal())
        .await;
    assert_eq!(state, JobState::Completed);
    let attempts = db.store.attempt_list("innocent", innocent).await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(
        db.wait_for("hog", hog, PATIENCE, |s| s.is_terminal()).await,
        JobState::Completed
    );
    let rendered = metrics.render(None, corral_tests::shared_runtime());
    let met: u64 = rendered
        .lines()
        .find_map(|l| l.strip_prefix("corral_attempts_host_full_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pool counter in:\n{rendered}"));
    assert!(met >= 1, "the full pool was met (and counted): {met}");
    shutdown.cancel();
    host.await.unwrap();
}

// ---------------------------------------------------------------------------
// 6. `host.log` with NUL bytes was expanded 3x before truncation: four
// plugins logging 48 MiB of NULs cost the host 432 MB. The work of a log
// call is now bounded by the room left in the attempt's log.

async fn nul_floods_cost_only_the_logs_room(db: TestDb) {
    db.tenant("flooder", 8).await;
    db.tenant("bystander", 8).await;
    let limits = Limits {
        memory_bytes: 256 << 20,
        ..Limits::default()
    };
    db.plugin(
        "flooder",
        "log-flood",
        &plugin_bytes("log-flood"),
        limits,
        1,
    )
    .await;
    db.plugin(
        "bystander",
        "echo",
        &plugin_bytes("echo"),
        Limits::default(),
        1,
    )
    .await;
    let floods: Vec<NewJob> = (0..4)
        .map(|_| NewJob::new("log-flood", r#"{"megabytes": 48, "nul": true}"#))
        .collect();
    let now = chrono::Utc::now();
    let floods = db
        .store
        .job_insert_batch("flooder", &floods, now)
        .await
        .unwrap();
    let bystander = db
        .store
        .job_insert_batch("bystander", &[NewJob::new("echo", "7")], now)
        .await
        .unwrap()[0]
        .id;
    let host = corral_tests::worker::Host::start(&db, corral_tests::worker::config("floods"));
    assert_eq!(
        db.wait_for("bystander", bystander, PATIENCE, |s| s.is_terminal())
            .await,
        JobState::Completed
    );
    db.wait_until_drained(Some("flooder"), PATIENCE).await;
    host.stop().await;
    for job in &floods {
        let attempts = db.store.attempt_list("flooder", job.id).await.unwrap();
        let attempt = &attempts[0];
        assert_eq!(attempt.outcome, OutcomeKind::OutputTooLarge, "{attempt:?}");
        assert!(attempt.log.len() as u64 <= Limits::default().log_bytes);
        assert!(
            attempt.log_dropped_bytes > 47 << 20,
            "{}",
            attempt.log_dropped_bytes
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Compiled plugins were never evicted, uploads unbounded in number and
// bytes, concurrent compiles unbounded, and deleted versions' bytes kept.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_in_memory_are_bounded_in_bytes() {
    use corral::runtime::LoadSource;
    let cache = tempfile::tempdir().unwrap();
    let config = |max_loaded_bytes| corral::runtime::RuntimeConfig {
        cache_dir: cache.path().to_path_buf(),
        compiler: corral::runtime::Compiler::new(corral_tests::corral_bin()),
        pool: Default::default(),
        max_loaded_bytes,
    };
    let runtime = corral::runtime::Runtime::new(config(1)).unwrap();
    let echo = runtime.load(&plugin_bytes("echo")).await.unwrap();
    let markdown = runtime.load(&plugin_bytes("markdown")).await.unwrap();
    assert_eq!(runtime.plugins_loaded(), 1, "the least recently used went");
    assert_eq!(runtime.plugins_loaded_bytes(), markdown.size);
    // An evicted plugin comes back from the disk cache, not the compiler.
    let again = runtime.load_cached(echo.digest()).await.unwrap().unwrap();
    assert_eq!(again.source, LoadSource::DiskCache);
    assert_eq!(runtime.plugins_loaded(), 1);
    // Garbage never leaves an entry behind.
    for i in 0..50u8 {
        assert!(
            runtime
                .load(&[0, b'a', b's', b'm', 13, 0, 1, 0, i])
                .await
                .is_err()
        );
    }
    assert_eq!(runtime.plugins_loaded(), 1);
    runtime.forget(again.digest());
    assert_eq!(
        (runtime.plugins_loaded(), runtime.plugins_loaded_bytes()),
        (0, 0)
    );
}

async fn stored_plugin_bytes_are_a_quota_and_deleted_bytes_are_collected(db: TestDb) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{app, call, tenant_with_key, upload};
    use serde_json::json;
    let app = app(&db);
    let (echo, markdown) = (plugin_bytes("echo"), plugin_bytes("markdown"));
    let quota = echo.len() + markdown.len() - 1;
    let key = tenant_with_key(&app, "acme", json!({"max_stored_plugin_bytes": quota})).await;
    let push = |name: &'static str, bytes: Vec<u8>| {
        let (app, key) = (app.clone(), key.clone());
        async move {
            upload(
                &app,
                &key,
                &format!("/v1/plugins/{name}"),
                bytes,
                "application/wasm",
            )
            .await
        }
    };
    assert_eq!(push("echo", echo.clone()).await.0, StatusCode::CREATED);
    // The same bytes under another name are stored once.
    assert_eq!(push("echo-too", echo.clone()).await.0, StatusCode::CREATED);
    let refused = push("markdown", markdown.clone()).await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "over_quota");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_stored_plugin_bytes")
    );
    let (_, listed) = call(&app, Method::GET, "/v1/plugins")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        listed["plugins"].as_array().unwrap().len(),
        2,
        "nothing stored"
    );

    // Deleting every version naming the bytes frees the quota and the bytes.
    let digest = corral::model::Digest::of(&echo).to_string();
    for name in ["echo", "echo-too"] {
        let deleted = call(&app, Method::DELETE, &format!("/v1/plugins/{name}/1"))
            .key(&key)
            .send()
            .await;
        assert_eq!(deleted.0, StatusCode::NO_CONTENT, "{}", deleted.1);
    }
    assert_eq!(
        db.store.plugin_blob_get(&digest).await.unwrap(),
        None,
        "collected"
    );
    assert_eq!(push("markdown", markdown).await.0, StatusCode::CREATED);
    // Uploading the bytes again restores them (within the quota).
    let deleted = call(&app, Method::DELETE, "/v1/plugins/markdown/1")
        .key(&key)
        .send()
        .await;
    assert_eq!(deleted.0, StatusCode::NO_CONTENT);
    let restored = push("echo", echo.clone()).await;
    assert_eq!(restored.0, StatusCode::CREATED, "{}", restored.1);
    assert_eq!(db.store.plugin_blob_get(&digest).await.unwrap(), Some(echo));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_compile_slots_get_503_with_retry_after() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    // A compiler that takes its time (as a crafted component makes
    // Cranelift do); it is killed when its upload is dropped.
    let script = dir.path().join("slow-compiler");
    let started = dir.path().join("started");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\ncat > /dev/null\nexec sleep 600\n",
            started.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runtime = corral::runtime::Runtime::new(corral::runtime::RuntimeConfig {
        cache_dir: dir.path().join("cache"),
        compiler: corral::runtime::Compiler::new(&script).with_slots(1, Duration::from_millis(200)),
        pool: Default::default(),
        max_loaded_bytes: corral::runtime::loaded::MAX_LOADED_PLUGIN_BYTES,
    })
    .unwrap();
    let app = corral::http::router(corral::http::AppState::new(
        db.store.clone(),
        std::sync::Arc::new(runtime),
        Some(std::sync::Arc::from(corral::keys::hash(
            corral_tests::api::ADMIN_TOKEN,
        ))),
        std::sync::Arc::new(corral::metrics::Metrics::new()),
    ));
    let key = corral_tests::api::tenant_with_key(&app, "acme", serde_json::json!({})).await;
    let (first_app, first_key) = (app.clone(), key.clone());
    let first = tokio::spawn(async move {
        corral_tests::api::upload(
            &first_app,
            &first_key,
            "/v1/plugins/echo",
            plugin_bytes("echo"),
            "application/wasm",
        )
        .await
    });
    // Wait (on the folder's events) until the first upload's compiler runs.
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |_| {
        let _ = tx.send(());
    })
    .unwrap();
    notify::Watcher::watch(
        &mut watcher,
        dir.path(),
        notify::RecursiveMode::NonRecursive,
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !started.exists() {
        assert!(
            tokio::time::timeout_at(deadline, seen.recv()).await.is_ok(),
            "the first compile never started"
        );
    }
    let request = axum::http::Request::post("/v1/plugins/markdown")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/wasm")
        .body(axum::body::Body::from(plugin_bytes("markdown")))
        .unwrap();
    let busy = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    assert_eq!(busy.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("10")
    );
    let body = http_body_util::BodyExt::collect(busy.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "busy");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("compiler slot"),
        "{body}"
    );
    let (_, listed) = corral_tests::api::call(&app, axum::http::Method::GET, "/v1/plugins")
        .key(&key)
        .send()
        .await;
    assert_eq!(listed["plugins"], serde_json::json!([]), "nothing stored");
    first.abort();
}

// ---------------------------------------------------------------------------
// 4. Schedules, their ticks and workflow versions grew without bound.

/// One count on the test's database, whichever backend.
async fn count_rows(db: &TestDb, sql: &str) -> i64 {
    match db.url.strip_prefix("sqlite://") {
        Some(file) => {
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{file}"))
                    .await
                    .unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        None => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

async fn schedules_ticks_and_workflow_versions_are_bounded(db: TestDb) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{app, assert_error, call, push, tenant_with_key};
    use serde_json::json;
    let app = app(&db);
    let key = tenant_with_key(
        &app,
        "acme",
        json!({"max_schedules": 2, "max_workflows": 1, "max_workflow_versions": 2}),
    )
    .await;
    push(&app, &key, "echo").await;
    let every_second = json!({"cron": "* * * * * *", "target": {"plugin": "echo", "input": {}}});
    for name in ["a", "b"] {
        let put = call(&app, Method::PUT, &format!("/v1/schedules/{name}"))
            .key(&key)
            .json(every_second.clone())
            .send()
            .await;
        assert_eq!(put.0, StatusCode::CREATED, "{}", put.1);
    }
    let third = call(&app, Method::PUT, "/v1/schedules/c")
        .key(&key)
        .json(every_second.clone())
        .send()
        .await;
    assert_error(&third, StatusCode::UNPROCESSABLE_ENTITY, "over_quota");
    assert!(
        third.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_schedules")
    );
    let replaced = call(&app, Method::PUT, "/v1/schedules/a")
        .key(&key)
        .json(every_second)
        .send()
        .await;
    assert_eq!(replaced.0, StatusCode::OK, "replacing is not adding");

    let definition =
        |n: u32| json!({"steps": [{"name": "s", "plugin": "echo", "input": {"n": n}}]});
    for n in 1..=2 {
        let put = call(&app, Method::PUT, "/v1/workflows/w")
            .key(&key)
            .json(definition(n))
            .send()
            .await;
        assert_eq!(put.0, StatusCode::CREATED, "{}", put.1);
    }
    let version = call(&app, Method::PUT, "/v1/workflows/w")
        .key(&key)
        .json(definition(3))
        .send()
        .await;
    assert_error(&version, StatusCode::UNPROCESSABLE_ENTITY, "over_quota");
    assert!(
        version.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_workflow_versions")
    );
    let same = call(&app, Method::PUT, "/v1/workflows/w")
        .key(&key)
        .json(definition(2))
        .send()
        .await;
    assert_eq!(same.0, StatusCode::OK, "the latest again is no new version");
    let other = call(&app, Method::PUT, "/v1/workflows/other")
        .key(&key)
        .json(definition(1))
        .send()
        .await;
    assert_error(&other, StatusCode::UNPROCESSABLE_ENTITY, "over_quota");
    assert!(
        other.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_workflows")
    );

    // An every-second schedule fired for 150 seconds keeps its newest ticks.
    let start = chrono::Utc::now() + chrono::TimeDelta::seconds(2);
    for s in 0..150 {
        db.store
            .schedule_fire(start + chrono::TimeDelta::seconds(s), 100)
            .await
            .unwrap();
    }
    let kept = count_rows(
        &db,
        "SELECT count(*) FROM schedule_ticks WHERE tenant_id = 'acme' AND schedule = 'a'",
    )
    .await;
    assert_eq!(kept, corral::store::schedules::KEPT_TICKS);
    let (_, shown) = call(&app, Method::GET, "/v1/schedules/a")
        .key(&key)
        .send()
        .await;
    assert!(
        !shown["recent_ticks"].as_array().unwrap().is_empty(),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------
// 1. A `when` that doubles its value at each of 40 steps (2^40 values) fails
// its run, naming the bound, in a bounded time. It is not evaluated in the
// request's transaction but after it, by the host's evaluator (the real
// loop here, awaited through the run's finish notification), so another
// tenant's enqueue is never held up behind it.

async fn a_costly_expression_fails_its_own_run(db: TestDb) {
    use axum::http::{Method, StatusCode};
    use corral::store::StoreEvent;
    use corral::workflow::RunState;
    use corral_tests::api::{app, call, push, tenant_with_key};
    use serde_json::json;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    push(&app, &key, "echo").await;
    push(&app, &other, "echo").await;
    let doubling = format!("length(input{}) > `0`", "|[@,@][]".repeat(40));
    let put = call(&app, Method::PUT, "/v1/workflows/bomb")
        .key(&key)
        .json(json!({"steps": [{"name": "s", "plugin": "echo", "when": doubling}]}))
        .send()
        .await;
    assert_eq!(put.0, StatusCode::CREATED, "{}", put.1);
    let mut events = db.store.subscribe();
    let stop = tokio_util::sync::CancellationToken::new();
    let evaluator = corral::worker::evaluator::spawn(db.store.clone(), stop.clone());
    let started = call(&app, Method::POST, "/v1/workflows/bomb/runs")
        .key(&key)
        .json(json!({"input": {"input": [1, 2, 3, 4]}}))
        .send()
        .await;
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    assert_eq!(
        started.1["steps"][0]["state"], "pending",
        "the start's transaction evaluates nothing: {}",
        started.1
    );
    let enqueued = call(&app, Method::POST, "/v1/jobs")
        .key(&other)
        .json(json!({"plugin": "echo", "input": {}}))
        .send()
        .await;
    assert_eq!(enqueued.0, StatusCode::CREATED, "{}", enqueued.1);
    let id: uuid::Uuid = started.1["id"].as_str().unwrap().parse().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(StoreEvent::RunState(run, RunState::Failed)) if run == id => return,
                Ok(_) => {}
                Err(e) => panic!("store events: {e}"),
            }
        }
    })
    .await
    .expect("the evaluator fails the run");
    stop.cancel();
    evaluator.await.unwrap();
    let (status, run) = call(&app, Method::GET, &format!("/v1/workflow-runs/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("MAX_EVALUATION_COST"), "{error}");
}

// ---------------------------------------------------------------------------
// 2. Fan-out amplification: a run is admitted as one job, yet its fan-out
// may not store more than MAX_RUN_JOB_BYTES, may not queue more at once
// than the tenant's max_queued_jobs or what is left of its
// enqueue_per_minute, and the jobs it does queue count against that rate.

async fn a_fan_out_cannot_amplify_past_the_tenants_bounds(db: TestDb) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{app, assert_error, call, push, tenant_with_key};
    use serde_json::json;
    let app = app(&db);
    let key = tenant_with_key(
        &app,
        "acme",
        json!({"enqueue_per_minute": 100, "max_queued_jobs": 1000}),
    )
    .await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    push(&app, &key, "echo").await;
    push(&app, &other, "echo").await;
    let define = |name: &str, step: serde_json::Value| {
        let app = app.clone();
        let key = key.clone();
        let path = format!("/v1/workflows/{name}");
        async move {
            let put = call(&app, Method::PUT, &path)
                .key(&key)
                .json(json!({"steps": [step]}))
                .send()
                .await;
            assert_eq!(put.0, StatusCode::CREATED, "{}", put.1);
        }
    };
    // Start a run, evaluate its for_each as the host's evaluator does
    // after the start commits, and read the run back.
    let start = |name: &str, items: usize| {
        let app = app.clone();
        let key = key.clone();
        let store = db.store.clone();
        let path = format!("/v1/workflows/{name}/runs");
        async move {
            let started = call(&app, Method::POST, &path)
                .key(&key)
                .json(json!({"input": {"items": (0..items).collect::<Vec<_>>()}}))
                .send()
                .await;
            assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
            let now = chrono::Utc::now();
            corral::worker::evaluator::settle_marked(store.as_ref(), now, now)
                .await
                .expect("evaluations");
            let id = started.1["id"].as_str().unwrap();
            let path = format!("/v1/workflow-runs/{id}");
            let (status, run) = call(&app, Method::GET, &path).key(&key).send().await;
            assert_eq!(status, StatusCode::OK, "{run}");
            run
        }
    };
    let step_jobs = |run: &serde_json::Value| {
        let id = run["id"].as_str().unwrap().to_string();
        let db = &db;
        async move {
            count_rows(
                db,
                &format!("SELECT count(*) FROM jobs WHERE workflow_run_id = '{id}'"),
            )
            .await
        }
    };

    // 10,000 elements of a 64 KiB static input would store 640 MB: refused
    // before any element job is built.
    let big = "x".repeat(64 * 1024);
    define(
        "bytes",
        json!({"name": "each", "plugin": "echo", "for_each": "input.items",
               "input": {"blob": big}, "max_parallel": 1}),
    )
    .await;
    let run = start("bytes", 10_000).await;
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("MAX_RUN_JOB_BYTES"), "{error}");
    assert_eq!(step_jobs(&run).await, 0);

    // More elements at once than max_queued_jobs: refused, named.
    define(
        "wide",
        json!({"name": "each", "plugin": "echo", "for_each": "input.items"}),
    )
    .await;
    let run = start("wide", 1001).await;
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("max_queued_jobs"), "{error}");
    assert_eq!(step_jobs(&run).await, 0);

    // 50 elements fit; they count against the rate with the runs
    // themselves (3 + 50 of 100 used this minute), so 50 more jobs are
    // refused...
    let run = start("wide", 50).await;
    assert_eq!(run["state"], "running", "{run}");
    assert_eq!(step_jobs(&run).await, 50);
    let batch = |n: usize| json!({"jobs": (0..n).map(|i| json!({"plugin": "echo", "input": i})).collect::<Vec<_>>()});
    let over = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&key)
        .json(batch(50))
        .send()
        .await;
    assert_error(&over, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // ...and so is a fan-out wider than what is left of this minute's rate.
    let run = start("wide", 49).await;
    assert_eq!(run["state"], "failed", "{run}");
    let error = run["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("enqueue_per_minute"), "{error}");

    // Another tenant is untouched.
    let enqueued = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&other)
        .json(batch(200))
        .send()
        .await;
    assert_eq!(enqueued.0, StatusCode::CREATED, "{}", enqueued.1);
}

// ---------------------------------------------------------------------------
// 9. Listings leave inputs and results out unless asked, and a page with
// them stops at MAX_PAGE_BODY_BYTES; event streams are capped per tenant
// (another tenant still opens its own), and a closed stream frees its place.

async fn listings_and_event_streams_are_bounded(db: TestDb) {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use corral::http::streams::MAX_STREAMS_PER_TENANT;
    use corral_tests::api::{app, call, push, tenant_with_key};
    use serde_json::json;
    use tower::ServiceExt;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    push(&app, &key, "echo").await;
    push(&app, &other, "echo").await;
    // 20 jobs of 1,000,000 bytes of input: 20 MB in one page otherwise.
    let big = "x".repeat(1_000_000);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let created = call(&app, Method::POST, "/v1/jobs")
            .key(&key)
            .json(json!({"plugin": "echo", "input": big}))
            .send()
            .await;
        assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
        ids.push(created.1["id"].as_str().unwrap().to_string());
    }
    let (status, page) = call(&app, Method::GET, "/v1/jobs?limit=500")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 20);
    assert!(
        jobs.iter().all(|j| j.get("input").is_none()),
        "inputs are left out"
    );
    assert!(page["next_cursor"].is_null());
    let (status, page) = call(&app, Method::GET, "/v1/jobs?limit=500&include=input,result")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first = page["jobs"].as_array().unwrap().len();
    let cap = corral::store::MAX_PAGE_BODY_BYTES / 1_000_000;
    assert!(
        first <= cap + 1 && first >= cap,
        "{first} jobs in a page of bodies"
    );
    assert_eq!(
        page["jobs"][0]["input"].as_str().map(str::len),
        Some(1_000_000)
    );
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a page cut by bytes has a cursor");
    let (_, rest) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs?limit=500&include=input&cursor={cursor}"),
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(
        first + rest["jobs"].as_array().unwrap().len(),
        20,
        "nothing is skipped"
    );
    let (status, bad) = call(&app, Method::GET, "/v1/jobs?include=context")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // Streams: the tenant's cap, then 429 naming it.
    let open = |key: &str, id: &str| {
        let request = Request::builder()
            .uri(format!("/v1/jobs/{id}/events"))
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request)
    };
    let mut streams = Vec::new();
    for i in 0..MAX_STREAMS_PER_TENANT {
        let response = open(&key, &ids[i % ids.len()]).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        streams.push(response);
    }
    let refused = open(&key, &ids[0]).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = http_body_util::BodyExt::collect(refused.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("MAX_STREAMS_PER_TENANT"));
    // A workflow run's stream counts against the same cap.
    let run_stream = app
        .clone()
        .oneshot(
            Request::builder()
                .uri(format!("/v1/workflow-runs/{}/events", uuid::Uuid::now_v7()))
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(run_stream.status(), StatusCode::TOO_MANY_REQUESTS);
    let theirs = call(&app, Method::POST, "/v1/jobs")
        .key(&other)
        .json(json!({"plugin": "echo", "input": {}}))
        .send()
        .await;
    let their_stream = open(&other, theirs.1["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        their_stream.status(),
        StatusCode::OK,
        "another tenant is not capped"
    );
    streams.pop();
    let again = open(&key, &ids[0]).await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a closed stream frees its place"
    );
}

// ---------------------------------------------------------------------------
// 19. Guests compute on threads of their own, at a lower CPU priority than
// the host's API, claims, outcome writes and heartbeats: on the process's
// one runtime, a tenant's computing guests made every other task of the
// host wait its turn behind them.

/// Per thread of process `pid`: its name, CPU time (clock ticks) and nice
/// value, from `/proc`.
fn threads_of(pid: u32) -> Vec<(String, u64, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the host's threads");
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            // `tid (name) state …`: the name may hold spaces and parentheses.
            let (head, rest) = stat.rsplit_once(')')?;
            let name = head.split_once('(')?.1.to_string();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14, 15 and 19 of proc(5); `fields[0]` is field 3.
            let cpu = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            let nice = fields.get(16)?.parse().ok()?;
            Some((name, cpu, nice))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_compute_on_low_priority_threads_of_their_own() {
    use corral::worker::sandbox_threads::{MAX_SANDBOX_THREADS, SANDBOX_NICE};
    // A count past the bound is refused before anything starts.
    let too_many = (MAX_SANDBOX_THREADS + 1).to_string();
    let refused = std::process::Command::new(corral_tests::corral_bin())
        .args(["serve", "--mode", "worker", "--sandbox-threads", &too_many])
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!(
            "--sandbox-threads must be at most {MAX_SANDBOX_THREADS}"
        )),
        "{refused:?}"
    );

    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", 4).await;
    db.plugin("acme", "spin", &plugin_bytes("spin"), Limits::default(), 1)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let host = ServeProcess::start(&db.url, "spinner", cache.path(), &[]);
    let spin = db
        .store
        .job_insert_batch("acme", &[NewJob::new("spin", "{}")], chrono::Utc::now())
        .await
        .unwrap()[0]
        .id;
    let state = db
        .wait_for("acme", spin, PATIENCE, |s| s.is_terminal())
        .await;
    assert_eq!(state, JobState::Dead, "{}", host.log_text());
    let attempts = db.store.attempt_list("acme", spin).await.unwrap();
    assert_eq!(attempts[0].outcome, OutcomeKind::FuelExhausted);

    let threads = threads_of(host.child.id());
    host.terminate();
    let (sandbox, others): (Vec<_>, Vec<_>) = threads
        .iter()
        .partition(|(name, _, _)| name == "corral-sandbox");
    assert!(!sandbox.is_empty(), "no sandbox threads: {threads:?}");
    assert!(
        sandbox
            .iter()
            .all(|(_, _, nice)| *nice == i64::from(SANDBOX_NICE)),
        "every sandbox thread at nice {SANDBOX_NICE}: {threads:?}"
    );
    assert!(
        others
            .iter()
            .all(|(_, _, nice)| *nice < i64::from(SANDBOX_NICE)),
        "the host's other threads keep the process's priority: {threads:?}"
    );
    // The guest computed for about a billion units of fuel: on the sandbox
    // threads, not on the runtime that serves the host's own tasks (tokio
    // names its threads `tokio-rt-worker`, `tokio-runtime-worker` before).
    assert!(
        others.iter().any(|(name, _, _)| name.starts_with("tokio-")),
        "the host's runtime threads are found: {threads:?}"
    );
    let cpu = |threads: &[&(String, u64, i64)], name: &str| -> u64 {
        threads
            .iter()
            .filter(|(n, _, _)| n.starts_with(name))
            .map(|(_, cpu, _)| cpu)
            .sum()
    };
    let (guests, host_tasks) = (cpu(&sandbox, "corral-sandbox"), cpu(&others, "tokio-"));
    assert!(
        guests > host_tasks,
        "the guest's CPU time ({guests} ticks) is on the sandbox threads, \
         not the host's runtime ({host_tasks} ticks): {threads:?}"
    );
}
