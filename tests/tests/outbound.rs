//! Plugins' outbound HTTP against a real local server on 127.0.0.1, through
//! the real runtime and the `fetch` plugin (Rust, over corral-sdk's client):
//! what the allow-list lets through, what the network policy refuses even
//! when allow-listed, secrets that only their destination receives, the
//! limits of an attempt, and the record of every request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{any, get};
use corral::model::OutcomeKind;
use corral::runtime::outbound::{
    AllowEntry, HttpGrant, HttpSettings, NetworkPolicy, OutboundContext,
};
use corral::runtime::{AttemptReport, AttemptRequest, JobInput};
use corral_tests::{load, shared_runtime};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(120);

/// What the test server saw.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, String, Option<String>)>,
    /// Signalled when a request reaches `/never`.
    parked: Arc<tokio::sync::Notify>,
}

/// A server on 127.0.0.1: `/hello`, `/echo` (the body back), `/big` (10,000
/// bytes), `/never` (no answer, ever), `/auth` (records the authorization
/// header; answers "ok"). Returns its port and what it saw.
async fn server() -> (u16, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = |seen: Arc<Mutex<Seen>>| {
        move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            seen.lock()
                .unwrap()
                .requests
                .push((method.to_string(), uri.to_string(), auth));
        }
    };
    let app = Router::new()
        .route(
            "/hello",
            get({
                let r = record(seen.clone());
                move |m, u, h| async move {
                    r(m, u, h);
                    "hi"
                }
            }),
        )
        .route(
            "/echo",
            any({
                let r = record(seen.clone());
                move |m, u, h, body: String| async move {
                    r(m, u, h);
                    body
                }
            }),
        )
        .route("/big", get(|| async { "x".repeat(10_000) }))
        .route(
            "/never",
            get({
                let parked = seen.lock().unwrap().parked.clone();
                move || async move {
                    parked.notify_one();
                    std::future::pending::<&'static str>().await
                }
            }),
        )
        .route(
            "/auth",
            get({
                let r = record(seen.clone());
                move |m, u, h| async move {
                    r(m, u, h);
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

fn settings(entries: Value) -> HttpSettings {
    HttpSettings {
        allow: serde_json::from_value::<Vec<AllowEntry>>(entries).unwrap(),
        ..HttpSettings::default()
    }
}

/// The operator flag tests reach their server through: 127.0.0.1 only.
fn local_network() -> Arc<OutboundContext> {
    Arc::new(
        OutboundContext::new(
            NetworkPolicy {
                allowed_private: vec!["127.0.0.1/32".parse().unwrap()],
            },
            b"",
        )
        .unwrap(),
    )
}

fn grant(
    settings: &HttpSettings,
    context: Arc<OutboundContext>,
    secrets: &[(&str, &str)],
) -> HttpGrant {
    HttpGrant {
        allow: settings.validate().unwrap(),
        limits: settings.limits(),
        secrets: Arc::new(
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        context,
    }
}

async fn fetch(
    requests: Value,
    http: HttpGrant,
    timeout_ms: u64,
    cancel: CancellationToken,
) -> AttemptReport {
    let plugin = load("fetch").await;
    let mut request = AttemptRequest {
        job: JobInput {
            id: "job-1".into(),
            tenant: "acme".into(),
            plugin: "fetch".into(),
            attempt: 1,
            max_attempts: 1,
            input: json!({ "requests": requests }).to_string(),
            context: None,
        },
        http,
        cancel,
        ..AttemptRequest::default()
    };
    request.limits.timeout_ms = timeout_ms;
    tokio::time::timeout(PATIENCE, shared_runtime().run(&plugin, request))
        .await
        .expect("the attempt ends")
}

fn outcomes(report: &AttemptReport) -> Vec<Value> {
    assert_eq!(report.outcome, OutcomeKind::Completed, "{report:#?}");
    serde_json::from_str(report.result.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn an_allowed_request_round_trips_and_is_recorded() {
    let (port, seen) = server().await;
    let base = format!("http://127.0.0.1:{port}");
    let s = settings(json!([base.clone()]));
    let report = fetch(
        json!([
            {"url": format!("{base}/hello?token=abc")},
            {"method": "POST", "url": format!("{base}/echo"), "body": "ping"},
        ]),
        grant(&s, local_network(), &[]),
        30_000,
        CancellationToken::new(),
    )
    .await;
    let got = outcomes(&report);
    assert_eq!(got[0], json!({"status": 200, "body": "hi"}));
    assert_eq!(got[1], json!({"status": 200, "body": "ping"}));
    assert_eq!(seen.lock().unwrap().requests.len(), 2);
    let calls = &report.http.calls;
    assert_eq!(report.http.total, 2);
    assert_eq!(
        (
            calls[0].method.as_str(),
            calls[0].host.as_str(),
            calls[0].port,
            calls[0].path.as_str()
        ),
        ("GET", "127.0.0.1", port, "/hello"),
        "the query string is not recorded"
    );
    assert_eq!(calls[0].status, Some(200));
    assert_eq!(calls[0].result, corral::runtime::outbound::CallResult::Ok);
    assert_eq!(calls[0].bytes_received, 2);
    assert_eq!((calls[1].bytes_sent, calls[1].bytes_received), (4, 4));
}

#[tokio::test]
async fn requests_off_the_allow_list_are_denied_and_recorded() {
    let (port, seen) = server().await;
    let s = settings(json!([
        {"url": format!("http://127.0.0.1:{port}"), "methods": ["GET"]},
    ]));
    let report = fetch(
        json!([
            {"method": "POST", "url": format!("http://127.0.0.1:{port}/echo"), "body": "x"},
            {"url": format!("http://127.0.0.1:{}/hello", port + 1)},
            {"url": format!("https://127.0.0.1:{port}/hello")},
            {"url": "http://example.com/"},
        ]),
        grant(&s, local_network(), &[]),
        30_000,
        CancellationToken::new(),
    )
    .await;
    for got in outcomes(&report) {
        assert_eq!(got["error"], "HttpRequestDenied", "{got}");
    }
    assert!(seen.lock().unwrap().requests.is_empty());
    assert_eq!(report.http.total, 4);
    for call in &report.http.calls {
        let error = call.error.as_deref().unwrap_or_default();
        assert!(error.starts_with("denied: no allow-list entry"), "{error}");
    }
}

#[tokio::test]
async fn the_hosts_own_network_is_refused_even_when_allow_listed() {
    let (port, seen) = server().await;
    let urls = [
        format!("http://127.0.0.1:{port}/hello"),
        format!("http://localhost:{port}/hello"),
        format!("http://[::1]:{port}/hello"),
        format!("http://[::ffff:127.0.0.1]:{port}/hello"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://192.168.1.1/".to_string(),
    ];
    let entries: Vec<String> = urls
        .iter()
        .map(|u| {
            let rest = u.strip_prefix("http://").unwrap();
            format!("http://{}", &rest[..rest.find('/').unwrap()])
        })
        .collect();
    let s = settings(json!(entries));
    // No --allow-private-network: the default policy.
    let report = fetch(
        json!(urls.iter().map(|u| json!({"url": u})).collect::<Vec<_>>()),
        grant(&s, Arc::new(OutboundContext::default()), &[]),
        30_000,
        CancellationToken::new(),
    )
    .await;
    for (url, got) in urls.iter().zip(outcomes(&report)) {
        assert_eq!(got["error"], "DestinationIpProhibited", "{url}: {got}");
    }
    assert!(
        seen.lock().unwrap().requests.is_empty(),
        "nothing reached the server"
    );
    let error = report.http.calls[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("may not reach"), "{error}");
}

#[tokio::test]
async fn a_secret_reaches_only_the_destination_allowed_to_receive_it() {
    let (port, seen) = server().await;
    let other = server().await;
    let s = settings(json!([
        {"url": format!("http://127.0.0.1:{port}"), "secrets": ["API_TOKEN"]},
        format!("http://127.0.0.1:{}", other.0),
    ]));
    let secret = "s3cr3t-value-never-stored";
    let header = json!({"authorization": "Bearer {{secret.API_TOKEN}}"});
    let report = fetch(
        json!([
            {"url": format!("http://127.0.0.1:{port}/auth"), "headers": header},
            {"url": format!("http://127.0.0.1:{}/auth", other.0), "headers": header},
            {"url": format!("http://127.0.0.1:{port}/auth?t={{{{secret.API_TOKEN}}}}")},
            {"url": format!("http://127.0.0.1:{port}/auth"),
             "headers": {"authorization": "Bearer {{secret.MISSING}}"}},
        ]),
        grant(&s, local_network(), &[("API_TOKEN", secret)]),
        30_000,
        CancellationToken::new(),
    )
    .await;
    let got = outcomes(&report);
    assert_eq!(got[0], json!({"status": 200, "body": "ok"}));
    for denied in &got[1..] {
        assert_eq!(denied["error"], "HttpRequestDenied", "{denied}");
    }
    let received = seen.lock().unwrap().requests.clone();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].2.as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    assert!(other.1.lock().unwrap().requests.is_empty());
    let everything = serde_json::to_string(&report).unwrap();
    assert!(
        !everything.contains(secret),
        "the report never holds the secret"
    );
}

#[tokio::test]
async fn an_attempts_limits_hold() {
    let (port, _) = server().await;
    let base = format!("http://127.0.0.1:{port}");
    let mut s = settings(json!([base.clone()]));
    s.max_requests = Some(3);
    s.max_response_bytes = Some(1000);
    let report = fetch(
        json!([
            {"url": format!("{base}/big")},
            {"url": format!("{base}/hello"), "times": 4},
        ]),
        grant(&s, local_network(), &[]),
        30_000,
        CancellationToken::new(),
    )
    .await;
    let got = outcomes(&report);
    assert!(
        got[0]["error"]
            .as_str()
            .unwrap()
            .contains("body size exceeds limit"),
        "{}",
        got[0]
    );
    assert_eq!(got[1]["status"], 200);
    assert_eq!(got[2]["status"], 200);
    assert_eq!(got[3]["error"], "ConnectionLimitReached");
    assert_eq!(got[4]["error"], "ConnectionLimitReached");
    assert_eq!(report.http.total, 5);
    let big = &report.http.calls[0];
    assert_eq!(
        big.result,
        corral::runtime::outbound::CallResult::TooLarge,
        "{big:?}"
    );
    assert_eq!(
        report.http.calls[3].result,
        corral::runtime::outbound::CallResult::Denied
    );

    // A server that never answers: the attempt's deadline ends it.
    let report = fetch(
        json!([{"url": format!("{base}/never")}]),
        grant(&s, local_network(), &[]),
        1_000,
        CancellationToken::new(),
    )
    .await;
    assert_eq!(report.outcome, OutcomeKind::Timeout, "{report:#?}");
    assert_eq!(report.http.total, 1);

    // Cancelled while the request is in flight (a fresh server, so the
    // signal below is this request's).
    let (port, seen) = server().await;
    let base = format!("http://127.0.0.1:{port}");
    let s = settings(json!([base.clone()]));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let attempt = tokio::spawn(fetch(
        json!([{"url": format!("{base}/never")}]),
        grant(&s, local_network(), &[]),
        60_000,
        cancel,
    ));
    // Once the request is parked in the server, cancel the job.
    let parked = seen.lock().unwrap().parked.clone();
    tokio::time::timeout(PATIENCE, parked.notified())
        .await
        .expect("the request reaches the server");
    stop.cancel();
    let report = attempt.await.unwrap();
    assert_eq!(report.outcome, OutcomeKind::Cancelled, "{report:#?}");
}

corral_tests::on_both_backends!(
    a_plugins_allow_list_is_stored_applied_by_the_worker_and_recorded,
    secrets_are_write_only_sealed_and_reach_only_their_destination,
);

/// Through the API and a real worker, on both backends: settings refused by
/// name (nothing stored), set with PATCH, inherited by a new version, applied
/// by the worker under its network policy, and the requests recorded with
/// the attempt.
async fn a_plugins_allow_list_is_stored_applied_by_the_worker_and_recorded(
    db: corral_tests::db::TestDb,
) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{app, call, push, tenant_with_key, upload};
    let (port, seen) = server().await;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "fetch").await;

    // Bad settings: 422 naming the problem; nothing changes.
    for (http, why) in [
        (json!({"allow": ["ftp://x.example.com"]}), "https://"),
        (json!({"allow": ["https://x.example.com/path"]}), "no path"),
        (
            json!({"allow": [], "max_requests": 1_000_000}),
            "max_requests",
        ),
        (json!({"allow": [], "surprise": true}), "surprise"),
    ] {
        let refused = call(
            &app,
            Method::PATCH,
            "/v1/plugins/fetch",
            Some(&key),
            Some(json!({ "http": http })),
        )
        .await;
        assert!(refused.0.is_client_error(), "{}: {}", refused.0, refused.1);
        assert!(refused.1.to_string().contains(why), "{}", refused.1);
    }
    let (_, shown) = call(&app, Method::GET, "/v1/plugins/fetch", Some(&key), None).await;
    assert_eq!(
        shown["versions"][0]["http"],
        json!({"allow": []}),
        "{shown}"
    );

    let allowed = format!("http://127.0.0.1:{port}");
    let patched = call(
        &app,
        Method::PATCH,
        "/v1/plugins/fetch",
        Some(&key),
        Some(json!({"http": {"allow": [{"url": allowed, "methods": ["GET"]}], "max_requests": 5}})),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    // A new version (other bytes) inherits the settings.
    // (A trailing custom section: `ct`, one byte of payload.)
    let mut bytes = corral_tests::plugin_bytes("fetch");
    bytes.extend_from_slice(&[0x00, 0x04, 0x02, b'c', b't', b'x']);
    let v2 = upload(&app, &key, "/v1/plugins/fetch", bytes, "application/wasm").await;
    assert_eq!(v2.0, StatusCode::CREATED, "{}", v2.1);
    assert_eq!(v2.1["version"], 2);
    assert_eq!(v2.1["http"]["max_requests"], 5, "{}", v2.1);

    let input = json!({"requests": [
        {"url": format!("http://127.0.0.1:{port}/hello?secret=no")},
        {"url": format!("http://127.0.0.1:{port}/echo"), "method": "POST", "body": "x"},
    ]});
    let id = run_fetch_job(&db, &app, &key, input).await;
    let (_, got) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        got["result"][0],
        json!({"status": 200, "body": "hi"}),
        "{got}"
    );
    assert_eq!(got["result"][1]["error"], "HttpRequestDenied", "{got}");
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    let (_, attempts) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{id}/attempts"),
        Some(&key),
        None,
    )
    .await;
    let http = &attempts["attempts"][0]["http"];
    assert_eq!(http["total"], 2, "{attempts}");
    assert_eq!(
        http["calls"][0]["path"], "/hello",
        "no query string: {http}"
    );
    assert_eq!(http["calls"][0]["status"], 200);
    assert_eq!(http["calls"][1]["result"], "denied");
    let denied = http["calls"][1]["error"].as_str().unwrap_or_default();
    assert!(denied.starts_with("denied:"), "{denied}");
}

/// Secrets over the API, on both backends: write-only (listed by name and
/// times), refused by name when bad, sealed in the database, bounded per
/// tenant, and filled in by the worker only toward the destination the
/// allow-list binds them to; never in the job's result, log or attempts.
async fn secrets_are_write_only_sealed_and_reach_only_their_destination(
    db: corral_tests::db::TestDb,
) {
    use axum::http::{Method, StatusCode};
    use corral_tests::api::{app, assert_error, call, push, tenant_with_key};
    let (port, seen) = server().await;
    let other = server().await;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let rival = tenant_with_key(&app, "rival", json!({})).await;
    push(&app, &key, "fetch").await;
    let secret = "tok-3f9a-never-in-plaintext";

    let put = |name: &str, value: Value| {
        let app = app.clone();
        let key = key.clone();
        let path = format!("/v1/secrets/{name}");
        async move {
            call(
                &app,
                Method::PUT,
                &path,
                Some(&key),
                Some(json!({ "value": value })),
            )
            .await
        }
    };
    let created = put("API_TOKEN", json!(secret)).await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert!(!created.1.to_string().contains(secret));
    assert_eq!(put("API_TOKEN", json!(secret)).await.0, StatusCode::OK);
    assert_error(
        &put("lower", json!("x")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_secret_name",
    );
    assert_error(
        &put(
            "BIG",
            json!("x".repeat(corral::secrets::MAX_SECRET_BYTES + 1)),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_secret",
    );
    assert_error(
        &put("CRLF", json!("a\r\nb")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_secret",
    );
    let (status, listed) = call(&app, Method::GET, "/v1/secrets", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(listed["secrets"][0]["name"], "API_TOKEN");
    assert!(!listed.to_string().contains(secret));
    let (_, theirs) = call(&app, Method::GET, "/v1/secrets", Some(&rival), None).await;
    assert_eq!(theirs["secrets"], json!([]), "another tenant sees nothing");
    // Sealed at rest: the row holds no plaintext.
    let stored = corral_tests::db_texts(
        &db,
        "SELECT encode(ciphertext, 'hex') || encode(nonce, 'hex') || key_id FROM secrets",
        "SELECT hex(ciphertext) || hex(nonce) || key_id FROM secrets",
    )
    .await
    .concat()
    .to_lowercase();
    assert!(!stored.is_empty());
    assert!(!stored.contains(&hex_of(secret)) && !stored.contains(secret));

    // Bounded per tenant.
    for i in 1..corral::secrets::MAX_SECRETS_PER_TENANT {
        assert_eq!(
            put(&format!("S{i}"), json!("v")).await.0,
            StatusCode::CREATED
        );
    }
    let over = put("ONE_MORE", json!("v")).await;
    assert!(
        over.1.to_string().contains("MAX_SECRETS_PER_TENANT"),
        "{}",
        over.1
    );
    let (status, _) = call(&app, Method::DELETE, "/v1/secrets/S1", Some(&key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, Method::DELETE, "/v1/secrets/S1", Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bound to one destination by the allow-list.
    let patched = call(
        &app,
        Method::PATCH,
        "/v1/plugins/fetch",
        Some(&key),
        Some(json!({"http": {"allow": [
            {"url": format!("http://127.0.0.1:{port}"), "secrets": ["API_TOKEN"]},
            format!("http://127.0.0.1:{}", other.0),
        ]}})),
    )
    .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    let header = json!({"authorization": "Bearer {{secret.API_TOKEN}}"});
    let input = json!({"requests": [
        {"url": format!("http://127.0.0.1:{port}/auth"), "headers": header},
        {"url": format!("http://127.0.0.1:{}/auth", other.0), "headers": header},
    ]});
    let id = run_fetch_job(&db, &app, &key, input).await;
    let received = seen.lock().unwrap().requests.clone();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].2.as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    assert!(
        other.1.lock().unwrap().requests.is_empty(),
        "the unbound host got nothing"
    );
    let (_, got) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(got["result"][1]["error"], "HttpRequestDenied", "{got}");
    let everything = corral_tests::db_texts(
        &db,
        "SELECT concat(input::text, result::text, error, context::text) FROM jobs \
         UNION ALL SELECT concat(message, log, http::text) FROM attempts",
        "SELECT coalesce(input, '') || coalesce(result, '') || coalesce(error, '') FROM jobs \
         UNION ALL SELECT coalesce(message, '') || coalesce(log, '') || coalesce(http, '') FROM attempts",
    )
    .await
    .concat();
    assert!(
        everything.contains("HttpRequestDenied"),
        "the query saw the job"
    );
    assert!(
        !everything.contains(secret),
        "no plaintext in jobs or attempts"
    );
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Enqueue a `fetch` job of tenant `acme` and run it on a worker whose
/// network policy lets it reach the test servers; it must complete.
async fn run_fetch_job(
    db: &corral_tests::db::TestDb,
    app: &axum::Router,
    key: &str,
    input: Value,
) -> uuid::Uuid {
    use axum::http::{Method, StatusCode};
    let mut config = corral_tests::worker::config("host-http");
    config.outbound = local_network();
    let host = corral_tests::worker::Host::start(db, config);
    let (status, job) = corral_tests::api::call(
        app,
        Method::POST,
        "/v1/jobs",
        Some(key),
        Some(json!({"plugin": "fetch", "input": input})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let state = db.wait_for("acme", id, PATIENCE, |s| s.is_terminal()).await;
    host.stop().await;
    assert_eq!(state, corral::model::JobState::Completed);
    id
}
