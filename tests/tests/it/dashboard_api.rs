//! What the dashboard reads and changes, through the API on both backends:
//! the jobs list's new filters and its bound on rows examined, bulk replay
//! and cancel by filter with their dry runs, the overview and dead-letter
//! groups, the session cookie with its CSRF token, and an admin acting as
//! a tenant.

use axum::http::{Method, StatusCode};
use corral::model::{Limits, NewJob};
use corral_tests::api::{ADMIN_TOKEN, app, assert_error, call, tenant_with_key};
use corral_tests::db::TestDb;
use corral_tests::finish_all;
use serde_json::{Value, json};

corral_tests::on_both_backends!(
    jobs_are_filtered_by_time_and_error_text,
    a_filtered_page_examines_a_bounded_number_of_jobs,
    dead_jobs_are_replayed_in_bulk_once_each,
    unfinished_jobs_are_cancelled_in_bulk,
    bad_bulk_requests_are_refused_and_change_nothing,
    the_overview_and_dead_letter_groups_sum_up_a_tenant,
    the_overview_lists_worker_hosts_alive_idle_ones_included,
    the_session_cookie_signs_in_and_needs_its_csrf_token,
    an_admin_acts_as_a_tenant_it_names,
);

/// Enqueue `inputs` of `plugin` for `tenant` straight into the store.
async fn enqueue(db: &TestDb, tenant: &str, plugin: &str, inputs: usize) -> Vec<uuid::Uuid> {
    let jobs: Vec<NewJob> = (0..inputs)
        .map(|i| NewJob::new(plugin, i.to_string()))
        .collect();
    let mut ids = Vec::new();
    for chunk in jobs.chunks(1000) {
        let inserted = db
            .store
            .job_insert_batch(tenant, chunk, chrono::Utc::now())
            .await
            .unwrap();
        ids.extend(inserted.into_iter().map(|i| i.id));
    }
    ids
}

fn ids(list: &Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

async fn jobs_are_filtered_by_time_and_error_text(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    let early = enqueue(&db, "acme", "echo", 2).await;
    finish_all(&db, Err("disk full on /var")).await;
    // The boundary: every job after it was created at or after `middle`.
    let middle = chrono::Utc::now() + chrono::Duration::milliseconds(2);
    while chrono::Utc::now() <= middle {
        tokio::task::yield_now().await;
    }
    let late = enqueue(&db, "acme", "echo", 3).await;
    finish_all(&db, Err("timeout talking to upstream")).await;

    let q = |query: &str| {
        let app = &app;
        let key = &key;
        let uri = format!("/v1/jobs?{query}");
        async move {
            let (status, list) = call(app, Method::GET, &uri).key(key).send().await;
            assert_eq!(status, StatusCode::OK, "{list}");
            list
        }
    };
    let at = middle.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let after = q(&format!("created_after={}", urlencode(&at))).await;
    let mut want: Vec<String> = late.iter().rev().map(|id| id.to_string()).collect();
    assert_eq!(ids(&after), want);
    let before = q(&format!("created_before={}", urlencode(&at))).await;
    want = early.iter().rev().map(|id| id.to_string()).collect();
    assert_eq!(ids(&before), want);
    // Text in the error, case-sensitive; combined with the other filters.
    let disk = q("error=disk%20full&state=dead").await;
    assert_eq!(ids(&disk), want);
    assert!(ids(&q("error=DISK").await).is_empty());
    assert_eq!(ids(&q("error=upstream&plugin=echo").await).len(), 3);
    // Times no id can have (before the epoch, past the year 9999) are
    // clamped, not refused and not a server error.
    let all =
        q("created_after=0001-01-01T00%3A00%3A00Z&created_before=9999-12-31T23%3A59%3A59Z").await;
    assert_eq!(ids(&all).len(), 5, "{all}");
    assert!(ids(&q("created_after=9999-12-31T23%3A59%3A59Z").await).is_empty());
    assert!(ids(&q("created_before=1900-01-01T00%3A00%3A00Z").await).is_empty());
    // Markup in the text looked for is only text.
    assert!(ids(&q("error=%3Cscript%3E").await).is_empty());

    assert_error(
        &call(
            &app,
            Method::GET,
            &format!("/v1/jobs?error={}", "x".repeat(201)),
        )
        .key(&key)
        .send()
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    for nul in ["error=a%00b", "plugin=echo%00", "queue=%00"] {
        assert_error(
            &call(&app, Method::GET, &format!("/v1/jobs?{nul}"))
                .key(&key)
                .send()
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        );
    }
    assert_error(
        &call(&app, Method::GET, "/v1/jobs?created_after=yesterday")
            .key(&key)
            .send()
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

async fn a_filtered_page_examines_a_bounded_number_of_jobs(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    db.plugin("acme", "rare", b"component 2", Limits::default(), 1)
        .await;
    // The one `rare` job is older than more jobs than a page examines.
    let rare = enqueue(&db, "acme", "rare", 1).await;
    enqueue(
        &db,
        "acme",
        "echo",
        corral::store::MAX_SCANNED_PER_PAGE as usize + 5,
    )
    .await;

    let (status, first) = call(&app, Method::GET, "/v1/jobs?plugin=rare")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(ids(&first).is_empty(), "{first}");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a short page continues below the last job examined");
    let (_, second) = call(
        &app,
        Method::GET,
        &format!("/v1/jobs?plugin=rare&cursor={cursor}"),
    )
    .key(&key)
    .send()
    .await;
    assert_eq!(ids(&second), vec![rare[0].to_string()]);
    assert!(second["next_cursor"].is_null(), "{second}");

    // A bulk request acts on 1,000 jobs at most and continues by cursor,
    // however many match.
    let (status, first_thousand) = call(&app, Method::POST, "/v1/jobs/cancel")
        .key(&key)
        .json(json!({"filter": {"plugin": "echo"}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{first_thousand}");
    assert_eq!(first_thousand["jobs"].as_array().unwrap().len(), 1000);
    assert!(first_thousand["next_cursor"].is_string());
    // A dry run's count stops at its own bound and says so only past it.
    let (_, count) = call(&app, Method::POST, "/v1/jobs/cancel")
        .key(&key)
        .json(json!({"filter": {"plugin": "rare"}, "dry_run": true}))
        .send()
        .await;
    assert_eq!(count["matched"], 1, "{count}");
    assert_eq!(count["matched_is_lower_bound"], false);
}

async fn dead_jobs_are_replayed_in_bulk_once_each(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    for tenant in ["acme", "other"] {
        db.plugin(tenant, "echo", b"component", Limits::default(), 1)
            .await;
    }
    let dead = enqueue(&db, "acme", "echo", 5).await;
    enqueue(&db, "other", "echo", 2).await;
    finish_all(&db, Err("boom")).await;

    let replay = |body: Value, key: String| {
        let app = &app;
        async move {
            call(app, Method::POST, "/v1/jobs/replay")
                .key(&key)
                .json(body)
                .send()
                .await
        }
    };
    let (status, dry) = replay(json!({"dry_run": true}), key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["matched"], 5);
    assert_eq!(dry["jobs"], json!([]));
    assert_eq!(db.job_total("acme").await, 5, "a dry run changes nothing");

    // Two requests of 3: the cursor carries the second on.
    let (status, first) = replay(json!({"limit": 3}), key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(first["replays"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let (_, second) = replay(json!({"limit": 3, "cursor": cursor}), key.clone()).await;
    assert_eq!(second["jobs"].as_array().unwrap().len(), 2);
    assert!(second["next_cursor"].is_null(), "{second}");
    let mut replayed: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|r| r["jobs"].as_array().unwrap().clone())
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    replayed.sort();
    let mut want: Vec<String> = dead.iter().map(|id| id.to_string()).collect();
    want.sort();
    assert_eq!(replayed, want);

    // Each replay is a waiting job linked to its dead original.
    for (original, new) in first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(first["replays"].as_array().unwrap())
    {
        let (_, job) = call(
            &app,
            Method::GET,
            &format!("/v1/jobs/{}", new.as_str().unwrap()),
        )
        .key(&key)
        .send()
        .await;
        assert_eq!(job["state"], "available");
        assert_eq!(&job["replay_of"], original);
    }
    // Once replayed, a dead job is not replayed again: the dead-letter
    // groups are empty and a repeat does nothing.
    let (_, again) = replay(json!({}), key.clone()).await;
    assert_eq!(again["jobs"], json!([]), "{again}");
    let (_, dry) = replay(json!({"dry_run": true}), key.clone()).await;
    assert_eq!(dry["matched"], 0);
    assert_eq!(db.job_total("acme").await, 10);
    // The other tenant's dead jobs were never touched.
    assert_eq!(db.job_total("other").await, 2);
    let (_, theirs) = replay(json!({"dry_run": true}), other).await;
    assert_eq!(theirs["matched"], 2);
}

async fn unfinished_jobs_are_cancelled_in_bulk(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    db.plugin("acme", "keep", b"component 2", Limits::default(), 1)
        .await;
    enqueue(&db, "acme", "echo", 4).await;
    finish_all(&db, Ok("1")).await;
    enqueue(&db, "acme", "echo", 3).await;
    let kept = enqueue(&db, "acme", "keep", 2).await;

    let (_, dry) = call(&app, Method::POST, "/v1/jobs/cancel")
        .key(&key)
        .json(json!({"filter": {"plugin": "echo"}, "dry_run": true}))
        .send()
        .await;
    assert_eq!(dry["matched"], 3, "finished jobs are not counted: {dry}");
    let (status, done) = call(&app, Method::POST, "/v1/jobs/cancel")
        .key(&key)
        .json(json!({"filter": {"plugin": "echo"}}))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["jobs"].as_array().unwrap().len(), 3);
    let (_, cancelled) = call(&app, Method::GET, "/v1/jobs?state=cancelled")
        .key(&key)
        .send()
        .await;
    assert_eq!(ids(&cancelled).len(), 3);
    for id in kept {
        let job = db.store.job_get("acme", id).await.unwrap().unwrap();
        assert_eq!(job.state, corral::model::JobState::Available);
    }
    let (_, completed) = call(&app, Method::GET, "/v1/jobs?state=completed")
        .key(&key)
        .send()
        .await;
    assert_eq!(ids(&completed).len(), 4);
}

async fn bad_bulk_requests_are_refused_and_change_nothing(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({"max_queued_jobs": 3})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    enqueue(&db, "acme", "echo", 3).await;
    finish_all(&db, Err("boom")).await;
    enqueue(&db, "acme", "echo", 1).await;
    let refused = [
        (json!({"filter": {"state": "available"}}), "invalid_filter"),
        (json!({"limit": 0}), "invalid_body"),
        (json!({"limit": 1001}), "invalid_body"),
        (json!({"filter": {"colour": "red"}}), "invalid_body"),
        (
            json!({"filter": {"error_contains": "x".repeat(201)}}),
            "invalid_filter",
        ),
        (json!({"filter": {"plugin": "a\u{0}"}}), "invalid_filter"),
    ];
    for (body, code) in refused {
        let response = call(&app, Method::POST, "/v1/jobs/replay")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        assert_error(&response, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    assert_error(
        &call(&app, Method::POST, "/v1/jobs/cancel")
            .key(&key)
            .json(json!({"filter": {"state": "dead"}}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_filter",
    );
    assert_error(
        &call(&app, Method::POST, "/v1/jobs/replay")
            .key(&key)
            .json(json!({"cursor": "not-a-cursor"}))
            .send()
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    // Three dead jobs to replay, one job already waiting, room for three:
    // the quota refuses the whole request, and nothing is stored.
    let (status, body) = call(&app, Method::POST, "/v1/jobs/replay")
        .key(&key)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(db.job_total("acme").await, 4);
    let (_, dry) = call(&app, Method::POST, "/v1/jobs/replay")
        .key(&key)
        .json(json!({"dry_run": true}))
        .send()
        .await;
    assert_eq!(dry["matched"], 3);
}

async fn the_overview_and_dead_letter_groups_sum_up_a_tenant(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    db.plugin("acme", "other", b"component 2", Limits::default(), 1)
        .await;
    enqueue(&db, "acme", "echo", 2).await;
    finish_all(&db, Ok("1")).await;
    enqueue(&db, "acme", "echo", 3).await;
    finish_all(&db, Err("boom")).await;
    enqueue(&db, "acme", "other", 1).await;
    finish_all(&db, Err("<img src=x onerror=alert(1)>")).await;
    enqueue(&db, "acme", "echo", 4).await;

    let (status, overview) = call(&app, Method::GET, "/v1/overview")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["live"]["available"], 4, "{overview}");
    assert!(overview["oldest_due"].is_string());
    let minutes = overview["finished_per_minute"].as_array().unwrap();
    assert_eq!(minutes.len(), 60);
    let sum = |kind: &str| {
        minutes
            .iter()
            .map(|m| m[kind].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("completed"), sum("dead"), sum("cancelled")), (2, 4, 0));

    let (_, dead) = call(&app, Method::GET, "/v1/dead-letters")
        .key(&key)
        .send()
        .await;
    let groups: Vec<(String, String, u64)> = dead["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["plugin"].as_str().unwrap().to_string(),
                g["error"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("echo".into(), "boom".into(), 3),
            ("other".into(), "<img src=x onerror=alert(1)>".into(), 1),
        ]
    );
    // Many distinct errors, each long: at most 100 groups, each named by
    // the first 200 characters of its error.
    for i in 0..(corral::store::MAX_DEAD_GROUPS + 5) {
        enqueue(&db, "acme", "other", 1).await;
        finish_all(&db, Err(&format!("{i:04} {}", "x".repeat(10_000)))).await;
    }
    let (_, many) = call(&app, Method::GET, "/v1/dead-letters")
        .key(&key)
        .send()
        .await;
    let groups = many["groups"].as_array().unwrap();
    assert_eq!(groups.len(), corral::store::MAX_DEAD_GROUPS as usize);
    assert!(
        groups
            .iter()
            .all(|g| g["error"].as_str().unwrap().chars().count()
                <= corral::store::DEAD_GROUP_ERROR_CHARS as usize)
    );
    // Another tenant sees nothing of it.
    let stranger = tenant_with_key(&app, "stranger", json!({})).await;
    let (_, theirs) = call(&app, Method::GET, "/v1/dead-letters")
        .key(&stranger)
        .send()
        .await;
    assert_eq!(theirs["groups"], json!([]));
}

/// (host, slots, the tenant's running attempts) of each host the
/// overview lists.
async fn hosts_listed(app: &axum::Router, key: &str) -> Vec<(String, Value, u64)> {
    let (status, overview) = call(app, Method::GET, "/v1/overview").key(key).send().await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    overview["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host_id"].as_str().unwrap().to_string(),
                h["concurrency"].clone(),
                h["running"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn the_overview_lists_worker_hosts_alive_idle_ones_included(db: TestDb) {
    use corral::store::HostSeen;
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    db.plugin(
        "acme",
        "echo",
        &corral_tests::plugin_bytes("echo"),
        Limits::default(),
        1,
    )
    .await;
    let now = chrono::Utc::now();
    // A host that stopped beating a minute ago is not alive; one unseen
    // for two hours is forgotten by the janitor's pass.
    for (host, seen) in [("gone", 60), ("long-gone", 7200)] {
        db.store
            .host_beat(&HostSeen {
                host_id: host.into(),
                concurrency: 4,
                started_at: now - chrono::Duration::seconds(seen),
                seen_at: now - chrono::Duration::seconds(seen),
            })
            .await
            .unwrap();
    }
    assert_eq!(
        db.store
            .host_prune(now - corral::worker::presence::HOST_FORGET)
            .await
            .unwrap(),
        1
    );
    assert_eq!(hosts_listed(&app, &key).await, vec![]);

    // A worker host writes its row before it claims: once it has run a
    // job it is listed, idle, with its slots.
    let host = corral_tests::worker::Host::start(&db, corral_tests::worker::config("host-idle"));
    let id = enqueue(&db, "acme", "echo", 1).await[0];
    db.wait_for("acme", id, std::time::Duration::from_secs(120), |s| {
        s == corral::model::JobState::Completed
    })
    .await;
    assert_eq!(
        hosts_listed(&app, &key).await,
        vec![("host-idle".to_string(), json!(8), 0)]
    );
    // A host that runs the tenant's job without being in the registry
    // (an older version, or one whose beats fail) is listed by its leases.
    host.stop().await;
    enqueue(&db, "acme", "echo", 2).await;
    let claimed = db
        .store
        .job_claim(&corral::store::ClaimRequest {
            host_id: "unregistered".into(),
            now: chrono::Utc::now(),
            limit: 10,
            lease: std::time::Duration::from_secs(30),
            queues: None,
            tenants: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // The stopped host left the registry.
    assert_eq!(
        hosts_listed(&app, &key).await,
        vec![("unregistered".to_string(), Value::Null, 2)]
    );
    // Another tenant sees the hosts, but none of acme's attempts.
    let stranger = tenant_with_key(&app, "stranger", json!({})).await;
    assert_eq!(hosts_listed(&app, &stranger).await, vec![]);
}

/// The value of `Set-Cookie` for `name`, as `name=value`.
fn set_cookie(headers: &axum::http::HeaderMap, name: &str) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"))
}

async fn the_session_cookie_signs_in_and_needs_its_csrf_token(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    let (status, _, body) = call(&app, Method::POST, "/ui/session")
        .json(json!({"key": "corral_0123456789abcdef_nope"}))
        .exchange()
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A key a cookie could not carry is named as such, never half-set.
    let (status, headers, body) = call(&app, Method::POST, "/ui/session")
        .json(json!({"key": "token; with=cookie syntax"}))
        .exchange()
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(headers.get("set-cookie").is_none());

    // A key far longer than any key is refused before anything hashes it.
    let (status, _, body) = call(&app, Method::POST, "/ui/session")
        .json(json!({"key": "k".repeat(1 << 20)}))
        .exchange()
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // No `corral serve --open` code was issued: any code is refused, a
    // huge one before anything hashes it; both or neither field is 422.
    for code in [
        "0123456789abcdef0123456789abcdef".to_string(),
        "c".repeat(1 << 20),
    ] {
        let (status, headers, body) = call(&app, Method::POST, "/ui/session")
            .json(json!({ "code": code }))
            .exchange()
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(headers.get("set-cookie").is_none());
    }
    for body in [json!({}), json!({"key": key, "code": "00"})] {
        let (status, _, body) = call(&app, Method::POST, "/ui/session")
            .json(body)
            .exchange()
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    let (status, headers, session) = call(&app, Method::POST, "/ui/session")
        .json(json!({"key": key}))
        .exchange()
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["kind"], "tenant");
    assert_eq!(session["tenant"], "acme");
    let cookie = set_cookie(&headers, "corral_session");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let csrf = session["csrf"].as_str().unwrap().to_string();

    // Reads need only the cookie.
    let (status, read) = call(&app, Method::GET, "/ui/session")
        .header("cookie", &pair)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["csrf"], csrf.as_str());
    let (status, _) = call(&app, Method::GET, "/v1/jobs")
        .header("cookie", &pair)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    // A change needs the CSRF token too; without it nothing is stored.
    let create = json!({"plugin": "echo", "input": 1});
    for token in [None, Some("0".repeat(64))] {
        let mut request = call(&app, Method::POST, "/v1/jobs")
            .header("cookie", &pair)
            .json(create.clone());
        if let Some(token) = &token {
            request = request.header("x-corral-csrf", token);
        }
        assert_error(&request.send().await, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(db.job_total("acme").await, 0);
    let (status, _) = call(&app, Method::POST, "/v1/jobs")
        .header("cookie", &pair)
        .header("x-corral-csrf", &csrf)
        .json(create)
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Signing out clears the cookie.
    let (status, headers, _) = call(&app, Method::DELETE, "/ui/session")
        .header("cookie", &pair)
        .exchange()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(set_cookie(&headers, "corral_session").contains("Max-Age=0"));

    // The page itself: strict CSP, no inline script.
    let (status, headers, page) = call(&app, Method::GET, "/ui").exchange().await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = page.as_str().unwrap();
    assert!(page.contains("<script src=\"/ui/app.js\""), "{page}");
    assert!(!page.contains("<script>"));
}

async fn an_admin_acts_as_a_tenant_it_names(db: TestDb) {
    let app = app(&db);
    tenant_with_key(&app, "acme", json!({})).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 1)
        .await;
    enqueue(&db, "acme", "echo", 2).await;
    assert_error(
        &call(&app, Method::GET, "/v1/jobs")
            .key(ADMIN_TOKEN)
            .send()
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (status, list) = call(&app, Method::GET, "/v1/jobs")
        .key(ADMIN_TOKEN)
        .header("corral-tenant", "acme")
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list).len(), 2);
    assert_error(
        &call(&app, Method::GET, "/v1/jobs")
            .key(ADMIN_TOKEN)
            .header("corral-tenant", "nobody")
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The admin view lists a tenant's keys: ids and times, never a secret.
    let (status, keys) = call(&app, Method::GET, "/v1/tenants/acme/keys")
        .key(ADMIN_TOKEN)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["key_id"].is_string() && keys[0].get("key").is_none());
    // A tenant's key cannot name another tenant.
    let key = tenant_with_key(&app, "other", json!({})).await;
    let (_, theirs) = call(&app, Method::GET, "/v1/jobs")
        .key(&key)
        .header("corral-tenant", "acme")
        .send()
        .await;
    assert!(ids(&theirs).is_empty());
    // The dashboard's admin session picks the tenant by cookie.
    let (_, headers, session) = call(&app, Method::POST, "/ui/session")
        .json(json!({"key": ADMIN_TOKEN}))
        .exchange()
        .await;
    assert_eq!(session["kind"], "admin");
    let pair = set_cookie(&headers, "corral_session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, list) = call(&app, Method::GET, "/v1/jobs")
        .header("cookie", &format!("{pair}; corral_tenant=acme"))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list).len(), 2);
}
