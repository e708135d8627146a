//! The workflow routes through `router()` with `oneshot`, on both backends:
//! definitions and their refusals (nothing stored), runs moved forward by
//! claiming and finishing their jobs through the store as a worker would,
//! listings, the diagram, cancellation, and tenant scoping.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use corral::model::ClaimedJob;
use corral::store::ClaimRequest;
use corral_tests::api::{SseReader, app, assert_error, call, push, tenant_with_key};
use corral_tests::db::TestDb;
use serde_json::{Value, json};

corral_tests::on_both_backends!(
    definitions_are_versioned_and_read_back,
    bad_definitions_are_refused_by_name_and_store_nothing,
    a_run_is_started_followed_and_drawn,
    runs_are_listed_newest_first_with_filters_and_cursors,
    a_run_is_cancelled_once,
    a_runs_event_stream_follows_every_change_until_it_ends,
    another_tenants_workflows_and_runs_are_not_found,
);

fn diamond() -> Value {
    json!({"steps": [
        {"name": "a", "plugin": "echo"},
        {"name": "b", "plugin": "echo", "depends_on": ["a"]},
        {"name": "c", "plugin": "echo", "depends_on": ["a"], "on_failure": "continue"},
        {"name": "d", "plugin": "echo", "depends_on": ["b", "c"]},
    ]})
}

/// Push `echo`, define `diamond` and start a run of it with this request
/// body: the run as created.
async fn start_diamond(app: &axum::Router, key: &str, body: Value) -> Value {
    push(app, key, "echo").await;
    call(app, Method::PUT, "/v1/workflows/diamond")
        .key(key)
        .json(diamond())
        .send()
        .await;
    let (status, run) = call(app, Method::POST, "/v1/workflows/diamond/runs")
        .key(key)
        .json(body)
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run
}

/// Claim every job that is due and complete it with its input as result.
async fn complete_due_jobs(db: &TestDb) -> usize {
    let jobs: Vec<ClaimedJob> = db
        .store
        .job_claim(&ClaimRequest {
            host_id: "test".into(),
            now: chrono::Utc::now(),
            limit: 100,
            lease: Duration::from_secs(30),
            queues: None,
            tenants: None,
        })
        .await
        .unwrap();
    let now = chrono::Utc::now();
    // Each job completes with its input as its result (what `echo` does).
    let finishes: Vec<_> = jobs
        .iter()
        .map(|job| corral_tests::finish_of(job, Ok(job.input.clone()), now))
        .collect();
    db.store.job_finish(&finishes).await.unwrap();
    jobs.len()
}

async fn definitions_are_versioned_and_read_back(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "echo").await;
    let (status, v1) = call(&app, Method::PUT, "/v1/workflows/diamond")
        .key(&key)
        .json(diamond())
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["name"], "diamond");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["steps"][2]["on_failure"], "continue");
    assert_eq!(v1["steps"][0]["on_failure"], "halt", "defaults are shown");
    let (status, again) = call(&app, Method::PUT, "/v1/workflows/diamond")
        .key(&key)
        .json(diamond())
        .send()
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same definition is not a new version"
    );
    assert_eq!(again, v1);
    let changed = json!({"steps": [{"name": "only", "plugin": "echo"}]});
    let (status, v2) = call(&app, Method::PUT, "/v1/workflows/diamond")
        .key(&key)
        .json(changed)
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v2["version"], 2);
    let (status, latest) = call(&app, Method::GET, "/v1/workflows/diamond")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        (status, latest["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (status, first) = call(&app, Method::GET, "/v1/workflows/diamond?version=1")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first, v1);
    assert_error(
        &call(&app, Method::GET, "/v1/workflows/diamond?version=9")
            .key(&key)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, list) = call(&app, Method::GET, "/v1/workflows")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["workflows"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["workflows"][0]["version"], 2);
}

async fn bad_definitions_are_refused_by_name_and_store_nothing(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "echo").await;
    let cases = [
        (
            json!({"steps": [
                {"name": "a", "plugin": "echo", "depends_on": ["c"]},
                {"name": "b", "plugin": "echo", "depends_on": ["a"]},
                {"name": "c", "plugin": "echo", "depends_on": ["b"]},
            ]}),
            "the steps form a cycle: a -> b -> c -> a",
        ),
        (
            json!({"steps": [{"name": "a", "plugin": "echo", "depends_on": ["ghost"]}]}),
            "step `a` depends on `ghost`, which is not a step of this workflow",
        ),
        (
            json!({"steps": [{"name": "a", "plugin": "echo"}, {"name": "a", "plugin": "echo"}]}),
            "step `a` is defined twice",
        ),
        (
            json!({"steps": [{"name": "a", "plugin": "nope"}]}),
            "step `a`: plugin `nope` does not exist",
        ),
        (
            json!({"steps": [{"name": "a", "plugin": "echo", "when": "input.["}]}),
            "step `a`: when: `input.[` is not a JMESPath expression",
        ),
    ];
    for (body, message) in cases {
        let refused = call(&app, Method::PUT, "/v1/workflows/bad")
            .key(&key)
            .json(body)
            .send()
            .await;
        assert_error(
            &refused,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
        );
        let got = refused.1["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{got}");
    }
    assert_error(
        &call(&app, Method::PUT, "/v1/workflows/bad")
            .key(&key)
            .json(json!({"steps": [{"name": "a", "plugin": "echo", "retries": 3}]}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &call(&app, Method::PUT, "/v1/workflows/Bad!")
            .key(&key)
            .json(diamond())
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_workflow",
    );
    assert_error(
        &call(&app, Method::GET, "/v1/workflows/bad")
            .key(&key)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, list) = call(&app, Method::GET, "/v1/workflows")
        .key(&key)
        .send()
        .await;
    assert_eq!(list["workflows"], json!([]), "nothing stored");
}

async fn a_run_is_started_followed_and_drawn(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let run = start_diamond(&app, &key, json!({"input": {"order": 7}})).await;
    assert_eq!(run["state"], "running");
    assert_eq!(run["input"], json!({"order": 7}));
    assert_eq!(run["steps"][0]["state"], "running");
    assert_eq!(run["steps"][1]["state"], "pending");
    let id = run["id"].as_str().unwrap().to_string();
    // The first step's job is an ordinary job, linked to its run.
    let job_id = run["steps"][0]["job_id"].as_str().unwrap();
    let (_, job) = call(&app, Method::GET, &format!("/v1/jobs/{job_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(job["workflow_run_id"], json!(id));
    assert_eq!(job["workflow_step"], "a");

    let (status, text) = call(
        &app,
        Method::GET,
        &format!("/v1/workflow-runs/{id}/diagram"),
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.starts_with("graph TD\n"), "{text}");
    assert!(text.contains("class s0 running"), "{text}");
    assert!(text.contains("class s1,s2,s3 pending"), "{text}");
    assert!(text.contains("s0 --> s1"), "{text}");

    while complete_due_jobs(&db).await > 0 {}
    let (status, done) = call(&app, Method::GET, &format!("/v1/workflow-runs/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["steps"][3]["result"], json!({"order": 7}));
    assert!(done["finished_at"].is_string());
    let (_, text) = call(
        &app,
        Method::GET,
        &format!("/v1/workflow-runs/{id}/diagram"),
    )
    .key(&key)
    .send()
    .await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("class s0,s1,s2,s3 completed"),
        "{text}"
    );

    // A run's input must be JSON the store accepts; an unknown workflow is 404.
    assert_error(
        &call(&app, Method::POST, "/v1/workflows/nope/runs")
            .key(&key)
            .json(json!({}))
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &call(&app, Method::POST, "/v1/workflows/diamond/runs")
            .key(&key)
            .json(json!({"input": "x\u{0}y"}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
    );
}

async fn runs_are_listed_newest_first_with_filters_and_cursors(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    push(&app, &key, "echo").await;
    call(&app, Method::PUT, "/v1/workflows/diamond")
        .key(&key)
        .json(diamond())
        .send()
        .await;
    call(&app, Method::PUT, "/v1/workflows/single")
        .key(&key)
        .json(json!({"steps": [{"name": "a", "plugin": "echo"}]}))
        .send()
        .await;
    let mut ids = Vec::new();
    for name in ["diamond", "single", "diamond", "diamond"] {
        let (_, run) = call(&app, Method::POST, &format!("/v1/workflows/{name}/runs"))
            .key(&key)
            .json(json!({}))
            .send()
            .await;
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    let (status, page) = call(
        &app,
        Method::GET,
        "/v1/workflow-runs?workflow=diamond&limit=2",
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(status, StatusCode::OK);
    let got: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[3].as_str(), ids[2].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = call(
        &app,
        Method::GET,
        &format!("/v1/workflow-runs?workflow=diamond&limit=2&cursor={cursor}"),
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(next["runs"][0]["id"], json!(ids[0]));
    assert_eq!(next["next_cursor"], Value::Null);
    let (_, running) = call(&app, Method::GET, "/v1/workflow-runs?state=running")
        .key(&key)
        .send()
        .await;
    assert_eq!(running["runs"].as_array().map(Vec::len), Some(4));
    assert_error(
        &call(&app, Method::GET, "/v1/workflow-runs?state=asleep")
            .key(&key)
            .send()
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    assert_error(
        &call(&app, Method::GET, "/v1/workflow-runs?limit=0")
            .key(&key)
            .send()
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
}

async fn a_run_is_cancelled_once(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let run = start_diamond(&app, &key, json!({})).await;
    let id = run["id"].as_str().unwrap();
    let (status, cancelled) = call(
        &app,
        Method::POST,
        &format!("/v1/workflow-runs/{id}/cancel"),
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(
        cancelled["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "cancelled")
    );
    let job_id = cancelled["steps"][0]["job_id"].as_str().unwrap();
    let (_, job) = call(&app, Method::GET, &format!("/v1/jobs/{job_id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(
        job["state"], "cancelled",
        "the waiting step job is cancelled"
    );
    assert_error(
        &call(
            &app,
            Method::POST,
            &format!("/v1/workflow-runs/{id}/cancel"),
        )
        .key(&key)
        .send()
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
}

/// Each step's state in a run, in the definition's order.
fn step_states(run: &Value) -> Vec<&str> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect()
}

/// Read `run` events until one shows the steps in `states`.
async fn run_event_until(events: &mut SseReader, states: &[&str]) -> Value {
    loop {
        let (event, run) = events
            .next(Duration::from_secs(60))
            .await
            .expect("the stream goes on until the run ends");
        assert_eq!(event, "run");
        if step_states(&run) == states {
            return run;
        }
    }
}

async fn a_runs_event_stream_follows_every_change_until_it_ends(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let run = start_diamond(&app, &key, json!({"input": {"n": 1}})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let path = format!("/v1/workflow-runs/{id}/events");
    let mut events = SseReader::open(&app, &key, &path).await;
    // The run first, then each change as the jobs finish, whoever
    // finishes them: here the store, as a worker would.
    let first = run_event_until(&mut events, &["running", "pending", "pending", "pending"]).await;
    assert_eq!(first["id"], id.as_str());
    assert_eq!(first["state"], "running");
    assert_eq!(complete_due_jobs(&db).await, 1);
    run_event_until(&mut events, &["completed", "running", "running", "pending"]).await;
    assert_eq!(complete_due_jobs(&db).await, 2);
    run_event_until(
        &mut events,
        &["completed", "completed", "completed", "running"],
    )
    .await;
    assert_eq!(complete_due_jobs(&db).await, 1);
    let last = run_event_until(&mut events, &["completed"; 4]).await;
    assert_eq!(last["state"], "completed");
    assert!(
        events.next(Duration::from_secs(60)).await.is_none(),
        "the stream ends with the run"
    );
    // A run that ended: its one event, then the end.
    let mut again = SseReader::open(&app, &key, &path).await;
    assert_eq!(
        again.next(Duration::from_secs(60)).await.unwrap().1["state"],
        "completed"
    );
    assert!(again.next(Duration::from_secs(60)).await.is_none());
    // Another tenant's run, an unknown one and a bad id are refused.
    let stranger = tenant_with_key(&app, "stranger", json!({})).await;
    for (key, path, status, code) in [
        (&stranger, path.as_str(), StatusCode::NOT_FOUND, "not_found"),
        (
            &key,
            &format!("/v1/workflow-runs/{}/events", uuid::Uuid::now_v7()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &key,
            "/v1/workflow-runs/nope/events",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        assert_error(
            &call(&app, Method::GET, path).key(key).send().await,
            status,
            code,
        );
    }
}

async fn another_tenants_workflows_and_runs_are_not_found(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    let run = start_diamond(&app, &key, json!({})).await;
    let id = run["id"].as_str().unwrap();
    for (method, uri) in [
        (Method::GET, "/v1/workflows/diamond".to_string()),
        (Method::POST, "/v1/workflows/diamond/runs".to_string()),
        (Method::GET, format!("/v1/workflow-runs/{id}")),
        (Method::GET, format!("/v1/workflow-runs/{id}/diagram")),
        (Method::POST, format!("/v1/workflow-runs/{id}/cancel")),
        (Method::GET, "/v1/workflow-runs/not-a-uuid".to_string()),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        assert_error(
            &call(&app, method, &uri)
                .key(&other)
                .json_opt(body)
                .send()
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let (_, list) = call(&app, Method::GET, "/v1/workflow-runs")
        .key(&other)
        .send()
        .await;
    assert_eq!(list["runs"], json!([]));
    // The other tenant's workflow of the same name is its own.
    let (_, theirs) = call(&app, Method::GET, "/v1/workflows")
        .key(&other)
        .send()
        .await;
    assert_eq!(theirs["workflows"], json!([]));
}
