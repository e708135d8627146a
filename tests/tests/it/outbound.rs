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
    AllowEntry, HttpGrant, HttpRules, HttpSettings, NetworkPolicy, OutboundContext,
};
use corral::runtime::{AttemptReport, AttemptRequest, JobInput, Plugin};
use corral_tests::{Guest, guest_plugin_bytes, load, shared_runtime};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(120);

/// What the test server saw.
struct Seen {
    requests: Vec<(String, String, Option<String>)>,
    /// A permit for each request that reached `/never`.
    parked: Arc<tokio::sync::Semaphore>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            requests: Vec::new(),
            parked: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

/// Wait until `n` requests have reached `/never`.
async fn parked(seen: &Arc<Mutex<Seen>>, n: u32) {
    let parked = seen.lock().unwrap().parked.clone();
    tokio::time::timeout(PATIENCE, parked.acquire_many(n))
        .await
        .expect("the requests reach the server")
        .expect("the semaphore stays open")
        .forget();
}

/// A server on 127.0.0.1: `/hello`, `/echo` (the body back), `/big` (10,000
/// bytes), `/items` (a JSON list), `/never` (no answer, ever), `/auth`
/// (records the authorization header; answers "ok"). Returns its port and
/// what it saw.
async fn server() -> (u16, Arc<Mutex<Seen>>) {
    let (app, seen) = routes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// The same routes over HTTPS, under a self-signed certificate for
/// 127.0.0.1 (rcgen). Returns its port, what it saw, and the certificate
/// (PEM) a client must trust to reach it.
async fn tls_server() -> (u16, Arc<Mutex<Seen>>, String) {
    use tokio_rustls::rustls;
    let (app, seen) = routes();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key.into())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(app),
                    )
                    .await;
            });
        }
    });
    (port, seen, certified.cert.pem())
}

fn routes() -> (Router, Arc<Mutex<Seen>>) {
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
            "/items",
            get(|| async {
                axum::Json(json!([{"total": 10}, {"total": 20}, {"total": 30}, {"name": "none"}]))
            }),
        )
        .route(
            "/never",
            get({
                let parked = seen.lock().unwrap().parked.clone();
                move || async move {
                    parked.add_permits(1);
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
    (app, seen)
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

/// The `fetch` plugin in each language: Rust over corral-sdk, Python over
/// `corral.http`, JavaScript over the standard `fetch`.
async fn fetchers() -> Vec<(&'static str, Arc<Plugin>)> {
    let guest = |guest, name| async move {
        shared_runtime()
            .load(&guest_plugin_bytes(guest, name))
            .await
            .unwrap_or_else(|e| panic!("loading {guest:?} {name}: {e}"))
    };
    vec![
        ("rust", load("fetch").await),
        ("python", guest(Guest::Python, "fetch").await),
        ("js", guest(Guest::JavaScript, "fetch").await),
    ]
}

/// What a plugin saw of a refused request: the `wasi:http` error code's
/// name from the Rust and Python clients; JavaScript's `fetch` rejects with
/// a TypeError that names no code, so only its presence is checked there
/// (the host's record of the call holds the reason in every language).
fn assert_refused(language: &str, got: &Value, code: &str) {
    match language {
        "js" => assert!(
            got["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{language}: {got}"
        ),
        _ => assert_eq!(got["error"], code, "{language}: {got}"),
    }
}

/// One attempt of a `fetch` plugin making `requests` (a future that owns
/// what it needs, so a test can spawn it).
fn fetch(
    plugin: &Arc<Plugin>,
    requests: Value,
    http: HttpGrant,
    timeout_ms: u64,
    cancel: CancellationToken,
) -> impl Future<Output = AttemptReport> + 'static {
    attempt(
        plugin,
        json!({ "requests": requests }),
        http,
        timeout_ms,
        cancel,
    )
}

/// One attempt of `plugin` on `input`.
fn attempt(
    plugin: &Arc<Plugin>,
    input: Value,
    http: HttpGrant,
    timeout_ms: u64,
    cancel: CancellationToken,
) -> impl Future<Output = AttemptReport> + 'static {
    let plugin = plugin.clone();
    let mut request = AttemptRequest {
        job: JobInput {
            id: "job-1".into(),
            tenant: "acme".into(),
            plugin: "fetch".into(),
            attempt: 1,
            max_attempts: 1,
            input: input.to_string(),
            context: None,
        },
        http,
        cancel,
        ..AttemptRequest::default()
    };
    request.limits.timeout_ms = timeout_ms;
    async move {
        tokio::time::timeout(PATIENCE, shared_runtime().run(&plugin, request))
            .await
            .expect("the attempt ends")
    }
}

fn outcomes(report: &AttemptReport) -> Vec<Value> {
    assert_eq!(report.outcome, OutcomeKind::Completed, "{report:#?}");
    serde_json::from_str(report.result.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn an_allowed_request_round_trips_and_is_recorded() {
    for (language, plugin) in fetchers().await {
        let (port, seen) = server().await;
        let base = format!("http://127.0.0.1:{port}");
        let s = settings(json!([base.clone()]));
        let report = fetch(
            &plugin,
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
        assert_eq!(got[0], json!({"status": 200, "body": "hi"}), "{language}");
        assert_eq!(got[1], json!({"status": 200, "body": "ping"}), "{language}");
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
}

#[tokio::test]
async fn requests_off_the_allow_list_are_denied_and_recorded() {
    for (language, plugin) in fetchers().await {
        let (port, seen) = server().await;
        let s = settings(json!([
            {"url": format!("http://127.0.0.1:{port}"), "methods": ["GET"]},
        ]));
        let report = fetch(
            &plugin,
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
            assert_refused(language, &got, "HttpRequestDenied");
        }
        assert!(seen.lock().unwrap().requests.is_empty());
        assert_eq!(report.http.total, 4);
        for call in &report.http.calls {
            let error = call.error.as_deref().unwrap_or_default();
            assert!(error.starts_with("denied: no allow-list entry"), "{error}");
        }
    }
}

#[tokio::test]
async fn the_hosts_own_network_is_refused_even_when_allow_listed() {
    for (language, plugin) in fetchers().await {
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
            &plugin,
            json!(urls.iter().map(|u| json!({"url": u})).collect::<Vec<_>>()),
            grant(&s, Arc::new(OutboundContext::default()), &[]),
            30_000,
            CancellationToken::new(),
        )
        .await;
        for (url, got) in urls.iter().zip(outcomes(&report)) {
            assert_refused(language, &got, "DestinationIpProhibited");
            assert!(got["status"].is_null(), "{url}");
        }
        assert!(
            seen.lock().unwrap().requests.is_empty(),
            "nothing reached the server"
        );
        let error = report.http.calls[0].error.as_deref().unwrap_or_default();
        assert!(error.contains("may not reach"), "{error}");
    }
}

#[tokio::test]
async fn a_secret_reaches_only_the_destination_allowed_to_receive_it() {
    for (language, plugin) in fetchers().await {
        let (port, seen) = server().await;
        let other = server().await;
        let s = settings(json!([
            {"url": format!("http://127.0.0.1:{port}"), "secrets": ["API_TOKEN"]},
            format!("http://127.0.0.1:{}", other.0),
        ]));
        let secret = "s3cr3t-value-never-stored";
        let header = json!({"authorization": "Bearer {{secret.API_TOKEN}}"});
        let report = fetch(
            &plugin,
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
            assert_refused(language, denied, "HttpRequestDenied");
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
}

#[tokio::test]
async fn an_attempts_limits_hold() {
    for (language, plugin) in fetchers().await {
        let (port, _) = server().await;
        let base = format!("http://127.0.0.1:{port}");
        let mut s = settings(json!([base.clone()]));
        s.max_requests = Some(3);
        s.max_response_bytes = Some(1000);
        let report = fetch(
            &plugin,
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
        let too_large = got[0]["error"].as_str().unwrap_or_default();
        assert!(
            language == "js" || too_large.contains("body size exceeds limit"),
            "{language}: {}",
            got[0]
        );
        assert_eq!(got[1]["status"], 200);
        assert_eq!(got[2]["status"], 200);
        assert_refused(language, &got[3], "ConnectionLimitReached");
        assert_refused(language, &got[4], "ConnectionLimitReached");
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
            &plugin,
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
            &plugin,
            json!([{"url": format!("{base}/never")}]),
            grant(&s, local_network(), &[]),
            60_000,
            cancel,
        ));
        // Once the request is parked in the server, cancel the job.
        parked(&seen, 1).await;
        stop.cancel();
        let report = attempt.await.unwrap();
        assert_eq!(report.outcome, OutcomeKind::Cancelled, "{report:#?}");
    }
}

/// A server that answers and closes the connection at once (HTTP/1.0 style):
/// every answer is read, however the closing races the response.
#[tokio::test]
async fn a_server_that_answers_and_closes_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi")
                    .await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let s = settings(json!([base.clone()]));
    let report = fetch(
        &load("fetch").await,
        json!([{"url": format!("{base}/"), "times": 50}]),
        grant(&s, local_network(), &[]),
        60_000,
        CancellationToken::new(),
    )
    .await;
    for got in outcomes(&report) {
        assert_eq!(got, json!({"status": 200, "body": "hi"}));
    }
}

/// The Python and JavaScript examples that fetch a JSON list and reduce it
/// give the same figures over a real request.
#[tokio::test]
async fn the_json_stats_examples_fetch_and_reduce() {
    let (port, _) = server().await;
    let base = format!("http://127.0.0.1:{port}");
    let s = settings(json!([base.clone()]));
    for guest in [Guest::Python, Guest::JavaScript] {
        let plugin = shared_runtime()
            .load(&guest_plugin_bytes(guest, "json-stats"))
            .await
            .unwrap();
        let report = attempt(
            &plugin,
            json!({"url": format!("{base}/items"), "field": "total"}),
            grant(&s, local_network(), &[]),
            30_000,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(report.outcome, OutcomeKind::Completed, "{report:#?}");
        let got: Value = serde_json::from_str(report.result.as_deref().unwrap()).unwrap();
        let figures: Vec<f64> = ["items", "count", "sum", "min", "max", "mean"]
            .iter()
            .map(|k| got[*k].as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(
            figures,
            [4.0, 3.0, 60.0, 10.0, 30.0, 20.0],
            "{guest:?}: {got}"
        );
        assert_eq!(report.http.total, 1);

        // The JavaScript handler is async: what it throws is a rejection,
        // and still the outcome it names.
        for (input, outcome) in [
            (json!({}), OutcomeKind::Fatal),
            (
                json!({"url": format!("{base}/missing"), "field": "total"}),
                OutcomeKind::Failed,
            ),
        ] {
            let report = attempt(
                &plugin,
                input,
                grant(&s, local_network(), &[]),
                30_000,
                CancellationToken::new(),
            )
            .await;
            assert_eq!(report.outcome, outcome, "{guest:?}: {report:#?}");
        }
    }
}

/// HTTPS to a local server under a certificate the host trusts only
/// through the operator's extra CA (`--outbound-ca-file`): without it the
/// request fails on the certificate, and nothing is served.
#[tokio::test]
async fn https_is_verified_against_the_roots_and_the_operators_ca() {
    for (language, plugin) in fetchers().await {
        let (port, seen, pem) = tls_server().await;
        let base = format!("https://127.0.0.1:{port}");
        let s = settings(json!([{"url": base, "secrets": ["TOKEN"]}]));
        let network = || NetworkPolicy {
            allowed_private: vec!["127.0.0.1/32".parse().unwrap()],
        };
        let requests = json!([
            {"method": "POST", "url": format!("{base}/echo"), "body": "over tls"},
            {"url": format!("{base}/auth"), "headers": {"authorization": "{{secret.TOKEN}}"}},
        ]);
        let trusted = Arc::new(OutboundContext::new(network(), pem.as_bytes()).unwrap());
        let report = fetch(
            &plugin,
            requests.clone(),
            grant(&s, trusted, &[("TOKEN", "tls-only-token")]),
            30_000,
            CancellationToken::new(),
        )
        .await;
        let got = outcomes(&report);
        assert_eq!(
            got[0],
            json!({"status": 200, "body": "over tls"}),
            "{language}"
        );
        assert_eq!(got[1], json!({"status": 200, "body": "ok"}), "{language}");
        assert_eq!(
            seen.lock().unwrap().requests[1].2.as_deref(),
            Some("tls-only-token")
        );
        assert_eq!(report.http.calls[0].scheme, "https");

        // The Mozilla roots alone do not vouch for it.
        let untrusted = Arc::new(OutboundContext::new(network(), b"").unwrap());
        let report = fetch(
            &plugin,
            requests,
            grant(&s, untrusted, &[("TOKEN", "tls-only-token")]),
            30_000,
            CancellationToken::new(),
        )
        .await;
        for got in outcomes(&report) {
            assert!(got["error"].is_string(), "{language}: {got}");
        }
        let error = report.http.calls[0].error.as_deref().unwrap_or_default();
        assert!(error.to_lowercase().contains("certificate"), "{error}");
        assert_eq!(seen.lock().unwrap().requests.len(), 2, "no more served");
    }
}

corral_tests::on_both_backends!(
    a_plugins_allow_list_is_stored_applied_by_the_worker_and_recorded,
    secrets_are_write_only_sealed_and_reach_only_their_destination,
    the_real_binary_reaches_https_within_its_operator_flags,
    rotating_the_secret_key_reseals_every_secret,
    a_request_flood_leaves_other_tenants_running,
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
        let refused = call(&app, Method::PATCH, "/v1/plugins/fetch")
            .key(&key)
            .json(json!({ "http": http }))
            .send()
            .await;
        assert!(refused.0.is_client_error(), "{}: {}", refused.0, refused.1);
        assert!(refused.1.to_string().contains(why), "{}", refused.1);
    }
    let (_, shown) = call(&app, Method::GET, "/v1/plugins/fetch")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        shown["versions"][0]["http"],
        json!({"allow": []}),
        "{shown}"
    );

    let allowed = format!("http://127.0.0.1:{port}");
    let patched = call(&app, Method::PATCH, "/v1/plugins/fetch")
        .key(&key)
        .json(json!({"http": {"allow": [{"url": allowed, "methods": ["GET"]}], "max_requests": 5}}))
        .send()
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
    let (_, got) = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(
        got["result"][0],
        json!({"status": 200, "body": "hi"}),
        "{got}"
    );
    assert_eq!(got["result"][1]["error"], "HttpRequestDenied", "{got}");
    assert_eq!(seen.lock().unwrap().requests.len(), 1);
    let (_, attempts) = call(&app, Method::GET, &format!("/v1/jobs/{id}/attempts"))
        .key(&key)
        .send()
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
            call(&app, Method::PUT, &path)
                .key(&key)
                .json(json!({ "value": value }))
                .send()
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
    let (status, listed) = call(&app, Method::GET, "/v1/secrets")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(listed["secrets"][0]["name"], "API_TOKEN");
    assert!(!listed.to_string().contains(secret));
    let (_, theirs) = call(&app, Method::GET, "/v1/secrets")
        .key(&rival)
        .send()
        .await;
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
    let (status, _) = call(&app, Method::DELETE, "/v1/secrets/S1")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, Method::DELETE, "/v1/secrets/S1")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Bound to one destination by the allow-list.
    let patched = call(&app, Method::PATCH, "/v1/plugins/fetch")
        .key(&key)
        .json(json!({"http": {"allow": [
            {"url": format!("http://127.0.0.1:{port}"), "secrets": ["API_TOKEN"]},
            format!("http://127.0.0.1:{}", other.0),
        ]}}))
        .send()
        .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    let header = json!({"authorization": "Bearer {{secret.API_TOKEN}}"});
    let input = json!({"requests": [
        {"url": format!("http://127.0.0.1:{port}/auth"), "headers": header},
        {"url": format!("http://127.0.0.1:{}/auth", other.0), "headers": header},
    ]});
    let id = run_fetch_job(&db, &app, &key, input).await;
    let received = seen.lock().unwrap().requests.clone();
    if received.len() != 1 {
        // Which attempts sent what (a retried attempt sends again).
        let (_, attempts) = call(&app, Method::GET, &format!("/v1/jobs/{id}/attempts"))
            .key(&key)
            .send()
            .await;
        panic!("the server saw {received:?}; the job's attempts: {attempts}");
    }
    assert_eq!(
        received[0].2.as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    assert!(
        other.1.lock().unwrap().requests.is_empty(),
        "the unbound host got nothing"
    );
    let (_, got) = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .key(&key)
        .send()
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
    let (status, job) = corral_tests::api::call(app, Method::POST, "/v1/jobs")
        .key(key)
        .json(json!({"plugin": "fetch", "input": input}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();
    let state = db.wait_for("acme", id, PATIENCE, |s| s.is_terminal()).await;
    host.stop().await;
    if state != corral::model::JobState::Completed {
        let attempts = db.store.attempt_list("acme", id).await;
        panic!("job {id} ended {state}; its attempts: {attempts:?}");
    }
    id
}

/// `corral serve` itself, with the operator's flags: `--allow-private-network`
/// lets it reach the local servers, `--outbound-ca-file` makes it trust the
/// HTTPS server's certificate, `--outbound-hosts` refuses an allow-list
/// naming another host (422) and `--secret-key` seals the tenant's secret.
/// The job is created and waited for with the CLI.
async fn the_real_binary_reaches_https_within_its_operator_flags(db: corral_tests::db::TestDb) {
    let (tls_port, tls_seen, pem) = tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let port = corral_tests::free_port();
    let admin = "admin-token-of-the-outbound-test";
    let flags = [
        "--allow-private-network".to_string(),
        "127.0.0.1/32".to_string(),
        "--outbound-ca-file".to_string(),
        ca.display().to_string(),
        "--outbound-hosts".to_string(),
        "127.0.0.1,*.corral.test".to_string(),
        "--secret-key".to_string(),
        "a7".repeat(32),
    ];
    let (url, cache) = (db.url.clone(), dir.path().to_path_buf());
    let child = tokio::task::spawn_blocking(move || {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        corral_tests::serve_api_with(&url, port, &cache, Some(admin), &flags).0
    })
    .await
    .unwrap();
    let api = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let send = |request: reqwest::RequestBuilder, token: &str| {
        let request = request.bearer_auth(token);
        async move {
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("the API answers: {e:?}"));
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    send(
        client
            .post(format!("{api}/v1/tenants"))
            .json(&json!({"id": "acme"})),
        admin,
    )
    .await;
    let (_, key) = send(client.post(format!("{api}/v1/tenants/acme/keys")), admin).await;
    let key = key["key"].as_str().expect("a key").to_string();
    let (status, body) = send(
        client
            .put(format!("{api}/v1/secrets/TOKEN"))
            .json(&json!({"value": "sealed-by-the-binary"})),
        &key,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let upload = |name: &str, http: Value, bytes: Vec<u8>| {
        let http = http.to_string();
        client
            .post(format!("{api}/v1/plugins/{name}"))
            .query(&[("http", http.as_str())])
            .header("content-type", "application/wasm")
            .body(bytes)
    };
    for refused in [
        "https://api.example.com",
        "https://*.other.test",
        "http://localhost:80",
    ] {
        // Refused before the body is read: a short body, so the client is
        // not still sending when the answer comes.
        let short = b"\0asm\x0d\0\x01\0".to_vec();
        let (status, body) = send(upload("wide", json!({"allow": [refused]}), short), &key).await;
        assert_eq!(status, 422, "{refused}: {body}");
        assert_eq!(body["error"]["code"], "invalid_http", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("--outbound-hosts"), "{message}");
    }
    let base = format!("https://127.0.0.1:{tls_port}");
    let (status, body) = send(
        upload(
            "fetch",
            json!({"allow": [{"url": base, "secrets": ["TOKEN"]}, "https://hooks.corral.test"]}),
            corral_tests::plugin_bytes("fetch"),
        ),
        &key,
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let input = json!({"requests": [
        {"url": format!("{base}/auth"), "headers": {"authorization": "Bearer {{secret.TOKEN}}"}},
        {"url": format!("http://127.0.0.1:{tls_port}/hello")},
    ]});
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(corral_tests::corral_bin())
            .args(["job", "create", "fetch", "--input", &input.to_string()])
            .args(["--wait", "--json"])
            .env("CORRAL_SERVER", &api)
            .env("CORRAL_TOKEN", &key)
            .env_remove("RUST_LOG")
            .output()
            .expect("corral job create runs")
    })
    .await
    .unwrap();
    corral_tests::stop(child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let job: Value = serde_json::from_str(&stdout).expect("the job as JSON");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        job["result"][0],
        json!({"status": 200, "body": "ok"}),
        "{job}"
    );
    assert_eq!(job["result"][1]["error"], "HttpRequestDenied", "{job}");
    let received = tls_seen.lock().unwrap().requests.clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        received[0].2.as_deref(),
        Some("Bearer sealed-by-the-binary")
    );
    let stored = corral_tests::db_texts(
        &db,
        "SELECT encode(ciphertext, 'hex') FROM secrets",
        "SELECT hex(ciphertext) FROM secrets",
    )
    .await
    .concat()
    .to_lowercase();
    assert!(!stored.is_empty());
    assert!(!stored.contains(&hex_of("sealed-by-the-binary")));
}

/// `corral secret-key rotate`, the real binary: every secret the previous
/// key sealed is sealed again under the new one (and opens with it alone),
/// one that opens with neither key is counted and left, the exit code says
/// so, and a second run has nothing left to do. Without a previous key it
/// refuses to run.
async fn rotating_the_secret_key_reseals_every_secret(db: corral_tests::db::TestDb) {
    use axum::http::{Method, StatusCode};
    use corral::secrets::SecretKey;
    use corral_tests::api::{app, call, tenant_with_key};
    let app = app(&db);
    for tenant in ["acme", "rival"] {
        let key = tenant_with_key(&app, tenant, json!({})).await;
        for name in ["ONE", "TWO"] {
            let (status, body) = call(&app, Method::PUT, &format!("/v1/secrets/{name}"))
                .key(&key)
                .json(json!({"value": format!("{tenant}-{name}-value")}))
                .send()
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    let lost = SecretKey::from_hex(&"77".repeat(32)).unwrap();
    db.store
        .secret_put(
            "acme",
            "LOST",
            &lost.seal("acme", "LOST", "unrecoverable").unwrap(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();

    let new = "c3".repeat(32);
    let old = "5e".repeat(32); // the tests' API key (corral_tests::secret_key)
    let rotate = |args: Vec<String>| {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(corral_tests::corral_bin())
                .args(["secret-key", "rotate", "--database-url", &url])
                .args(args)
                .env_remove("CORRAL_SECRET_KEY")
                .env_remove("CORRAL_PREVIOUS_SECRET_KEY")
                .output()
                .expect("corral secret-key rotate runs")
        })
    };
    let both = vec![
        "--secret-key".to_string(),
        new.clone(),
        "--previous-secret-key".to_string(),
        old.clone(),
    ];
    let first = rotate(both.clone()).await.unwrap();
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    let done: Value = serde_json::from_slice(&first.stdout).expect("JSON");
    assert_eq!(
        done,
        json!({"resealed": 4, "changed_meanwhile": 0, "unopenable": 1})
    );
    let new_key = SecretKey::from_hex(&new).unwrap();
    for tenant in ["acme", "rival"] {
        let names = vec!["ONE".to_string(), "TWO".to_string()];
        let sealed = db.store.secrets_sealed(tenant, &names).await.unwrap();
        assert_eq!(sealed.len(), 2);
        for (name, sealed) in sealed {
            assert_eq!(sealed.key_id, new_key.id());
            assert_eq!(
                new_key.open(tenant, &name, &sealed).unwrap(),
                format!("{tenant}-{name}-value")
            );
        }
    }
    let again = rotate(both).await.unwrap();
    let done: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert_eq!(
        done,
        json!({"resealed": 0, "changed_meanwhile": 0, "unopenable": 1})
    );
    let alone = rotate(vec!["--secret-key".to_string(), new]).await.unwrap();
    assert_eq!(alone.status.code(), Some(2), "{alone:?}");
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("no previous key"),
        "{alone:?}"
    );
}

/// A tenant whose plugin floods requests gets what its quota allows and no
/// more (`max_http_requests_per_attempt` per attempt, asked for at PATCH
/// and applied at claim; the rest are refused at once),
/// and its attempts parked on a server that never answers hold only its own
/// slots: another tenant's jobs run and complete while they hang.
async fn a_request_flood_leaves_other_tenants_running(db: corral_tests::db::TestDb) {
    use axum::http::{Method, StatusCode};
    use corral::model::JobState;
    use corral_tests::api::{app, call, push, tenant_with_key};
    let (port, seen) = server().await;
    let base = format!("http://127.0.0.1:{port}");
    let app = app(&db);
    let hostile = tenant_with_key(
        &app,
        "hostile",
        json!({"max_concurrency": 2, "max_http_requests_per_attempt": 60}),
    )
    .await;
    let innocent = tenant_with_key(&app, "innocent", json!({})).await;
    let (status, body) = corral_tests::api::upload(
        &app,
        &hostile,
        "/v1/plugins/fetch?timeout_ms=600000",
        corral_tests::plugin_bytes("fetch"),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(&app, Method::PATCH, "/v1/plugins/fetch")
        .key(&hostile)
        .json(json!({"http": {"allow": [base], "max_requests": 100}}))
        .send()
        .await;
    // Over the tenant's quota: refused by name, nothing stored.
    corral_tests::api::assert_error(
        &(status, body.clone()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "over_limit",
    );
    assert!(
        body.to_string().contains("max_http_requests_per_attempt"),
        "{body}"
    );
    // The default (100 per attempt) is lowered to the quota at claim.
    let (status, body) = call(&app, Method::PATCH, "/v1/plugins/fetch")
        .key(&hostile)
        .json(json!({"http": {"allow": [base]}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    push(&app, &innocent, "echo").await;
    let enqueue = |key: String, plugin: &'static str, input: Value| {
        let app = app.clone();
        async move {
            let (status, job) = call(&app, Method::POST, "/v1/jobs")
                .key(&key)
                .json(json!({"plugin": plugin, "input": input}))
                .send()
                .await;
            assert_eq!(status, StatusCode::CREATED, "{job}");
            job["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap()
        }
    };
    // One hostile job asks for 10,000 requests; two more hang on /never.
    let flood = json!({"requests": [{"url": format!("{base}/never")}]});
    let flooder = json!({"requests": [{"url": format!("{base}/hello"), "times": 10_000}]});
    let first = enqueue(hostile.clone(), "fetch", flooder).await;
    let mut hanging = Vec::new();
    for _ in 0..2 {
        hanging.push(enqueue(hostile.clone(), "fetch", flood.clone()).await);
    }
    let mut config = corral_tests::worker::config("host-flood");
    config.outbound = local_network();
    config.concurrency = 4;
    // The hanging attempts are handed back at once when the test ends.
    config.grace = Duration::from_millis(100);
    let host = corral_tests::worker::Host::start(&db, config);
    let state = db
        .wait_for("hostile", first, PATIENCE, |s| s.is_terminal())
        .await;
    assert_eq!(state, JobState::Completed);
    // Exactly the attempt's allowance (the tenant's quota) reached the server.
    assert_eq!(seen.lock().unwrap().requests.len(), 60);
    parked(&seen, 2).await;

    let mut innocents = Vec::new();
    for i in 0..3 {
        innocents.push(enqueue(innocent.clone(), "echo", json!({ "n": i })).await);
    }
    for id in innocents {
        let state = db
            .wait_for("innocent", id, PATIENCE, |s| s.is_terminal())
            .await;
        assert_eq!(state, JobState::Completed);
    }
    for id in &hanging {
        let (_, job) = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
            .key(&hostile)
            .send()
            .await;
        assert_eq!(job["state"], "running", "still hanging: {job}");
    }
    let (_, attempts) = call(&app, Method::GET, &format!("/v1/jobs/{first}/attempts"))
        .key(&hostile)
        .send()
        .await;
    let http = &attempts["attempts"][0]["http"];
    assert_eq!(http["total"], 10_000, "{http}");
    host.stop().await;
}
