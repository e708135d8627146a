//! The HTTP API through `router()` with `oneshot` (no socket needed), on both
//! backends: authentication, scoping, tenants and keys, the error shape, and
//! that a refused request changes nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use corral::http::{AppState, router};
use corral::model::{Limits, NewJob};
use corral_tests::db::TestDb;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

corral_tests::on_both_backends!(
    health_and_ready_need_no_key,
    routes_need_a_known_key,
    tenants_and_keys_are_managed_with_the_admin_key,
    bad_tenant_requests_are_refused_and_store_nothing,
    a_tenant_sees_only_its_own_jobs,
    jobs_are_created_singly_and_in_batches,
    jobs_are_cancelled_and_their_attempts_and_logs_read,
);

const ADMIN_TOKEN: &str = "test-admin-token";

fn app(db: &TestDb) -> axum::Router {
    router(AppState {
        store: db.store.clone(),
        admin_token_hash: Some(Arc::from(corral::keys::hash(ADMIN_TOKEN))),
    })
}

async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_with(app, method, uri, key, body, &[]).await
}

async fn call_with(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

fn assert_error(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(response.1["error"]["code"], code, "{}", response.1);
    assert!(
        response.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

async fn health_and_ready_need_no_key(db: TestDb) {
    let app = app(&db);
    assert_eq!(
        call(&app, Method::GET, "/health", None, None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        call(&app, Method::GET, "/ready", None, None).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    assert_error(
        &call(&app, Method::GET, "/nope", None, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn routes_need_a_known_key(db: TestDb) {
    let app = app(&db);
    assert_error(
        &call(&app, Method::GET, "/v1/tenants", None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let forged = format!("corral_{}_{}", "a".repeat(16), "b".repeat(64));
    for key in ["wrong", forged.as_str()] {
        assert_error(
            &call(&app, Method::GET, "/v1/tenants", Some(key), None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    let mut request = Request::builder()
        .uri("/v1/tenants")
        .header("authorization", ADMIN_TOKEN);
    request = request.method(Method::GET);
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the Bearer scheme is required"
    );
    // The admin key is not a tenant's key, and the reverse.
    let job = format!("/v1/jobs/{}", uuid::Uuid::now_v7());
    assert_error(
        &call(&app, Method::GET, &job, Some(ADMIN_TOKEN), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    call(
        &app,
        Method::POST,
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some(json!({"id": "acme"})),
    )
    .await;
    let (_, key) = call(
        &app,
        Method::POST,
        "/v1/tenants/acme/keys",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    let tenant_key = key["key"].as_str().unwrap();
    assert_error(
        &call(&app, Method::GET, "/v1/tenants", Some(tenant_key), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn tenants_and_keys_are_managed_with_the_admin_key(db: TestDb) {
    let app = app(&db);
    let (status, tenant) = call(
        &app,
        Method::POST,
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some(json!({"id": "acme", "name": "Acme Corp", "quotas": {"max_concurrency": 4}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    assert_eq!(
        (tenant["id"].as_str(), tenant["name"].as_str()),
        (Some("acme"), Some("Acme Corp"))
    );
    assert_eq!(tenant["quotas"]["max_concurrency"], 4);
    assert_eq!(
        tenant["quotas"]["max_memory_mb"], 512,
        "defaults fill the rest"
    );
    assert_error(
        &call(
            &app,
            Method::POST,
            "/v1/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"id": "acme"})),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let (status, list) = call(&app, Method::GET, "/v1/tenants", Some(ADMIN_TOKEN), None).await;
    assert_eq!(
        (status, list["tenants"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, updated) = call(
        &app,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(ADMIN_TOKEN),
        Some(json!({"quotas": {"enqueue_per_minute": 60}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            updated["quotas"]["enqueue_per_minute"].as_u64(),
            updated["quotas"]["max_concurrency"].as_u64()
        ),
        (Some(60), Some(4))
    );
    assert_error(
        &call(
            &app,
            Method::GET,
            "/v1/tenants/ghost",
            Some(ADMIN_TOKEN),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let (status, key) = call(
        &app,
        Method::POST,
        "/v1/tenants/acme/keys",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = key["key"].as_str().unwrap().to_string();
    let key_id = key["key_id"].as_str().unwrap().to_string();
    let stored = db.store.api_key_get(&key_id).await.unwrap().unwrap();
    assert!(
        !stored.secret_hash.is_empty() && !token.contains(&stored.secret_hash),
        "only the hash is stored"
    );
    let job = format!("/v1/jobs/{}", uuid::Uuid::now_v7());
    assert_error(
        &call(&app, Method::GET, &job, Some(&token), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/v1/tenants/acme/keys/{key_id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &call(&app, Method::GET, &job, Some(&token), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &call(
            &app,
            Method::DELETE,
            &format!("/v1/tenants/acme/keys/{key_id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(
            &app,
            Method::POST,
            "/v1/tenants/ghost/keys",
            Some(ADMIN_TOKEN),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn bad_tenant_requests_are_refused_and_store_nothing(db: TestDb) {
    let app = app(&db);
    let cases = [
        (
            json!({"id": "Not Valid"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tenant_id",
        ),
        (
            json!({"id": "acme", "quotas": {"max_concurrency": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quota",
        ),
        (
            json!({"id": "acme", "surprise": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"name": "no id"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        assert_error(
            &call(
                &app,
                Method::POST,
                "/v1/tenants",
                Some(ADMIN_TOKEN),
                Some(body),
            )
            .await,
            status,
            code,
        );
    }
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/tenants")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        db.store.tenant_list().await.unwrap().is_empty(),
        "nothing stored"
    );

    call(
        &app,
        Method::POST,
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some(json!({"id": "acme"})),
    )
    .await;
    assert_error(
        &call(
            &app,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(ADMIN_TOKEN),
            Some(json!({"quotas": {"max_memory_mb": 0}})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_quota",
    );
    let tenant = db.store.tenant_get("acme").await.unwrap().unwrap();
    assert_eq!(
        tenant.quotas,
        corral::model::Quotas::default(),
        "unchanged after a refused update"
    );
}

async fn a_tenant_sees_only_its_own_jobs(db: TestDb) {
    let app = app(&db);
    for tenant in ["acme", "other"] {
        call(
            &app,
            Method::POST,
            "/v1/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"id": tenant})),
        )
        .await;
        db.plugin(tenant, "echo", b"component", Limits::default(), 3)
            .await;
    }
    let (_, acme_key) = call(
        &app,
        Method::POST,
        "/v1/tenants/acme/keys",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    let (_, other_key) = call(
        &app,
        Method::POST,
        "/v1/tenants/other/keys",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    let id = db
        .store
        .job_insert_batch(
            "acme",
            &[NewJob::new("echo", r#"{"n": 1}"#)],
            chrono::Utc::now(),
        )
        .await
        .unwrap()[0]
        .id;

    let (status, job) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{id}"),
        acme_key["key"].as_str(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        (
            job["state"].as_str(),
            job["input"].clone(),
            job["version"].as_u64()
        ),
        (Some("available"), json!({"n": 1}), Some(1))
    );
    // Another tenant's id answers exactly like a missing one.
    let theirs = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{id}"),
        other_key["key"].as_str(),
        None,
    )
    .await;
    let missing = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{}", uuid::Uuid::now_v7()),
        other_key["key"].as_str(),
        None,
    )
    .await;
    assert_error(&theirs, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(theirs.0, missing.0);
    assert_error(
        &call(
            &app,
            Method::GET,
            "/v1/jobs/not-a-uuid",
            acme_key["key"].as_str(),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn jobs_are_created_singly_and_in_batches(db: TestDb) {
    let app = app(&db);
    call(
        &app,
        Method::POST,
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some(json!({"id": "acme", "quotas": {"max_timeout_ms": 60000}})),
    )
    .await;
    db.plugin("acme", "echo", b"component", Limits::default(), 3)
        .await;
    let (_, key) = call(
        &app,
        Method::POST,
        "/v1/tenants/acme/keys",
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    let key = key["key"].as_str().unwrap().to_string();
    let count = || async {
        db.store
            .job_counts(Some("acme"))
            .await
            .unwrap()
            .values()
            .sum::<u64>()
    };

    let body = json!({"plugin": "echo", "input": {"b": [1, 2], "a": "x"}, "priority": 5, "timeout_ms": 1000});
    let (status, job) = call(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(&key),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(
        (
            job["state"].as_str(),
            job["priority"].as_i64(),
            job["version"].as_u64()
        ),
        (Some("available"), Some(5), Some(1))
    );
    assert_eq!(job["input"], json!({"b": [1, 2], "a": "x"}));

    // The same Idempotency-Key returns the first job, with 200.
    let headers = [("idempotency-key", "order-7")];
    let (first_status, first) = call_with(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(&key),
        Some(body.clone()),
        &headers,
    )
    .await;
    let (again_status, again) = call_with(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(&key),
        Some(body.clone()),
        &headers,
    )
    .await;
    assert_eq!(
        (first_status, again_status),
        (StatusCode::CREATED, StatusCode::OK)
    );
    assert_eq!(first["id"], again["id"]);
    assert_eq!(count().await, 2);

    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"plugin": "echo", "input": i}))
        .collect();
    let (status, batch) = call(
        &app,
        Method::POST,
        "/v1/jobs/batch",
        Some(&key),
        Some(json!({"jobs": jobs})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{batch}");
    let ids = batch["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let (_, job) = call(
            &app,
            Method::GET,
            &format!("/v1/jobs/{}", id.as_str().unwrap()),
            Some(&key),
            None,
        )
        .await;
        assert_eq!(job["input"], json!(i), "ids come back in order");
    }
    assert_eq!(count().await, 5);

    // Refusals name the problem and store nothing.
    let refusals = [
        (
            json!({"plugin": "nope", "input": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_plugin",
        ),
        (
            json!({"plugin": "echo", "input": 1, "timeout_ms": 60001}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_limit",
        ),
        (
            json!({"plugin": "echo", "input": 1, "priority": 5000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            json!({"plugin": "echo", "input": 1, "queue": "Bad Queue"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            json!({"plugin": "echo"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"plugin": "echo", "input": 1, "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in refusals {
        assert_error(
            &call(&app, Method::POST, "/v1/jobs", Some(&key), Some(body)).await,
            status,
            code,
        );
    }
    let mixed = json!({"jobs": [{"plugin": "echo", "input": 1}, {"plugin": "nope", "input": 2}]});
    let refused = call(
        &app,
        Method::POST,
        "/v1/jobs/batch",
        Some(&key),
        Some(mixed),
    )
    .await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "unknown_plugin");
    assert_error(
        &call(
            &app,
            Method::POST,
            "/v1/jobs/batch",
            Some(&key),
            Some(json!({"jobs": []})),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    assert_eq!(count().await, 5, "nothing stored by a refused request");
    assert_error(
        &call(
            &app,
            Method::POST,
            "/v1/jobs",
            None,
            Some(json!({"plugin": "echo", "input": 1})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

async fn jobs_are_cancelled_and_their_attempts_and_logs_read(db: TestDb) {
    use corral::model::{Attempt, Finish, OutcomeKind, Transition};
    use corral::store::ClaimRequest;
    let app = app(&db);
    let mut keys = Vec::new();
    for tenant in ["acme", "other"] {
        call(
            &app,
            Method::POST,
            "/v1/tenants",
            Some(ADMIN_TOKEN),
            Some(json!({"id": tenant})),
        )
        .await;
        db.plugin(tenant, "echo", b"component", Limits::default(), 3)
            .await;
        let (_, key) = call(
            &app,
            Method::POST,
            &format!("/v1/tenants/{tenant}/keys"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        keys.push(key["key"].as_str().unwrap().to_string());
    }
    let (acme, other) = (keys[0].as_str(), keys[1].as_str());
    let (_, waiting) = call(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(acme),
        Some(json!({"plugin": "echo", "input": 1})),
    )
    .await;
    let waiting = waiting["id"].as_str().unwrap().to_string();

    assert_error(
        &call(
            &app,
            Method::POST,
            &format!("/v1/jobs/{waiting}/cancel"),
            Some(other),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        db.store
            .job_get("acme", waiting.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .state,
        corral::model::JobState::Available,
        "unchanged"
    );
    let (status, job) = call(
        &app,
        Method::POST,
        &format!("/v1/jobs/{waiting}/cancel"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(
        (status, job["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_error(
        &call(
            &app,
            Method::POST,
            &format!("/v1/jobs/{waiting}/cancel"),
            Some(acme),
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // An attempt recorded by a worker shows in the timeline and the logs.
    let (_, ran) = call(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(acme),
        Some(json!({"plugin": "echo", "input": 2})),
    )
    .await;
    let ran = ran["id"].as_str().unwrap().to_string();
    let claimed = db
        .store
        .job_claim(&ClaimRequest {
            host_id: "host-a".into(),
            now: chrono::Utc::now(),
            limit: 1,
            lease: std::time::Duration::from_secs(30),
            queues: None,
        })
        .await
        .unwrap()
        .remove(0);
    let now = chrono::Utc::now();
    db.store
        .job_finish(&[Finish {
            job_id: claimed.id,
            lease_token: claimed.lease_token,
            attempt: Attempt {
                attempt: 1,
                outcome: OutcomeKind::Failed,
                message: Some("try again".into()),
                started_at: now,
                finished_at: now,
                fuel_consumed: 1234,
                peak_memory_bytes: 65536,
                host_id: "host-a".into(),
                log: "[info] hello\n".into(),
                log_dropped_bytes: 0,
            },
            transition: Transition::Retry {
                run_at: now,
                error: "try again".into(),
            },
        }])
        .await
        .unwrap();
    let (status, attempts) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{ran}/attempts"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = &attempts["attempts"][0];
    assert_eq!(
        (
            first["outcome"].as_str(),
            first["fuel_consumed"].as_u64(),
            first["host_id"].as_str()
        ),
        (Some("failed"), Some(1234), Some("host-a"))
    );
    let (_, logs) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{ran}/logs"),
        Some(acme),
        None,
    )
    .await;
    assert_eq!(logs["logs"][0]["log"], "[info] hello\n");
    assert_eq!(logs["logs"][0]["truncated"], false);
    for path in ["attempts", "logs"] {
        assert_error(
            &call(
                &app,
                Method::GET,
                &format!("/v1/jobs/{ran}/{path}"),
                Some(other),
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}
