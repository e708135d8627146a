//! The HTTP API through `router()` with `oneshot` (no socket needed), on both
//! backends: authentication, scoping, tenants and keys, the error shape, and
//! that a refused request changes nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use corral::model::{Limits, NewJob};
use corral_tests::api::{
    ADMIN_TOKEN, SseReader, app, assert_error, call, push, tenant_with_key, upload,
};
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
    plugins_are_uploaded_and_versioned,
    bad_uploads_are_refused_and_store_nothing,
    a_job_runs_end_to_end_through_the_api,
    bad_plugin_updates_are_refused_and_change_nothing,
    jobs_are_listed_newest_first_with_filters_and_cursors,
    a_job_is_replayed_as_a_new_linked_job,
    a_client_follows_a_job_with_server_sent_events,
    a_client_sees_progress_as_server_sent_events,
    plugin_versions_are_deleted_unless_jobs_need_them,
    the_queued_jobs_quota_answers_429_and_stores_nothing,
    the_enqueue_rate_quota_answers_429_with_retry_after,
    the_openapi_document_and_offline_docs_are_served,
    creations_carry_location_and_refusals_retry_after,
    idempotency_keys_answer_the_first_request_and_refuse_another,
    deleting_a_tenant_removes_everything_it_owns,
);

/// Rows of `tenant` in every table with a `tenant_id` column (found by
/// introspection, so a table added later is checked too), by table.
async fn rows_owned_by(db: &TestDb, tenant: &str) -> Vec<(String, u64)> {
    let tables = corral_tests::db_texts(
        db,
        "SELECT table_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND column_name = 'tenant_id' ORDER BY 1",
        "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND c.name = 'tenant_id' ORDER BY 1",
    )
    .await;
    assert!(tables.len() >= 12, "{tables:?}");
    let mut owned = Vec::new();
    for table in tables {
        let count = corral_tests::db_texts(
            db,
            &format!("SELECT count(*)::text FROM {table} WHERE tenant_id = '{tenant}'"),
            &format!("SELECT CAST(count(*) AS TEXT) FROM {table} WHERE tenant_id = '{tenant}'"),
        )
        .await;
        owned.push((table, count[0].parse().unwrap()));
    }
    owned
}

/// `DELETE /v1/tenants/{id}` (admin) leaves no row of the tenant in any
/// table, nor plugin bytes only it used, and leaves another tenant alone.
async fn deleting_a_tenant_removes_everything_it_owns(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "globex", json!({})).await;
    push(&app, &key, "echo").await;
    push(&app, &key, "markdown").await;
    push(&app, &other, "echo").await;
    let post = |uri: &str, body: Value, headers: &[(&str, &str)]| {
        let (app, uri, key) = (app.clone(), uri.to_string(), key.clone());
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let (status, _, body) = call(&app, Method::POST, &uri)
                .key(&key)
                .json(body)
                .headers(&headers)
                .exchange()
                .await;
            assert!(status.is_success(), "{uri}: {status} {body}");
            body
        }
    };
    // Everything a tenant can own: jobs (one with an attempt, one with an
    // idempotency key), a batch, a workflow and a run, a schedule, a secret.
    post(
        "/v1/jobs",
        json!({"plugin": "echo", "input": 1}),
        &[("Idempotency-Key", "k")],
    )
    .await;
    post(
        "/v1/jobs/batch",
        json!({"jobs": [{"plugin": "markdown", "input": "# hi"}]}),
        &[],
    )
    .await;
    let claimed = db
        .store
        .job_claim(&corral::store::ClaimRequest {
            host_id: "host-a".into(),
            now: chrono::Utc::now(),
            limit: 1,
            lease: std::time::Duration::from_secs(30),
            queues: None,
            tenants: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    db.store
        .job_finish(&[corral::model::Finish {
            workflow_run_id: None,
            progress: None,
            job_id: c.id,
            lease_token: c.lease_token,
            attempt: corral::model::Attempt {
                attempt: c.attempt,
                outcome: corral::model::OutcomeKind::Completed,
                message: None,
                started_at: chrono::Utc::now(),
                finished_at: chrono::Utc::now(),
                fuel_consumed: 1,
                peak_memory_bytes: 1,
                host_id: "host-a".into(),
                log: String::new(),
                log_dropped_bytes: 0,
                http: None,
            },
            transition: corral::model::Transition::Complete { result: "1".into() },
        }])
        .await
        .unwrap();
    let (status, _) = call(&app, Method::PUT, "/v1/workflows/pair").key(&key).json(json!({"steps": [{"name": "a", "plugin": "echo"}, {"name": "b", "plugin": "markdown", "depends_on": ["a"]}]})).send()
    .await;
    assert_eq!(status, StatusCode::CREATED);
    post(
        "/v1/workflows/pair/runs",
        json!({}),
        &[("Idempotency-Key", "r")],
    )
    .await;
    let (status, _) = call(&app, Method::PUT, "/v1/schedules/nightly")
        .key(&key)
        .json(json!({"cron": "0 3 * * *", "target": {"plugin": "echo"}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&app, Method::PUT, "/v1/secrets/TOKEN")
        .key(&key)
        .json(json!({"value": "s3cret"}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, globex_job) = call(&app, Method::POST, "/v1/jobs")
        .key(&other)
        .json(json!({"plugin": "echo", "input": 2}))
        .send()
        .await;
    let before = rows_owned_by(&db, "acme").await;
    for table in [
        "api_keys",
        "plugins",
        "jobs",
        "attempts",
        "workflows",
        "workflow_runs",
        "workflow_steps",
        "schedules",
        "secrets",
        "request_keys",
        "tenant_enqueue_rate",
    ] {
        let n = before.iter().find(|(t, _)| t == table).map(|(_, n)| *n);
        assert!(
            n.is_some_and(|n| n > 0),
            "acme owns rows in {table} before: {before:?}"
        );
    }
    let digest =
        |name: &str| corral::model::Digest::of(&corral_tests::plugin_bytes(name)).to_string();
    let blobs = || {
        corral_tests::db_texts(
            &db,
            "SELECT digest FROM plugin_blobs ORDER BY 1",
            "SELECT digest FROM plugin_blobs ORDER BY 1",
        )
    };
    assert!(blobs().await.contains(&digest("markdown")));

    // Only an admin deletes a tenant.
    let (status, _) = call(&app, Method::DELETE, "/v1/tenants/acme")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(&app, Method::DELETE, "/v1/tenants/acme")
        .key(ADMIN_TOKEN)
        .send()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &call(&app, Method::DELETE, "/v1/tenants/acme")
            .key(ADMIN_TOKEN)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, _) = call(&app, Method::GET, "/v1/jobs").key(&key).send().await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its keys stop working");

    let after = rows_owned_by(&db, "acme").await;
    assert!(after.iter().all(|(_, n)| *n == 0), "{after:?}");
    let (status, _) = call(&app, Method::GET, "/v1/tenants/acme")
        .key(ADMIN_TOKEN)
        .send()
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let blobs = blobs().await;
    assert!(
        !blobs.contains(&digest("markdown")),
        "bytes only acme used are gone"
    );
    assert!(blobs.contains(&digest("echo")), "bytes globex uses stay");
    let (status, job) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{}", globex_job["id"].as_str().unwrap()),
    )
    .key(&other)
    .send()
    .await;
    assert_eq!(
        (status, job["state"].as_str()),
        (StatusCode::OK, Some("available"))
    );

    // The id can be used again, starting empty.
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let (_, jobs) = call(&app, Method::GET, "/v1/jobs").key(&key).send().await;
    assert_eq!(jobs["jobs"], json!([]));
}

/// An `Idempotency-Key` makes a retry of a job, a batch or a run answer
/// the first (200, nothing new stored), whatever the order of the body's
/// fields; the same key on another body or route is 422 and stores nothing.
async fn idempotency_keys_answer_the_first_request_and_refuse_another(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "echo").await;
    let send = |uri: &str, idempotency: &str, body: Value| {
        let (app, uri, key, idempotency) = (
            app.clone(),
            uri.to_string(),
            key.clone(),
            idempotency.to_string(),
        );
        async move {
            let (status, _, body) = call(&app, Method::POST, &uri)
                .key(&key)
                .json(body)
                .headers(&[("Idempotency-Key", &idempotency)])
                .exchange()
                .await;
            (status, body)
        }
    };
    let reused = |answer: &(StatusCode, Value)| {
        assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.1);
        assert_eq!(
            answer.1["error"]["code"], "idempotency_key_reused",
            "{}",
            answer.1
        );
    };

    // One job: a retry (its fields in another order) is the first job.
    let first = send(
        "/v1/jobs",
        "job-1",
        json!({"plugin": "echo", "input": {"a": 1, "b": 2}}),
    )
    .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let retry = send(
        "/v1/jobs",
        "job-1",
        json!({"input": {"b": 2, "a": 1}, "plugin": "echo"}),
    )
    .await;
    assert_eq!((retry.0, &retry.1["id"]), (StatusCode::OK, &first.1["id"]));
    reused(
        &send(
            "/v1/jobs",
            "job-1",
            json!({"plugin": "echo", "input": {"a": 2}}),
        )
        .await,
    );
    reused(
        &send(
            "/v1/jobs/batch",
            "job-1",
            json!({"jobs": [{"plugin": "echo", "input": 1}]}),
        )
        .await,
    );
    assert_eq!(db.job_total("acme").await, 1);

    // A batch: a retry answers the same ids in order; another batch under
    // its key (one job more) is refused, not half-created.
    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"plugin": "echo", "input": i}))
        .collect();
    let batch = send("/v1/jobs/batch", "batch-1", json!({"jobs": jobs})).await;
    assert_eq!(batch.0, StatusCode::CREATED, "{}", batch.1);
    assert_eq!(batch.1["ids"].as_array().map(Vec::len), Some(3));
    let retry = send("/v1/jobs/batch", "batch-1", json!({"jobs": jobs})).await;
    assert_eq!(retry, (StatusCode::OK, batch.1.clone()));
    let mut more = jobs.clone();
    more.push(json!({"plugin": "echo", "input": 3}));
    reused(&send("/v1/jobs/batch", "batch-1", json!({"jobs": more})).await);
    reused(&send("/v1/jobs", "batch-1", json!({"plugin": "echo", "input": 0})).await);
    assert_eq!(db.job_total("acme").await, 4);

    // A workflow run: a retry is the first run; another input, or another
    // workflow, under its key is refused.
    for name in ["pair", "other"] {
        let (status, body) = call(&app, Method::PUT, &format!("/v1/workflows/{name}"))
            .key(&key)
            .json(json!({"steps": [{"name": "a", "plugin": "echo"}]}))
            .send()
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let run = send(
        "/v1/workflows/pair/runs",
        "run-1",
        json!({"input": {"n": 1}}),
    )
    .await;
    assert_eq!(run.0, StatusCode::CREATED, "{}", run.1);
    let retry = send(
        "/v1/workflows/pair/runs",
        "run-1",
        json!({"input": {"n": 1}}),
    )
    .await;
    assert_eq!((retry.0, &retry.1["id"]), (StatusCode::OK, &run.1["id"]));
    reused(
        &send(
            "/v1/workflows/pair/runs",
            "run-1",
            json!({"input": {"n": 2}}),
        )
        .await,
    );
    reused(
        &send(
            "/v1/workflows/other/runs",
            "run-1",
            json!({"input": {"n": 1}}),
        )
        .await,
    );
    let (_, runs) = call(&app, Method::GET, "/v1/workflow-runs")
        .key(&key)
        .send()
        .await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(db.job_total("acme").await, 5, "the run's one step");

    // Keys are per tenant: another tenant's same key is its own.
    let other = tenant_with_key(&app, "globex", json!({})).await;
    push(&app, &other, "echo").await;
    let (status, _, body) = call(&app, Method::POST, "/v1/jobs")
        .key(&other)
        .json(json!({"plugin": "echo", "input": 9}))
        .headers(&[("Idempotency-Key", "job-1")])
        .exchange()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(body["id"], first.1["id"]);

    // A key too long for the store is refused as a bad header.
    let long = "k".repeat(256);
    let (status, body) = send("/v1/jobs", &long, json!({"plugin": "echo", "input": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_header");
}

/// Every 201 names what it made in `Location` (a GET of it answers); a 200
/// that answers an existing resource has none; 429s carry `Retry-After`.
async fn creations_carry_location_and_refusals_retry_after(db: TestDb) {
    let app = app(&db);
    let location = |headers: &axum::http::HeaderMap| {
        headers
            .get("location")
            .map(|v| v.to_str().expect("ASCII").to_string())
    };
    let created = |answer: &(StatusCode, axum::http::HeaderMap, Value)| {
        assert_eq!(answer.0, StatusCode::CREATED, "{}", answer.2);
        location(&answer.1).expect("a 201 has Location")
    };
    let send = |method: Method, uri: &str, key: &str, body: Option<Value>| {
        let (app, uri, key) = (app.clone(), uri.to_string(), key.to_string());
        async move {
            call(&app, method, &uri)
                .key(&key)
                .json_opt(body)
                .exchange()
                .await
        }
    };
    let post = |uri: &str, key: &str, body: Option<Value>| send(Method::POST, uri, key, body);
    let put = |uri: &str, key: &str, body: Value| send(Method::PUT, uri, key, Some(body));

    let tenant = post(
        "/v1/tenants",
        ADMIN_TOKEN,
        Some(json!({"id": "acme", "quotas": {"max_queued_jobs": 3}})),
    )
    .await;
    assert_eq!(created(&tenant), "/v1/tenants/acme");
    let key = post("/v1/tenants/acme/keys", ADMIN_TOKEN, None).await;
    let key_id = key.2["key_id"].as_str().unwrap().to_string();
    assert_eq!(created(&key), format!("/v1/tenants/acme/keys/{key_id}"));
    let admin = post("/v1/admin-keys", ADMIN_TOKEN, None).await;
    assert_eq!(
        created(&admin),
        format!("/v1/admin-keys/{}", admin.2["key_id"].as_str().unwrap())
    );
    let key = key.2["key"].as_str().unwrap().to_string();
    let key = key.as_str();
    push(&app, key, "echo").await;

    let job = post("/v1/jobs", key, Some(json!({"plugin": "echo", "input": 1}))).await;
    let at = created(&job);
    assert_eq!(at, format!("/v1/jobs/{}", job.2["id"].as_str().unwrap()));
    let (status, _) = call(&app, Method::GET, &at).key(key).send().await;
    assert_eq!(status, StatusCode::OK);
    let replayed = post(&format!("{at}/replay"), key, None).await;
    assert_eq!(
        created(&replayed),
        format!("/v1/jobs/{}", replayed.2["id"].as_str().unwrap())
    );
    let batch = post(
        "/v1/jobs/batch",
        key,
        Some(json!({"jobs": [{"plugin": "echo", "input": 2}]})),
    )
    .await;
    assert_eq!(created(&batch), "/v1/jobs");

    // A fourth waiting job is over max_queued_jobs: 429 with Retry-After.
    let full = post("/v1/jobs", key, Some(json!({"plugin": "echo", "input": 3}))).await;
    assert_eq!(
        full.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the fourth waiting job is over max_queued_jobs"
    );
    let seconds: u64 = full.1["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(seconds, corral::http::quotas::QUEUE_FULL_RETRY_AFTER_SECS);

    let (status, _) = call(&app, Method::PATCH, "/v1/tenants/acme")
        .key(ADMIN_TOKEN)
        .json(json!({"quotas": {"max_queued_jobs": 100}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    // An Idempotency-Key seen before: 200, no Location.
    let again = || {
        call(&app, Method::POST, "/v1/jobs")
            .key(key)
            .json(json!({"plugin": "echo", "input": 3}))
            .headers(&[("idempotency-key", "k2")])
            .exchange()
    };
    let first = again().await;
    created(&first);
    let repeat = again().await;
    assert_eq!(repeat.0, StatusCode::OK);
    assert_eq!(location(&repeat.1), None);

    // The same plugin bytes again: 200 (the first push answered 201 at
    // /v1/plugins/echo/1, which `push` checks the status of).
    let (status, _) = upload(
        &app,
        key,
        "/v1/plugins/echo",
        corral_tests::plugin_bytes("echo"),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let steps = json!({"steps": [{"name": "a", "plugin": "echo"}]});
    let workflow = put("/v1/workflows/pair", key, steps.clone()).await;
    assert_eq!(created(&workflow), "/v1/workflows/pair");
    let same = put("/v1/workflows/pair", key, steps).await;
    assert_eq!((same.0, location(&same.1)), (StatusCode::OK, None));
    let run = post("/v1/workflows/pair/runs", key, Some(json!({}))).await;
    assert_eq!(
        created(&run),
        format!("/v1/workflow-runs/{}", run.2["id"].as_str().unwrap())
    );
    let schedule = put(
        "/v1/schedules/nightly",
        key,
        json!({"cron": "0 3 * * *", "target": {"plugin": "echo"}}),
    )
    .await;
    assert_eq!(created(&schedule), "/v1/schedules/nightly");
    let secret = put("/v1/secrets/TOKEN", key, json!({"value": "s3cret"})).await;
    assert_eq!(created(&secret), "/v1/secrets/TOKEN");
    let replaced = put("/v1/secrets/TOKEN", key, json!({"value": "other"})).await;
    assert_eq!((replaced.0, location(&replaced.1)), (StatusCode::OK, None));
}

async fn health_and_ready_need_no_key(db: TestDb) {
    let app = app(&db);
    assert_eq!(
        call(&app, Method::GET, "/health").send().await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        call(&app, Method::GET, "/ready").send().await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    assert_error(
        &call(&app, Method::GET, "/nope").send().await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&app, Method::DELETE, "/health").send().await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

async fn routes_need_a_known_key(db: TestDb) {
    let app = app(&db);
    assert_error(
        &call(&app, Method::GET, "/v1/tenants").send().await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let forged = format!("corral_{}_{}", "a".repeat(16), "b".repeat(64));
    for key in ["wrong", forged.as_str()] {
        assert_error(
            &call(&app, Method::GET, "/v1/tenants").key(key).send().await,
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
        &call(&app, Method::GET, &job).key(ADMIN_TOKEN).send().await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    call(&app, Method::POST, "/v1/tenants")
        .key(ADMIN_TOKEN)
        .json(json!({"id": "acme"}))
        .send()
        .await;
    let (_, key) = call(&app, Method::POST, "/v1/tenants/acme/keys")
        .key(ADMIN_TOKEN)
        .send()
        .await;
    let tenant_key = key["key"].as_str().unwrap();
    assert_error(
        &call(&app, Method::GET, "/v1/tenants")
            .key(tenant_key)
            .send()
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn tenants_and_keys_are_managed_with_the_admin_key(db: TestDb) {
    let app = app(&db);
    let (status, tenant) = call(&app, Method::POST, "/v1/tenants")
        .key(ADMIN_TOKEN)
        .json(json!({"id": "acme", "name": "Acme Corp", "quotas": {"max_concurrency": 4}}))
        .send()
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
        &call(&app, Method::POST, "/v1/tenants")
            .key(ADMIN_TOKEN)
            .json(json!({"id": "acme"}))
            .send()
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let (status, list) = call(&app, Method::GET, "/v1/tenants")
        .key(ADMIN_TOKEN)
        .send()
        .await;
    assert_eq!(
        (status, list["tenants"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, updated) = call(&app, Method::PATCH, "/v1/tenants/acme")
        .key(ADMIN_TOKEN)
        .json(json!({"quotas": {"enqueue_per_minute": 60}}))
        .send()
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
        &call(&app, Method::GET, "/v1/tenants/ghost")
            .key(ADMIN_TOKEN)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let (status, key) = call(&app, Method::POST, "/v1/tenants/acme/keys")
        .key(ADMIN_TOKEN)
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = key["key"].as_str().unwrap().to_string();
    let key_id = key["key_id"].as_str().unwrap().to_string();
    let stored = db.store.api_key_get(&key_id).await.unwrap().unwrap().key;
    assert!(
        !stored.secret_hash.is_empty() && !token.contains(&stored.secret_hash),
        "only the hash is stored"
    );
    let job = format!("/v1/jobs/{}", uuid::Uuid::now_v7());
    assert_error(
        &call(&app, Method::GET, &job).key(&token).send().await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/v1/tenants/acme/keys/{key_id}"),
    )
    .key(ADMIN_TOKEN)
    .send()
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &call(&app, Method::GET, &job).key(&token).send().await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &call(
            &app,
            Method::DELETE,
            &format!("/v1/tenants/acme/keys/{key_id}"),
        )
        .key(ADMIN_TOKEN)
        .send()
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&app, Method::POST, "/v1/tenants/ghost/keys")
            .key(ADMIN_TOKEN)
            .send()
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
            &call(&app, Method::POST, "/v1/tenants")
                .key(ADMIN_TOKEN)
                .json(body)
                .send()
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

    call(&app, Method::POST, "/v1/tenants")
        .key(ADMIN_TOKEN)
        .json(json!({"id": "acme"}))
        .send()
        .await;
    assert_error(
        &call(&app, Method::PATCH, "/v1/tenants/acme")
            .key(ADMIN_TOKEN)
            .json(json!({"quotas": {"max_memory_mb": 0}}))
            .send()
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
    let mut keys = Vec::new();
    for tenant in ["acme", "other"] {
        keys.push(tenant_with_key(&app, tenant, json!({})).await);
        db.plugin(tenant, "echo", b"component", Limits::default(), 3)
            .await;
    }
    let (acme_key, other_key) = (keys[0].as_str(), keys[1].as_str());
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

    let (status, job) = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .key(acme_key)
        .send()
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
    let theirs = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .key(other_key)
        .send()
        .await;
    let missing = call(
        &app,
        Method::GET,
        &format!("/v1/jobs/{}", uuid::Uuid::now_v7()),
    )
    .key(other_key)
    .send()
    .await;
    assert_error(&theirs, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(theirs.0, missing.0);
    assert_error(
        &call(&app, Method::GET, "/v1/jobs/not-a-uuid")
            .key(acme_key)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn jobs_are_created_singly_and_in_batches(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({"max_timeout_ms": 60000})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 3)
        .await;

    let body = json!({"plugin": "echo", "input": {"b": [1, 2], "a": "x"}, "priority": 5, "timeout_ms": 1000});
    let (status, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(body.clone())
        .send()
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
    let (first_status, first) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(body.clone())
        .headers(&headers)
        .send()
        .await;
    let (again_status, again) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(body.clone())
        .headers(&headers)
        .send()
        .await;
    assert_eq!(
        (first_status, again_status),
        (StatusCode::CREATED, StatusCode::OK)
    );
    assert_eq!(first["id"], again["id"]);
    assert_eq!(db.job_total("acme").await, 2);

    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"plugin": "echo", "input": i}))
        .collect();
    let (status, batch) = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&key)
        .json(json!({"jobs": jobs}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{batch}");
    let ids = batch["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let (_, job) = call(
            &app,
            Method::GET,
            &format!("/v1/jobs/{}", id.as_str().unwrap()),
        )
        .key(&key)
        .send()
        .await;
        assert_eq!(job["input"], json!(i), "ids come back in order");
    }
    assert_eq!(db.job_total("acme").await, 5);

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
        // i32::MIN has no absolute value: this once panicked (found by schemathesis).
        (
            json!({"plugin": "echo", "input": 1, "priority": i32::MIN}),
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
            &call(&app, Method::POST, "/v1/jobs")
                .key(&key)
                .json(body)
                .send()
                .await,
            status,
            code,
        );
    }
    let mixed = json!({"jobs": [{"plugin": "echo", "input": 1}, {"plugin": "nope", "input": 2}]});
    let refused = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&key)
        .json(mixed)
        .send()
        .await;
    assert_error(&refused, StatusCode::UNPROCESSABLE_ENTITY, "unknown_plugin");
    assert_error(
        &call(&app, Method::POST, "/v1/jobs/batch")
            .key(&key)
            .json(json!({"jobs": []}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
    assert_eq!(
        db.job_total("acme").await,
        5,
        "nothing stored by a refused request"
    );
    assert_error(
        &call(&app, Method::POST, "/v1/jobs")
            .json(json!({"plugin": "echo", "input": 1}))
            .send()
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
        keys.push(tenant_with_key(&app, tenant, json!({})).await);
        db.plugin(tenant, "echo", b"component", Limits::default(), 3)
            .await;
    }
    let (acme, other) = (keys[0].as_str(), keys[1].as_str());
    let (_, waiting) = call(&app, Method::POST, "/v1/jobs")
        .key(acme)
        .json(json!({"plugin": "echo", "input": 1}))
        .send()
        .await;
    let waiting = waiting["id"].as_str().unwrap().to_string();

    assert_error(
        &call(&app, Method::POST, &format!("/v1/jobs/{waiting}/cancel"))
            .key(other)
            .send()
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
    let (status, job) = call(&app, Method::POST, &format!("/v1/jobs/{waiting}/cancel"))
        .key(acme)
        .send()
        .await;
    assert_eq!(
        (status, job["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    assert_error(
        &call(&app, Method::POST, &format!("/v1/jobs/{waiting}/cancel"))
            .key(acme)
            .send()
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // An attempt recorded by a worker shows in the timeline and the logs.
    let (_, ran) = call(&app, Method::POST, "/v1/jobs")
        .key(acme)
        .json(json!({"plugin": "echo", "input": 2}))
        .send()
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
            tenants: None,
        })
        .await
        .unwrap()
        .remove(0);
    let now = chrono::Utc::now();
    db.store
        .job_finish(&[Finish {
            workflow_run_id: None,
            progress: None,
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
                http: None,
            },
            transition: Transition::Retry {
                run_at: now,
                error: "try again".into(),
            },
        }])
        .await
        .unwrap();
    let (status, attempts) = call(&app, Method::GET, &format!("/v1/jobs/{ran}/attempts"))
        .key(acme)
        .send()
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
    let (_, logs) = call(&app, Method::GET, &format!("/v1/jobs/{ran}/logs"))
        .key(acme)
        .send()
        .await;
    assert_eq!(logs["logs"][0]["log"], "[info] hello\n");
    assert_eq!(logs["logs"][0]["truncated"], false);
    for path in ["attempts", "logs"] {
        assert_error(
            &call(&app, Method::GET, &format!("/v1/jobs/{ran}/{path}"))
                .key(other)
                .send()
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

async fn plugins_are_uploaded_and_versioned(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let echo = corral_tests::plugin_bytes("echo");
    let (status, v1) = upload(
        &app,
        &key,
        "/v1/plugins/echo?fuel=5000000&memory_mb=32&max_attempts=5",
        echo.clone(),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(
        (
            v1["name"].as_str(),
            v1["version"].as_u64(),
            v1["size"].as_u64()
        ),
        (Some("echo"), Some(1), Some(echo.len() as u64))
    );
    assert_eq!(v1["digest"], corral::model::Digest::of(&echo).to_string());
    assert_eq!(
        (
            v1["limits"]["fuel"].as_u64(),
            v1["limits"]["memory_bytes"].as_u64(),
            v1["max_attempts"].as_u64()
        ),
        (Some(5_000_000), Some(32 << 20), Some(5))
    );
    let (status, again) = upload(
        &app,
        &key,
        "/v1/plugins/echo",
        echo.clone(),
        "application/wasm",
    )
    .await;
    assert_eq!(
        (status, again["version"].as_u64()),
        (StatusCode::OK, Some(1)),
        "same bytes, same version"
    );
    let (status, v2) = upload(
        &app,
        &key,
        "/v1/plugins/echo",
        corral_tests::plugin_bytes("flaky"),
        "application/octet-stream",
    )
    .await;
    assert_eq!(
        (status, v2["version"].as_u64()),
        (StatusCode::CREATED, Some(2))
    );

    let (_, list) = call(&app, Method::GET, "/v1/plugins")
        .key(&key)
        .send()
        .await;
    assert_eq!(list["plugins"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["plugins"][0]["version"], 2);
    let (_, versions) = call(&app, Method::GET, "/v1/plugins/echo")
        .key(&key)
        .send()
        .await;
    let numbers: Vec<_> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 1]);
    let (status, one) = call(&app, Method::GET, "/v1/plugins/echo/1")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        (status, one["digest"].clone()),
        (StatusCode::OK, v1["digest"].clone())
    );
    for missing in [
        "/v1/plugins/nope",
        "/v1/plugins/echo/9",
        "/v1/plugins/echo/x",
    ] {
        assert_error(
            &call(&app, Method::GET, missing).key(&key).send().await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // Another tenant sees none of it.
    let other = tenant_with_key(&app, "other", json!({})).await;
    let (_, list) = call(&app, Method::GET, "/v1/plugins")
        .key(&other)
        .send()
        .await;
    assert_eq!(list["plugins"], json!([]));
    assert_error(
        &call(&app, Method::GET, "/v1/plugins/echo")
            .key(&other)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn bad_uploads_are_refused_and_store_nothing(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(
        &app,
        "acme",
        json!({"max_plugin_bytes": 1_000_000, "max_fuel_per_attempt": 1000, "max_memory_mb": 16}),
    )
    .await;
    let echo = corral_tests::plugin_bytes("echo");
    // Without limits asked for, the defaults are lowered to the quotas.
    let (status, fitted) = upload(
        &app,
        &key,
        "/v1/plugins/fitted",
        echo.clone(),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{fitted}");
    assert_eq!(
        (
            fitted["limits"]["fuel"].as_u64(),
            fitted["limits"]["memory_bytes"].as_u64()
        ),
        (Some(1000), Some(16 << 20))
    );
    let core = b"\0asm\x01\0\0\0".to_vec();
    // (path, body, content type, status, error code, what the message says)
    type Refusal<'a> = (&'a str, Vec<u8>, &'a str, StatusCode, &'a str, &'a str);
    let cases: Vec<Refusal> = vec![
        (
            "/v1/plugins/x?fuel=10",
            vec![7u8; 3000],
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_component",
            "not a WebAssembly binary",
        ),
        (
            "/v1/plugins/x?fuel=10",
            core,
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_component",
            "core WebAssembly module",
        ),
        (
            "/v1/plugins/x?fuel=10",
            echo[..echo.len() / 2].to_vec(),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_component",
            "invalid component",
        ),
        (
            "/v1/plugins/x?fuel=10",
            corral_tests::plugin_bytes("wrong-world"),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_component",
            "missing export",
        ),
        (
            "/v1/plugins/x?fuel=10",
            corral_tests::plugin_bytes("unknown-import"),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_component",
            "test:unknown/vault",
        ),
        (
            "/v1/plugins/x?fuel=10",
            vec![0u8; 1_000_001],
            "application/wasm",
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "1000000 bytes",
        ),
        (
            "/v1/plugins/x?fuel=10",
            echo.clone(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            "application/wasm",
        ),
        (
            "/v1/plugins/x?fuel=1001",
            echo.clone(),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_limit",
            "max_fuel_per_attempt",
        ),
        (
            "/v1/plugins/x?fuel=10&memory_mb=17",
            echo.clone(),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_limit",
            "max_memory_mb",
        ),
        (
            "/v1/plugins/x?fuel=10&max_attempts=0",
            echo.clone(),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "max_attempts",
        ),
        (
            "/v1/plugins/Bad%20Name?fuel=10",
            echo.clone(),
            "application/wasm",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plugin_name",
            "Bad Name",
        ),
        (
            "/v1/plugins/x?colour=red",
            echo.clone(),
            "application/wasm",
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "colour",
        ),
    ];
    for (path, bytes, content_type, status, code, says) in cases {
        let response = upload(&app, &key, path, bytes, content_type).await;
        assert_eq!(response.0, status, "{path} {content_type}: {}", response.1);
        if !code.is_empty() {
            assert_error(&response, status, code);
            let message = response.1["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(says), "{path}: {message}");
        }
    }
    let stored: Vec<_> = db
        .store
        .plugin_list("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(stored, vec!["fitted"], "no refused upload stored anything");
}

async fn a_job_runs_end_to_end_through_the_api(db: TestDb) {
    use corral::worker::{Worker, WorkerConfig};
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let (status, _) = upload(
        &app,
        &key,
        "/v1/plugins/markdown",
        corral_tests::plugin_bytes("markdown"),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // A setting the guest reads with host.config; its value is never shown again.
    let (status, patched) = call(&app, Method::PATCH, "/v1/plugins/markdown")
        .key(&key)
        .json(json!({"config": {"wrapper_class": "doc"}, "limits": {"max_attempts": 2}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (
            patched["config_keys"].clone(),
            patched["max_attempts"].as_u64()
        ),
        (json!(["wrapper_class"]), Some(2))
    );
    assert!(
        !patched.to_string().contains("\"doc\""),
        "config values are write-only"
    );
    let (status, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "markdown", "input": {"markdown": "# Hi"}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id: uuid::Uuid = job["id"].as_str().unwrap().parse().unwrap();

    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = Worker::new(
        db.store.clone(),
        Arc::clone(corral_tests::runtime_arc()),
        WorkerConfig {
            host_id: "host-a".into(),
            ..WorkerConfig::default()
        },
    );
    let running = tokio::spawn(worker.run(shutdown.clone()));
    db.wait_for("acme", id, std::time::Duration::from_secs(120), |s| {
        s.is_terminal()
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();

    let (_, job) = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        job["result"]["html"], "<div class=\"doc\">\n<h1>Hi</h1>\n</div>\n",
        "the guest read its config"
    );
    assert_eq!(job["max_attempts"], 2);
    // A new version keeps the config.
    let (status, v2) = upload(
        &app,
        &key,
        "/v1/plugins/markdown",
        corral_tests::plugin_bytes("echo"),
        "application/wasm",
    )
    .await;
    assert_eq!(
        (status, v2["config_keys"].clone()),
        (StatusCode::CREATED, json!(["wrapper_class"]))
    );
    let (_, attempts) = call(&app, Method::GET, &format!("/v1/jobs/{id}/attempts"))
        .key(&key)
        .send()
        .await;
    assert_eq!(attempts["attempts"][0]["outcome"], "completed");
    let (_, logs) = call(&app, Method::GET, &format!("/v1/jobs/{id}/logs"))
        .key(&key)
        .send()
        .await;
    assert!(
        logs["logs"][0]["log"]
            .as_str()
            .unwrap()
            .contains("[info] rendered"),
        "{logs}"
    );
}

async fn bad_plugin_updates_are_refused_and_change_nothing(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({"max_memory_mb": 64})).await;
    push(&app, &key, "echo").await;
    let before = db
        .store
        .plugin_get("acme", "echo", None)
        .await
        .unwrap()
        .unwrap();
    let long_key = "k".repeat(300);
    let refusals = [
        (
            json!({"limits": {"memory_mb": 65}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_limit",
        ),
        (
            json!({"limits": {"max_attempts": 0}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            json!({"config": {"a": "x".repeat(70_000)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
        ),
        (
            json!({"config": {long_key: "v"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
        ),
        (
            json!({"config": {"a": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in refusals {
        assert_error(
            &call(&app, Method::PATCH, "/v1/plugins/echo")
                .key(&key)
                .json(body)
                .send()
                .await,
            status,
            code,
        );
    }
    assert_error(
        &call(&app, Method::PATCH, "/v1/plugins/nope")
            .key(&key)
            .json(json!({}))
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        db.store
            .plugin_get("acme", "echo", None)
            .await
            .unwrap()
            .unwrap(),
        before,
        "unchanged"
    );
}

async fn jobs_are_listed_newest_first_with_filters_and_cursors(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    for tenant in ["acme", "other"] {
        db.plugin(tenant, "echo", b"component", Limits::default(), 3)
            .await;
        db.plugin(tenant, "markdown", b"component 2", Limits::default(), 3)
            .await;
    }
    let mut created = Vec::new();
    for i in 0..7 {
        let plugin = if i % 2 == 0 { "echo" } else { "markdown" };
        let (_, job) = call(&app, Method::POST, "/v1/jobs").key(&key).json(json!({"plugin": plugin, "input": i, "queue": if i < 5 { "default" } else { "bulk" }})).send().await;
        created.push(job["id"].as_str().unwrap().to_string());
    }
    call(&app, Method::POST, "/v1/jobs")
        .key(&other)
        .json(json!({"plugin": "echo", "input": 99}))
        .send()
        .await;
    call(
        &app,
        Method::POST,
        &format!("/v1/jobs/{}/cancel", created[0]),
    )
    .key(&key)
    .send()
    .await;

    // Pages of 3, newest first, until no cursor: every job once, none of the other tenant's.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/v1/jobs?limit=3&cursor={c}"),
            None => "/v1/jobs?limit=3".to_string(),
        };
        let (status, page) = call(&app, Method::GET, &uri).key(&key).send().await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let ids = |page: &Value| page["jobs"].as_array().unwrap().len();
    let (_, cancelled) = call(&app, Method::GET, "/v1/jobs?state=cancelled")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        (ids(&cancelled), cancelled["jobs"][0]["id"].as_str()),
        (1, Some(created[0].as_str()))
    );
    let (_, markdown) = call(&app, Method::GET, "/v1/jobs?plugin=markdown")
        .key(&key)
        .send()
        .await;
    assert_eq!(ids(&markdown), 3);
    let (_, bulk) = call(&app, Method::GET, "/v1/jobs?queue=bulk&plugin=echo")
        .key(&key)
        .send()
        .await;
    assert_eq!(ids(&bulk), 1);
    for bad in [
        "/v1/jobs?state=sleeping",
        "/v1/jobs?limit=0",
        "/v1/jobs?limit=501",
        "/v1/jobs?cursor=xyz",
        "/v1/jobs?colour=red",
    ] {
        assert_error(
            &call(&app, Method::GET, bad).key(&key).send().await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
    }
}

async fn a_job_is_replayed_as_a_new_linked_job(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 3)
        .await;
    let (_, original) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "echo", "input": {"x": 1}, "priority": 7, "queue": "bulk"}))
        .send()
        .await;
    // A newer version of the plugin does not change what a replay runs.
    db.plugin("acme", "echo", b"component v2", Limits::default(), 3)
        .await;
    let id = original["id"].as_str().unwrap();
    let (status, replay) = call(&app, Method::POST, &format!("/v1/jobs/{id}/replay"))
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{replay}");
    assert_ne!(replay["id"], original["id"]);
    assert_eq!(replay["replay_of"].as_str(), Some(id));
    for field in [
        "input",
        "priority",
        "queue",
        "version",
        "digest",
        "max_attempts",
    ] {
        assert_eq!(replay[field], original[field], "{field}");
    }
    assert_eq!(replay["state"], "available");
    assert_error(
        &call(&app, Method::POST, &format!("/v1/jobs/{id}/replay"))
            .key(&other)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(db.job_total("acme").await, 2);
}

async fn a_client_follows_a_job_with_server_sent_events(db: TestDb) {
    use corral::worker::{Worker, WorkerConfig};
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "echo").await;
    let (_, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "echo", "input": 1}))
        .send()
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let mut events = SseReader::open(&app, &key, &format!("/v1/jobs/{id}/events")).await;

    // The worker starts only once the stream is open: it must show every step.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut worker = None;
    let mut states = Vec::new();
    let patience = std::time::Duration::from_secs(120);
    while states.last().map(String::as_str) != Some("completed") {
        let (event, data) = events
            .next(patience)
            .await
            .expect("the stream goes on until the job finishes");
        assert_eq!(event, "state");
        assert_eq!(data["id"], id.as_str(), "a state event carries the job");
        states.push(data["state"].as_str().unwrap().to_string());
        if worker.is_none() {
            let w = Worker::new(
                db.store.clone(),
                Arc::clone(corral_tests::runtime_arc()),
                WorkerConfig {
                    host_id: "host-a".into(),
                    ..WorkerConfig::default()
                },
            );
            worker = Some(tokio::spawn(w.run(shutdown.clone())));
        }
    }
    assert_eq!(states, vec!["available", "running", "completed"]);
    assert!(
        events.next(patience).await.is_none(),
        "ends after a terminal state"
    );
    shutdown.cancel();
    worker.unwrap().await.unwrap();
    assert_error(
        &call(
            &app,
            Method::GET,
            &format!("/v1/jobs/{}/events", uuid::Uuid::now_v7()),
        )
        .key(&key)
        .send()
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

async fn a_client_sees_progress_as_server_sent_events(db: TestDb) {
    use corral::worker::{Worker, WorkerConfig};
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    // `spin` reports progress (0, "spinning"), then computes until stopped:
    // with the tenant's whole fuel, since on the default fuel (about a
    // second of spinning) a loaded machine let it end `fuel_exhausted`
    // before the progress was seen, and the cancel then got 409.
    let path = format!(
        "/v1/plugins/spin?timeout_ms=600000&fuel={}",
        corral::model::DEFAULT_QUOTAS.max_fuel_per_attempt
    );
    upload(
        &app,
        &key,
        &path,
        corral_tests::plugin_bytes("spin"),
        "application/wasm",
    )
    .await;
    let (_, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "spin", "input": null, "max_attempts": 1}))
        .send()
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["progress"], Value::Null);
    let mut events = SseReader::open(&app, &key, &format!("/v1/jobs/{id}/events")).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = Worker::new(
        db.store.clone(),
        Arc::clone(corral_tests::runtime_arc()),
        WorkerConfig {
            host_id: "host-a".into(),
            ..WorkerConfig::default()
        },
    );
    let worker = tokio::spawn(worker.run(shutdown.clone()));

    // The progress arrives as a `progress` event, or inside the `running`
    // state event when it was recorded before the stream read the job.
    let patience = std::time::Duration::from_secs(120);
    let expected = json!({"percent": 0, "message": "spinning"});
    let mut seen_progress = false;
    let mut cancelled = false;
    loop {
        let (event, data) = events.next(patience).await.expect("the stream goes on");
        match event.as_str() {
            "progress" => {
                assert_eq!(data, expected);
                seen_progress = true;
            }
            "state" => {
                assert_eq!(data["id"], id.as_str(), "a state event carries the job");
                if data["progress"] == expected {
                    seen_progress = true;
                }
                if data["state"] == "cancelled" {
                    break;
                }
            }
            other => panic!("unexpected event {other}"),
        }
        if seen_progress && !cancelled {
            let (status, _) = call(&app, Method::POST, &format!("/v1/jobs/{id}/cancel"))
                .key(&key)
                .send()
                .await;
            assert_eq!(status, StatusCode::OK);
            cancelled = true;
        }
    }
    assert!(seen_progress);
    let (_, job) = call(&app, Method::GET, &format!("/v1/jobs/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(
        job["progress"], expected,
        "the last progress is kept: {job}"
    );
    shutdown.cancel();
    worker.await.unwrap();
}

async fn plugin_versions_are_deleted_unless_jobs_need_them(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    let echo = corral_tests::plugin_bytes("echo");
    let markdown = corral_tests::plugin_bytes("markdown");
    assert_eq!(
        upload(
            &app,
            &key,
            "/v1/plugins/tool",
            echo.clone(),
            "application/wasm"
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        upload(
            &app,
            &key,
            "/v1/plugins/tool",
            markdown.clone(),
            "application/wasm"
        )
        .await
        .0,
        StatusCode::CREATED
    );
    // A job pinned to version 2, waiting (no worker runs here).
    let (_, job) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "tool", "version": 2, "input": {}}))
        .send()
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();

    let delete = |key: Option<String>, path: &'static str| {
        let app = app.clone();
        async move {
            call(&app, Method::DELETE, path)
                .key_opt(key.as_deref())
                .send()
                .await
        }
    };
    assert_error(
        &delete(None, "/v1/plugins/tool/2").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &delete(Some(other.clone()), "/v1/plugins/tool/2").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &delete(Some(key.clone()), "/v1/plugins/tool/9").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &delete(Some(key.clone()), "/v1/plugins/tool/two").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let refused = delete(Some(key.clone()), "/v1/plugins/tool/2").await;
    assert_error(&refused, StatusCode::CONFLICT, "conflict");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 unfinished job"),
        "{}",
        refused.1
    );
    let (_, versions) = call(&app, Method::GET, "/v1/plugins/tool")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        2,
        "nothing changed"
    );

    // Once the job is finished (cancelled), the version can go.
    call(&app, Method::POST, &format!("/v1/jobs/{job_id}/cancel"))
        .key(&key)
        .send()
        .await;
    let (status, body) = delete(Some(key.clone()), "/v1/plugins/tool/2").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_error(
        &delete(Some(key.clone()), "/v1/plugins/tool/2").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&app, Method::GET, "/v1/plugins/tool/2")
            .key(&key)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, versions) = call(&app, Method::GET, "/v1/plugins/tool")
        .key(&key)
        .send()
        .await;
    let numbers: Vec<u64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1]);
    let (_, list) = call(&app, Method::GET, "/v1/plugins")
        .key(&key)
        .send()
        .await;
    assert_eq!(list["plugins"][0]["version"], 1, "latest is now 1: {list}");
    // The finished job still names its version.
    let (_, job) = call(&app, Method::GET, &format!("/v1/jobs/{job_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(job["version"], 2);
    // The deleted version cannot be enqueued; "latest" resolves to 1.
    assert_error(
        &call(&app, Method::POST, "/v1/jobs")
            .key(&key)
            .json(json!({"plugin": "tool", "version": 2, "input": {}}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_plugin",
    );
    assert_error(
        &call(&app, Method::POST, &format!("/v1/jobs/{job_id}/replay"))
            .key(&key)
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_plugin",
    );
    let (_, latest) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(json!({"plugin": "tool", "input": {}}))
        .send()
        .await;
    assert_eq!(latest["version"], 1);
    // Its number is not reused: the same bytes again are version 3.
    let (status, again) =
        upload(&app, &key, "/v1/plugins/tool", markdown, "application/wasm").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["version"], 3);
}

async fn the_queued_jobs_quota_answers_429_and_stores_nothing(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({"max_queued_jobs": 3})).await;
    push(&app, &key, "echo").await;
    let job = json!({"plugin": "echo", "input": 1});
    let (status, _) = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&key)
        .json(json!({"jobs": [job, job]}))
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let refused = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&key)
        .json(json!({"jobs": [job, job]}))
        .send()
        .await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_queued_jobs is 3"),
        "{}",
        refused.1
    );
    assert_eq!(db.job_total("acme").await, 2);
    let (status, _) = call(&app, Method::POST, "/v1/jobs")
        .key(&key)
        .json(job.clone())
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "the third fits");
    assert_error(
        &call(&app, Method::POST, "/v1/jobs")
            .key(&key)
            .json(job.clone())
            .send()
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "queue_full",
    );
    assert_eq!(db.job_total("acme").await, 3);
}

async fn the_enqueue_rate_quota_answers_429_with_retry_after(db: TestDb) {
    use chrono::Timelike;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({"enqueue_per_minute": 3})).await;
    push(&app, &key, "echo").await;
    let job = json!({"plugin": "echo", "input": 1});
    // A batch over the rate can never pass.
    let too_big = call(&app, Method::POST, "/v1/jobs/batch")
        .key(&key)
        .json(json!({"jobs": [job, job, job, job]}))
        .send()
        .await;
    assert_error(&too_big, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(db.job_total("acme").await, 0);
    // A refused enqueue gives its share back: an unknown plugin uses none.
    assert_error(
        &call(&app, Method::POST, "/v1/jobs")
            .key(&key)
            .json(json!({"plugin": "nope", "input": 1}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_plugin",
    );
    // The window is the minute: should one end mid-test, try again in the next.
    for _ in 0..3 {
        let minute = chrono::Utc::now().minute();
        let before = db.job_total("acme").await;
        let mut created = 0;
        let mut refusal = None;
        for _ in 0..4 {
            let request = Request::builder()
                .method(Method::POST)
                .uri("/v1/jobs")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(Body::from(job.to_string()))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            if response.status() == StatusCode::CREATED {
                created += 1;
            } else {
                refusal = Some(response);
                break;
            }
        }
        if chrono::Utc::now().minute() != minute {
            continue;
        }
        let response = refusal.expect("the fourth job of the minute is refused");
        assert_eq!(created, 3 - before.min(3));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(db.job_total("acme").await, before + created);
        return;
    }
    panic!("three minute boundaries in a row");
}

async fn the_openapi_document_and_offline_docs_are_served(db: TestDb) {
    let app = app(&db);
    let (status, doc) = call(&app, Method::GET, "/openapi.json").send().await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/v1/tenants", "post"),
        ("/v1/tenants", "get"),
        ("/v1/tenants/{id}", "get"),
        ("/v1/tenants/{id}", "patch"),
        ("/v1/tenants/{id}/keys", "post"),
        ("/v1/tenants/{id}/keys/{key_id}", "delete"),
        ("/v1/plugins", "get"),
        ("/v1/plugins/{name}", "post"),
        ("/v1/plugins/{name}", "get"),
        ("/v1/plugins/{name}", "patch"),
        ("/v1/plugins/{name}/{version}", "get"),
        ("/v1/plugins/{name}/{version}", "delete"),
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/batch", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}/cancel", "post"),
        ("/v1/jobs/{id}/replay", "post"),
        ("/v1/jobs/{id}/attempts", "get"),
        ("/v1/jobs/{id}/logs", "get"),
        ("/v1/jobs/{id}/events", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is documented"
        );
    }
    assert!(doc["components"]["schemas"]["Job"].is_object());
    // Client generators need every operation id to be unique.
    let ids: Vec<&str> = paths
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    // The same document from the binary.
    let printed = std::process::Command::new(corral_tests::corral_bin())
        .arg("openapi")
        .output()
        .unwrap();
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).unwrap();
    assert_eq!(printed, doc);

    // /docs works offline: the page and its assets come from the binary.
    let fetch = |uri: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let (status, page) = fetch("/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no asset from the network: {page}"
    );
    let (status, bundle) = fetch("/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(bundle.len() > 100_000);
    let (status, init) = fetch("/docs/swagger-initializer.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(init.contains("/openapi.json"), "{init}");
}
