//! Cron schedules on both backends, with a controlled clock (every store
//! call takes `now`): ticks fire once however often and from however many
//! hosts they are fired, daylight saving time in a time zone, catch-up on
//! and off, restarts, pausing, workflow targets, broken targets; and the
//! HTTP routes.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use corral::model::{JobState, Limits, NewJob, Quotas};
use corral::store::{RunFilter, StoreError};
use corral::workflow::schedule::{FiredTick, ScheduleSpec};
use corral_tests::api::{app, assert_error, call, push, tenant_with_key};
use corral_tests::db::TestDb;
use serde_json::{Value, json};

corral_tests::on_both_backends!(
    each_tick_fires_once,
    two_hosts_fire_a_tick_once,
    daily_ticks_follow_daylight_saving_time,
    after_downtime_only_the_latest_tick_fires_without_catch_up,
    catch_up_fires_every_missed_tick_in_order,
    schedules_survive_a_restart,
    paused_schedules_fire_nothing_and_resume_from_now,
    a_workflow_target_starts_a_run,
    a_broken_target_records_why_on_its_tick,
    bad_schedules_are_refused_and_store_nothing,
    the_schedule_routes,
);

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

async fn setup(db: &TestDb) {
    db.tenant("acme", 100).await;
    db.plugin("acme", "work", b"component v1", Limits::default(), 3)
        .await;
}

fn spec(value: Value) -> ScheduleSpec {
    serde_json::from_value(value).expect("a schedule")
}

async fn put(db: &TestDb, name: &str, value: Value, now: DateTime<Utc>) {
    db.store
        .schedule_put("acme", name, &spec(value), now)
        .await
        .expect("schedule stored");
}

async fn fire(db: &TestDb, now: DateTime<Utc>) -> Vec<FiredTick> {
    db.store.schedule_fire(now, 100).await.expect("fire")
}

fn ticks(fired: &[FiredTick]) -> Vec<DateTime<Utc>> {
    fired.iter().map(|t| t.tick).collect()
}

async fn each_tick_fires_once(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "minutely",
        json!({"cron": "* * * * *", "target": {"plugin": "work", "input": {"n": 1}}}),
        utc(2026, 1, 1, 0, 0),
    )
    .await;
    let schedule = db
        .store
        .schedule_get("acme", "minutely")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(schedule.next_tick, Some(utc(2026, 1, 1, 0, 1)));
    assert!(
        fire(&db, utc(2026, 1, 1, 0, 0)).await.is_empty(),
        "not due yet"
    );
    let fired = fire(&db, utc(2026, 1, 1, 0, 1)).await;
    assert_eq!(ticks(&fired), [utc(2026, 1, 1, 0, 1)]);
    let job = db
        .store
        .job_get("acme", fired[0].job_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Available);
    assert_eq!(
        serde_json::from_str::<Value>(&job.input).unwrap(),
        json!({"n": 1})
    );
    assert!(
        fire(&db, utc(2026, 1, 1, 0, 1)).await.is_empty(),
        "the same tick never again"
    );
    assert_eq!(
        ticks(&fire(&db, utc(2026, 1, 1, 0, 2)).await),
        [utc(2026, 1, 1, 0, 2)]
    );
    assert_eq!(db.job_total("acme").await, 2);
    let shown = db
        .store
        .schedule_get("acme", "minutely")
        .await
        .unwrap()
        .unwrap();
    let recent = shown.recent_ticks.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].tick, utc(2026, 1, 1, 0, 2), "newest first");
    assert_eq!(shown.next_tick, Some(utc(2026, 1, 1, 0, 3)));
}

async fn two_hosts_fire_a_tick_once(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "hourly",
        json!({"cron": "0 * * * *", "target": {"plugin": "work"}}),
        utc(2026, 1, 1, 0, 30),
    )
    .await;
    // A second host: its own connections to the same database. (SQLite is
    // one host: there, two passes of the same store at once.)
    let other = match db.store.backend() {
        corral::store::Backend::Postgres => {
            corral::store::connect(&db.url).await.expect("second host")
        }
        corral::store::Backend::Sqlite => db.store.clone(),
    };
    for round in 0..5 {
        let now = utc(2026, 1, 1, 1 + round, 0);
        let (a, b) = tokio::join!(
            db.store.schedule_fire(now, 100),
            other.schedule_fire(now, 100)
        );
        let fired = a.unwrap().len() + b.unwrap().len();
        assert_eq!(fired, 1, "round {round}: one tick, fired once");
    }
    assert_eq!(db.job_total("acme").await, 5);
}

async fn daily_ticks_follow_daylight_saving_time(db: TestDb) {
    setup(&db).await;
    let daily =
        json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin", "target": {"plugin": "work"}});
    put(&db, "nightly", daily.clone(), utc(2026, 3, 28, 12, 0)).await;
    // Spring forward: 02:30 does not exist on 29 March; it fires once, at 03:00 CEST.
    let next = db
        .store
        .schedule_get("acme", "nightly")
        .await
        .unwrap()
        .unwrap()
        .next_tick;
    assert_eq!(next, Some(utc(2026, 3, 29, 1, 0)));
    assert_eq!(
        ticks(&fire(&db, utc(2026, 3, 29, 1, 0)).await),
        [utc(2026, 3, 29, 1, 0)]
    );
    let next = db
        .store
        .schedule_get("acme", "nightly")
        .await
        .unwrap()
        .unwrap()
        .next_tick;
    assert_eq!(
        next,
        Some(utc(2026, 3, 30, 0, 30)),
        "02:30 CEST is 00:30 UTC"
    );
    // Fall back: 02:30 happens twice on 25 October; it fires once.
    put(&db, "nightly", daily, utc(2026, 10, 24, 12, 0)).await;
    assert_eq!(
        ticks(&fire(&db, utc(2026, 10, 25, 0, 30)).await),
        [utc(2026, 10, 25, 0, 30)]
    );
    assert!(
        fire(&db, utc(2026, 10, 25, 1, 30)).await.is_empty(),
        "the second 02:30 (CET) does not fire again"
    );
    let next = db
        .store
        .schedule_get("acme", "nightly")
        .await
        .unwrap()
        .unwrap()
        .next_tick;
    assert_eq!(
        next,
        Some(utc(2026, 10, 26, 1, 30)),
        "02:30 CET is 01:30 UTC"
    );
}

async fn after_downtime_only_the_latest_tick_fires_without_catch_up(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "hourly",
        json!({"cron": "0 * * * *", "target": {"plugin": "work"}}),
        utc(2026, 1, 1, 0, 30),
    )
    .await;
    // Down from 00:30 to 05:10: five ticks missed, the latest fires.
    assert_eq!(
        ticks(&fire(&db, utc(2026, 1, 1, 5, 10)).await),
        [utc(2026, 1, 1, 5, 0)]
    );
    assert_eq!(db.job_total("acme").await, 1);
    let next = db
        .store
        .schedule_get("acme", "hourly")
        .await
        .unwrap()
        .unwrap()
        .next_tick;
    assert_eq!(next, Some(utc(2026, 1, 1, 6, 0)));
}

async fn catch_up_fires_every_missed_tick_in_order(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "hourly",
        json!({"cron": "0 * * * *", "target": {"plugin": "work"}, "catch_up": true}),
        utc(2026, 1, 1, 0, 30),
    )
    .await;
    let fired = fire(&db, utc(2026, 1, 1, 5, 10)).await;
    assert_eq!(
        ticks(&fired),
        (1..=5).map(|h| utc(2026, 1, 1, h, 0)).collect::<Vec<_>>()
    );
    assert!(
        fired
            .iter()
            .all(|t| t.job_id.is_some() && t.error.is_none())
    );
    assert_eq!(db.job_total("acme").await, 5);
    assert!(fire(&db, utc(2026, 1, 1, 5, 10)).await.is_empty());
}

async fn schedules_survive_a_restart(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "hourly",
        json!({"cron": "0 * * * *", "target": {"plugin": "work"}}),
        utc(2026, 1, 1, 0, 30),
    )
    .await;
    assert_eq!(fire(&db, utc(2026, 1, 1, 1, 0)).await.len(), 1);
    // The host stops; a new process (new connections) starts hours later.
    let restarted = corral::store::connect(&db.url).await.expect("restart");
    let fired = restarted
        .schedule_fire(utc(2026, 1, 1, 4, 20), 100)
        .await
        .unwrap();
    assert_eq!(
        ticks(&fired),
        [utc(2026, 1, 1, 4, 0)],
        "the latest missed tick fires"
    );
    assert_eq!(db.job_total("acme").await, 2);
}

async fn paused_schedules_fire_nothing_and_resume_from_now(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "hourly",
        json!({"cron": "0 * * * *", "target": {"plugin": "work"}, "catch_up": true}),
        utc(2026, 1, 1, 0, 30),
    )
    .await;
    let paused = db
        .store
        .schedule_pause("acme", "hourly", true, utc(2026, 1, 1, 0, 40))
        .await
        .unwrap()
        .unwrap();
    assert!(paused.paused);
    assert_eq!(paused.next_tick, None);
    assert!(fire(&db, utc(2026, 1, 1, 5, 0)).await.is_empty());
    let resumed = db
        .store
        .schedule_pause("acme", "hourly", false, utc(2026, 1, 1, 5, 10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resumed.next_tick,
        Some(utc(2026, 1, 1, 6, 0)),
        "missed ticks are dropped"
    );
    assert_eq!(
        ticks(&fire(&db, utc(2026, 1, 1, 6, 0)).await),
        [utc(2026, 1, 1, 6, 0)]
    );
    assert!(
        db.store
            .schedule_pause("acme", "nope", true, utc(2026, 1, 1, 6, 0))
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.store.schedule_delete("acme", "hourly").await.unwrap());
    assert!(!db.store.schedule_delete("acme", "hourly").await.unwrap());
    assert!(fire(&db, utc(2026, 1, 1, 9, 0)).await.is_empty());
}

async fn a_workflow_target_starts_a_run(db: TestDb) {
    setup(&db).await;
    let workflow =
        serde_json::from_value(json!({"steps": [{"name": "a", "plugin": "work"}]})).unwrap();
    db.store
        .workflow_insert("acme", "report", &workflow, utc(2026, 1, 1, 0, 0))
        .await
        .unwrap();
    put(
        &db,
        "daily-report",
        json!({"cron": "0 6 * * *", "target": {"workflow": "report", "input": {"day": "today"}}}),
        utc(2026, 1, 1, 0, 0),
    )
    .await;
    let fired = fire(&db, utc(2026, 1, 1, 6, 0)).await;
    assert_eq!(fired.len(), 1);
    let run = db
        .store
        .run_get("acme", fired[0].run_id.expect("a run"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.schedule.as_deref(), Some("daily-report"));
    assert_eq!(run.input, json!({"day": "today"}));
    assert!(run.steps[0].job_id.is_some(), "its first step's job exists");
    let runs = db
        .store
        .run_list("acme", &RunFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}

async fn a_broken_target_records_why_on_its_tick(db: TestDb) {
    setup(&db).await;
    put(
        &db,
        "hourly",
        json!({"cron": "0 * * * *", "target": {"plugin": "work"}}),
        utc(2026, 1, 1, 0, 30),
    )
    .await;
    // The plugin's only version is deleted after the schedule was made.
    db.store
        .plugin_delete("acme", "work", 1, utc(2026, 1, 1, 0, 40))
        .await
        .unwrap();
    let fired = fire(&db, utc(2026, 1, 1, 1, 0)).await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].job_id, None);
    assert_eq!(
        fired[0].error.as_deref(),
        Some("target plugin `work` does not exist")
    );
    let next = db
        .store
        .schedule_get("acme", "hourly")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next.next_tick,
        Some(utc(2026, 1, 1, 2, 0)),
        "the schedule goes on"
    );
    assert_eq!(
        next.recent_ticks.unwrap()[0].error.as_deref(),
        Some("target plugin `work` does not exist")
    );
    // A full queue skips the tick instead of piling up a backlog.
    db.plugin("acme", "work", b"component v2", Limits::default(), 3)
        .await;
    db.store
        .tenant_update_quotas(
            "acme",
            &Quotas {
                max_queued_jobs: 1,
                ..Quotas::default()
            },
        )
        .await
        .unwrap();
    db.store
        .job_insert_batch("acme", &[NewJob::new("work", "{}")], utc(2026, 1, 1, 1, 30))
        .await
        .unwrap();
    let fired = fire(&db, utc(2026, 1, 1, 2, 0)).await;
    assert_eq!(
        fired[0].error.as_deref(),
        Some("skipped: the tenant already has 1 job(s) waiting (its max_queued_jobs)")
    );
    assert_eq!(
        db.job_total("acme").await,
        1,
        "nothing stored for the skipped tick"
    );
}

async fn bad_schedules_are_refused_and_store_nothing(db: TestDb) {
    setup(&db).await;
    let cases = [
        (
            json!({"cron": "61 * * * *", "target": {"plugin": "work"}}),
            "cron expression `61 * * * *` is not valid",
        ),
        (
            json!({"cron": "* * *", "target": {"plugin": "work"}}),
            "cron expression `* * *` has 3 fields",
        ),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "target": {"plugin": "work"}}),
            "time zone `Mars/Olympus` is not an IANA time zone",
        ),
        (
            json!({"cron": "* * * * *", "target": {"plugin": "work", "workflow": "w"}}),
            "target needs exactly one of `plugin` and `workflow`",
        ),
        (
            json!({"cron": "* * * * *", "target": {"plugin": "nope"}}),
            "target plugin `nope` does not exist",
        ),
        (
            json!({"cron": "* * * * *", "target": {"workflow": "nope", "version": 2}}),
            "target workflow `nope` has no version 2",
        ),
        (
            json!({"cron": "* * * * *", "target": {"plugin": "work", "input": "a\u{0}b"}}),
            "input holds a NUL character",
        ),
    ];
    for (value, want) in cases {
        match db
            .store
            .schedule_put("acme", "bad", &spec(value.clone()), utc(2026, 1, 1, 0, 0))
            .await
        {
            Err(StoreError::Invalid(message)) => {
                assert!(message.starts_with(want), "{value}: {message}")
            }
            other => panic!("{value}: expected a refusal, got {other:?}"),
        }
    }
    assert!(
        db.store.schedule_list("acme").await.unwrap().is_empty(),
        "nothing stored"
    );
}

async fn the_schedule_routes(db: TestDb) {
    let app = app(&db);
    let key = tenant_with_key(&app, "acme", json!({})).await;
    let other = tenant_with_key(&app, "other", json!({})).await;
    push(&app, &key, "echo").await;
    let body = json!({"cron": "*/5 * * * *", "timezone": "America/New_York",
                      "target": {"plugin": "echo", "input": {"x": 1}}});
    let (status, created) = call(&app, Method::PUT, "/v1/schedules/five")
        .key(&key)
        .json(body.clone())
        .send()
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "five");
    assert_eq!(created["timezone"], "America/New_York");
    assert_eq!(created["target"]["input"], json!({"x": 1}));
    assert!(created["next_tick"].is_string());
    let (status, replaced) = call(&app, Method::PUT, "/v1/schedules/five")
        .key(&key)
        .json(body)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replaced["created_at"], created["created_at"]);
    let (status, shown) = call(&app, Method::GET, "/v1/schedules/five")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["recent_ticks"], json!([]));
    let (_, list) = call(&app, Method::GET, "/v1/schedules")
        .key(&key)
        .send()
        .await;
    assert_eq!(list["schedules"].as_array().map(Vec::len), Some(1));
    let (status, paused) = call(&app, Method::POST, "/v1/schedules/five/pause")
        .key(&key)
        .send()
        .await;
    assert_eq!(
        (status, paused["paused"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(paused["next_tick"], Value::Null);
    let (_, resumed) = call(&app, Method::POST, "/v1/schedules/five/resume")
        .key(&key)
        .send()
        .await;
    assert!(resumed["next_tick"].is_string());
    assert_error(
        &call(&app, Method::PUT, "/v1/schedules/bad")
            .key(&key)
            .json(json!({"cron": "nope", "target": {"plugin": "echo"}}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_schedule",
    );
    assert_error(
        &call(&app, Method::PUT, "/v1/schedules/bad")
            .key(&key)
            .json(json!({"cron": "* * * * *", "target": {"plugin": "echo"}, "every": 5}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    for (method, uri) in [
        (Method::GET, "/v1/schedules/five"),
        (Method::POST, "/v1/schedules/five/pause"),
        (Method::DELETE, "/v1/schedules/five"),
    ] {
        assert_error(
            &call(&app, method, uri).key(&other).send().await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let (status, _) = call(&app, Method::DELETE, "/v1/schedules/five")
        .key(&key)
        .send()
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &call(&app, Method::GET, "/v1/schedules/five")
            .key(&key)
            .send()
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}
