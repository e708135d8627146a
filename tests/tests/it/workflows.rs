//! Workflows in the store, on both backends, with a controlled clock: runs
//! move forward by claiming and finishing their jobs as a worker would, so
//! every step of the engine is observed in the database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use corral::model::{ClaimedJob, JobState, Limits};
use corral::store::{CancelResult, ClaimRequest, NewRun, PluginDelete, RunCancel, StoreError};
use corral::workflow::{RunState, StepState, WorkflowRun, WorkflowSpec};
use corral_tests::db::TestDb;
use corral_tests::lease_of;
use serde_json::{Value, json};

corral_tests::on_both_backends!(
    a_diamond_propagates_context,
    halt_fails_the_run_and_cancels_the_rest,
    skip_skips_dependents_and_the_run_goes_on,
    continue_runs_dependents_and_ends_partially_failed,
    a_false_when_skips_the_step,
    fan_out_over_100_elements_keeps_max_parallel,
    cycles_and_unknown_references_are_refused,
    cancel_mid_run_cancels_every_unfinished_step,
    a_step_job_cancelled_alone_fails_its_step,
    versions_are_idempotent_and_pinned,
    retention_prunes_finished_runs,
    a_fan_out_whose_results_are_too_large_fails,
    expressions_are_evaluated_after_the_commit_even_after_a_crash,
);

const T0: i64 = 1_800_000_000;

fn at(secs: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(T0 * 1_000_000 + (secs * 1e6) as i64).unwrap()
}

fn limits() -> Limits {
    Limits {
        fuel: 1_000,
        memory_bytes: 1 << 20,
        timeout_ms: 5_000,
        result_bytes: 1 << 20,
        log_bytes: 1024,
    }
}

async fn setup(db: &TestDb) {
    db.tenant("acme", 1000).await;
    db.plugin("acme", "work", b"component v1", limits(), 1)
        .await;
}

fn spec(steps: Value) -> WorkflowSpec {
    serde_json::from_value(json!({ "steps": steps })).expect("a definition")
}

async fn define(db: &TestDb, name: &str, steps: Value) {
    db.store
        .workflow_insert("acme", name, &spec(steps), at(0.0))
        .await
        .expect("definition stored");
}

/// Evaluate the expressions of every run waiting for it, as a host's
/// evaluator does after the transaction that marked them commits.
async fn evaluate(db: &TestDb, now: DateTime<Utc>) {
    corral::worker::evaluator::settle_marked(db.store.as_ref(), now, now)
        .await
        .expect("evaluations");
}

/// Start a run, evaluate its first expressions, and read it back.
async fn start(db: &TestDb, name: &str, input: Value) -> WorkflowRun {
    let started = start_only(db, name, input).await;
    evaluate(db, at(1.0)).await;
    run(db, started.id).await
}

/// Start a run, as the transaction leaves it.
async fn start_only(db: &TestDb, name: &str, input: Value) -> WorkflowRun {
    db.store
        .run_start(
            "acme",
            &NewRun {
                workflow: name,
                version: None,
                input: &input.to_string(),
                schedule: None,
                key: None,
            },
            at(1.0),
        )
        .await
        .expect("run started")
        .0
}

async fn claim(db: &TestDb, now: DateTime<Utc>) -> Vec<ClaimedJob> {
    claim_n(db, now, 1000).await
}

async fn claim_n(db: &TestDb, now: DateTime<Utc>, limit: u32) -> Vec<ClaimedJob> {
    db.store
        .job_claim(&ClaimRequest {
            host_id: "host-a".into(),
            now,
            limit,
            lease: Duration::from_secs(30),
            queues: None,
            tenants: None,
        })
        .await
        .expect("claim")
}

/// Finish a claimed job as the worker would: `Ok(result)` completes it,
/// `Err(message)` is a fatal outcome (dead at once).
async fn finish(db: &TestDb, job: &ClaimedJob, outcome: Result<Value, &str>, now: DateTime<Utc>) {
    let outcome = outcome.map(|result| result.to_string());
    let applied = db
        .store
        .job_finish(&[corral_tests::finish_of(job, outcome, now)])
        .await
        .expect("finish");
    assert_eq!(applied, vec![true]);
    evaluate(db, now).await;
}

async fn run(db: &TestDb, id: uuid::Uuid) -> WorkflowRun {
    db.store
        .run_get("acme", id)
        .await
        .expect("run_get")
        .expect("run exists")
}

fn step_states(run: &WorkflowRun) -> Vec<(&str, StepState)> {
    run.steps
        .iter()
        .map(|s| (s.name.as_str(), s.state))
        .collect()
}

/// The step a claimed job belongs to (its context says nothing about it;
/// the stored job does).
async fn step_of(db: &TestDb, job: &ClaimedJob) -> String {
    db.store
        .job_get("acme", job.id)
        .await
        .unwrap()
        .unwrap()
        .workflow_step
        .expect("a step job")
}

async fn a_diamond_propagates_context(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "diamond",
        json!([
            {"name": "a", "plugin": "work"},
            {"name": "b", "plugin": "work", "depends_on": ["a"]},
            {"name": "c", "plugin": "work", "depends_on": ["a"], "input": {"static": true}},
            {"name": "d", "plugin": "work", "depends_on": ["b", "c"]},
        ]),
    )
    .await;
    let started = start(&db, "diamond", json!({"order": 7})).await;
    assert_eq!(started.state, RunState::Running);
    assert_eq!(started.steps[0].state, StepState::Running);
    let jobs = claim(&db, at(2.0)).await;
    assert_eq!(jobs.len(), 1, "only a is ready");
    assert_eq!(
        serde_json::from_str::<Value>(&jobs[0].input).unwrap(),
        json!({"order": 7})
    );
    let context: Value = serde_json::from_str(jobs[0].context.as_deref().unwrap()).unwrap();
    assert_eq!(context, json!({"input": {"order": 7}, "steps": {}}));
    finish(&db, &jobs[0], Ok(json!({"a": 1})), at(3.0)).await;

    let jobs = claim(&db, at(4.0)).await;
    assert_eq!(jobs.len(), 2, "b and c were created with a's outcome");
    for job in &jobs {
        let context: Value = serde_json::from_str(job.context.as_deref().unwrap()).unwrap();
        assert_eq!(context["steps"], json!({"a": {"a": 1}}));
        let step = step_of(&db, job).await;
        let input: Value = serde_json::from_str(&job.input).unwrap();
        let want = if step == "c" {
            json!({"static": true})
        } else {
            json!({"order": 7})
        };
        assert_eq!(input, want, "{step}'s input");
        finish(&db, job, Ok(json!({ "from": step })), at(5.0)).await;
    }
    let jobs = claim(&db, at(6.0)).await;
    assert_eq!(jobs.len(), 1);
    let context: Value = serde_json::from_str(jobs[0].context.as_deref().unwrap()).unwrap();
    assert_eq!(
        context["steps"],
        json!({"a": {"a": 1}, "b": {"from": "b"}, "c": {"from": "c"}}),
        "d sees every upstream result, transitively"
    );
    finish(&db, &jobs[0], Ok(json!("done")), at(7.0)).await;
    let finished = run(&db, started.id).await;
    assert_eq!(finished.state, RunState::Completed);
    assert_eq!(finished.finished_at, Some(at(7.0)));
    assert!(
        finished
            .steps
            .iter()
            .all(|s| s.state == StepState::Completed)
    );
    assert_eq!(finished.steps[3].result, Some(json!("done")));
    let job = db
        .store
        .job_get("acme", finished.steps[3].job_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.workflow_run_id, Some(started.id));
}

async fn halt_fails_the_run_and_cancels_the_rest(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "halting",
        json!([
            {"name": "a", "plugin": "work"},
            {"name": "slow", "plugin": "work"},
            {"name": "waits", "plugin": "work"},
            {"name": "after", "plugin": "work", "depends_on": ["a"]},
        ]),
    )
    .await;
    let started = start(&db, "halting", json!({})).await;
    let mut events = db.store.subscribe();
    // Two of the three first jobs run (claims go in creation order); `waits` stays waiting.
    let mut by_step = std::collections::BTreeMap::new();
    for job in claim_n(&db, at(2.0), 2).await {
        by_step.insert(step_of(&db, &job).await, job);
    }
    assert_eq!(by_step.keys().collect::<Vec<_>>(), ["a", "slow"]);
    finish(&db, &by_step["a"], Err("broken"), at(3.0)).await;
    let failed = run(&db, started.id).await;
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("step `a` failed: its job ended dead: broken")
    );
    assert_eq!(
        step_states(&failed),
        [
            ("a", StepState::Failed),
            ("slow", StepState::Cancelled),
            ("waits", StepState::Cancelled),
            ("after", StepState::Cancelled),
        ]
    );
    // The running jobs were asked to stop; `after` was never created.
    let beat = db
        .store
        .job_heartbeat(
            &by_step.values().map(lease_of).collect::<Vec<_>>(),
            at(3.5),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(beat.cancel_requested, vec![by_step["slow"].id]);
    let waits = failed.steps[2].job_id.unwrap();
    assert_eq!(
        db.store
            .job_get("acme", waits)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Cancelled
    );
    assert!(failed.steps[3].job_id.is_none());
    // The run's end was announced.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(corral::store::StoreEvent::RunState(id, RunState::Failed)))
                if id == started.id =>
            {
                break;
            }
            Ok(_) => {}
            Err(_) => panic!("the run's end was not announced"),
        }
    }
}

async fn skip_skips_dependents_and_the_run_goes_on(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "skipping",
        json!([
            {"name": "a", "plugin": "work", "on_failure": "skip"},
            {"name": "b", "plugin": "work", "depends_on": ["a"]},
            {"name": "c", "plugin": "work", "depends_on": ["b"]},
            {"name": "other", "plugin": "work"},
        ]),
    )
    .await;
    let started = start(&db, "skipping", json!({})).await;
    for job in claim(&db, at(2.0)).await {
        let outcome = if step_of(&db, &job).await == "a" {
            Err("no")
        } else {
            Ok(json!(1))
        };
        finish(&db, &job, outcome, at(3.0)).await;
    }
    let done = run(&db, started.id).await;
    assert_eq!(done.state, RunState::PartiallyFailed);
    assert_eq!(
        step_states(&done),
        [
            ("a", StepState::Failed),
            ("b", StepState::Skipped),
            ("c", StepState::Skipped),
            ("other", StepState::Completed),
        ]
    );
    assert_eq!(done.steps[2].skipped_by.as_deref(), Some("a"));
    assert!(
        claim(&db, at(4.0)).await.is_empty(),
        "no job for skipped steps"
    );
}

async fn continue_runs_dependents_and_ends_partially_failed(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "continuing",
        json!([
            {"name": "a", "plugin": "work", "on_failure": "continue"},
            {"name": "b", "plugin": "work", "depends_on": ["a"]},
        ]),
    )
    .await;
    let started = start(&db, "continuing", json!({})).await;
    let jobs = claim(&db, at(2.0)).await;
    finish(&db, &jobs[0], Err("no"), at(3.0)).await;
    let jobs = claim(&db, at(4.0)).await;
    assert_eq!(jobs.len(), 1, "b runs although a failed");
    let context: Value = serde_json::from_str(jobs[0].context.as_deref().unwrap()).unwrap();
    assert_eq!(context["steps"], json!({}));
    finish(&db, &jobs[0], Ok(json!(2)), at(5.0)).await;
    let done = run(&db, started.id).await;
    assert_eq!(done.state, RunState::PartiallyFailed);
    assert_eq!(
        step_states(&done),
        [("a", StepState::Failed), ("b", StepState::Completed)]
    );
}

async fn a_false_when_skips_the_step(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "branching",
        json!([
            {"name": "big", "plugin": "work", "when": "input.amount > `100`"},
            {"name": "small", "plugin": "work", "when": "input.amount <= `100`"},
            {"name": "join", "plugin": "work", "depends_on": ["big", "small"]},
        ]),
    )
    .await;
    let started = start(&db, "branching", json!({"amount": 5})).await;
    assert_eq!(started.steps[0].state, StepState::Skipped);
    assert_eq!(
        started.steps[0].error.as_deref(),
        Some("`when` was false: input.amount > `100`")
    );
    let jobs = claim(&db, at(2.0)).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(step_of(&db, &jobs[0]).await, "small");
    finish(&db, &jobs[0], Ok(json!("s")), at(3.0)).await;
    let jobs = claim(&db, at(4.0)).await;
    assert_eq!(
        step_of(&db, &jobs[0]).await,
        "join",
        "a skipped branch does not block"
    );
    finish(&db, &jobs[0], Ok(json!("j")), at(5.0)).await;
    assert_eq!(run(&db, started.id).await.state, RunState::Completed);
}

async fn fan_out_over_100_elements_keeps_max_parallel(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "fan",
        json!([
            {"name": "each", "plugin": "work", "for_each": "input.items", "max_parallel": 7},
            {"name": "sum", "plugin": "work", "depends_on": ["each"]},
        ]),
    )
    .await;
    let items: Vec<u32> = (0..100).collect();
    let started = start(&db, "fan", json!({ "items": items })).await;
    assert_eq!(started.steps[0].items, Some(100));
    let mut t = 2.0;
    let mut finished = 0;
    let mut most_at_once = 0;
    loop {
        let jobs = claim(&db, at(t)).await;
        if jobs.is_empty() {
            break;
        }
        most_at_once = most_at_once.max(jobs.len());
        assert!(jobs.len() <= 7, "{} element jobs at once", jobs.len());
        // Finish them in reverse order: results must still come out in element order.
        for job in jobs.iter().rev() {
            if step_of(&db, job).await == "sum" {
                let context: Value = serde_json::from_str(job.context.as_deref().unwrap()).unwrap();
                let doubled: Vec<u32> = (0..100).map(|n| n * 2).collect();
                assert_eq!(context["steps"]["each"], json!(doubled));
                finish(&db, job, Ok(json!("summed")), at(t)).await;
                continue;
            }
            let n: u32 = serde_json::from_str(&job.input).unwrap();
            let context: Value = serde_json::from_str(job.context.as_deref().unwrap()).unwrap();
            assert_eq!(context["item"], json!(n));
            assert_eq!(context["index"], json!(n));
            finish(&db, job, Ok(json!(n * 2)), at(t)).await;
            finished += 1;
        }
        t += 1.0;
    }
    assert_eq!(finished, 100);
    assert_eq!(most_at_once, 7);
    let done = run(&db, started.id).await;
    assert_eq!(done.state, RunState::Completed);
    assert_eq!(done.steps[0].items_done, 100);
    let doubled: Vec<u32> = (0..100).map(|n| n * 2).collect();
    assert_eq!(done.steps[0].result, Some(json!(doubled)));
}

async fn cycles_and_unknown_references_are_refused(db: TestDb) {
    setup(&db).await;
    let refused = |steps: Value| {
        let db = &db;
        async move {
            match db
                .store
                .workflow_insert("acme", "bad", &spec(steps), at(0.0))
                .await
            {
                // The definition's own rules come typed; the plugins it
                // names are checked by the store.
                Err(StoreError::InvalidDefinition(e)) => e.to_string(),
                Err(StoreError::Invalid(message)) => message,
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    };
    assert_eq!(
        refused(json!([
            {"name": "a", "plugin": "work", "depends_on": ["b"]},
            {"name": "b", "plugin": "work", "depends_on": ["a"]},
        ]))
        .await,
        "the steps form a cycle: a -> b -> a"
    );
    assert_eq!(
        refused(json!([{"name": "a", "plugin": "work", "depends_on": ["ghost"]}])).await,
        "step `a` depends on `ghost`, which is not a step of this workflow"
    );
    assert_eq!(
        refused(json!([{"name": "a", "plugin": "nope"}])).await,
        "step `a`: plugin `nope` does not exist"
    );
    assert_eq!(
        refused(json!([{"name": "a", "plugin": "work", "version": 9}])).await,
        "step `a`: plugin `work` has no version 9"
    );
    assert_eq!(
        refused(json!([{"name": "a", "plugin": "work"}, {"name": "a", "plugin": "work"}])).await,
        "step `a` is defined twice"
    );
    assert!(
        db.store
            .workflow_get("acme", "bad", None)
            .await
            .unwrap()
            .is_none(),
        "nothing stored"
    );
    let missing = db
        .store
        .run_start(
            "acme",
            &NewRun {
                workflow: "bad",
                version: None,
                input: "{}",
                schedule: None,
                key: None,
            },
            at(1.0),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

async fn cancel_mid_run_cancels_every_unfinished_step(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "long",
        json!([
            {"name": "a", "plugin": "work"},
            {"name": "b", "plugin": "work"},
            {"name": "c", "plugin": "work", "depends_on": ["a", "b"]},
        ]),
    )
    .await;
    let started = start(&db, "long", json!({})).await;
    // One of `a` and `b` runs, the other waits.
    let jobs = claim_n(&db, at(2.0), 1).await;
    let running = jobs.into_iter().next().unwrap();
    let waiting_step = if step_of(&db, &running).await == "a" {
        "b"
    } else {
        "a"
    };
    let cancel = db
        .store
        .run_cancel("acme", started.id, at(3.0))
        .await
        .unwrap();
    assert_eq!(cancel, RunCancel::Cancelled);
    let cancelled = run(&db, started.id).await;
    assert_eq!(cancelled.state, RunState::Cancelled);
    assert!(
        cancelled
            .steps
            .iter()
            .all(|s| s.state == StepState::Cancelled)
    );
    let waiting_job = cancelled
        .steps
        .iter()
        .find(|s| s.name == waiting_step)
        .and_then(|s| s.job_id)
        .unwrap();
    assert_eq!(
        db.store
            .job_get("acme", waiting_job)
            .await
            .unwrap()
            .unwrap()
            .state,
        JobState::Cancelled
    );
    let beat = db
        .store
        .job_heartbeat(&[lease_of(&running)], at(3.5), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        beat.cancel_requested,
        vec![running.id],
        "the running step is stopped"
    );
    // Its outcome arrives later and changes nothing.
    finish(&db, &running, Ok(json!(1)), at(4.0)).await;
    let after = run(&db, started.id).await;
    assert_eq!(after.state, RunState::Cancelled);
    assert!(after.steps[2].job_id.is_none(), "c was never created");
    assert_eq!(
        db.store
            .run_cancel("acme", started.id, at(5.0))
            .await
            .unwrap(),
        RunCancel::AlreadyFinished(RunState::Cancelled)
    );
    assert_eq!(
        db.store
            .run_cancel("other", started.id, at(5.0))
            .await
            .unwrap(),
        RunCancel::NotFound,
        "another tenant's run is not found"
    );
}

async fn a_step_job_cancelled_alone_fails_its_step(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "single",
        json!([
            {"name": "a", "plugin": "work", "on_failure": "continue"},
            {"name": "b", "plugin": "work", "depends_on": ["a"]},
        ]),
    )
    .await;
    let started = start(&db, "single", json!({})).await;
    let job = started.steps[0].job_id.unwrap();
    assert_eq!(
        db.store.job_cancel("acme", job, at(2.0)).await.unwrap(),
        CancelResult::Cancelled
    );
    let now = run(&db, started.id).await;
    assert_eq!(now.steps[0].state, StepState::Failed);
    assert_eq!(
        now.steps[0].error.as_deref(),
        Some("its job was cancelled: cancelled")
    );
    assert_eq!(now.steps[1].state, StepState::Running, "continue: b runs");
}

async fn versions_are_idempotent_and_pinned(db: TestDb) {
    setup(&db).await;
    let steps = json!([{"name": "a", "plugin": "work"}]);
    let (first, created) = db
        .store
        .workflow_insert("acme", "w", &spec(steps.clone()), at(0.0))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.version, 1);
    let (same, created) = db
        .store
        .workflow_insert("acme", "w", &spec(steps), at(0.0))
        .await
        .unwrap();
    assert!(!created, "the same definition is not a new version");
    assert_eq!(same.version, 1);
    let (second, created) = db
        .store
        .workflow_insert(
            "acme",
            "w",
            &spec(json!([{"name": "b", "plugin": "work"}])),
            at(0.0),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(second.version, 2);
    assert_eq!(db.store.workflow_list("acme").await.unwrap().len(), 1);
    // A run pins the plugin version: it cannot be deleted under the run.
    let run = start(&db, "w", json!({})).await;
    assert_eq!(run.workflow_version, 2);
    assert_eq!(run.steps[0].version, 1);
    let version2 = db
        .plugin("acme", "work", b"component v2", limits(), 1)
        .await;
    assert_eq!(version2, 2);
    assert!(matches!(
        db.store
            .plugin_delete("acme", "work", 1, at(2.0))
            .await
            .unwrap(),
        PluginDelete::InUse(_)
    ));
}

async fn retention_prunes_finished_runs(db: TestDb) {
    setup(&db).await;
    define(&db, "short", json!([{"name": "a", "plugin": "work"}])).await;
    let started = start(&db, "short", json!({})).await;
    let jobs = claim(&db, at(2.0)).await;
    finish(&db, &jobs[0], Ok(json!(1)), at(3.0)).await;
    db.store.job_prune(at(10.0), 100).await.unwrap();
    assert!(
        db.store
            .run_get("acme", started.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.store
            .job_get("acme", jobs[0].id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_fan_out_whose_results_are_too_large_fails(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "big",
        json!([{"name": "each", "plugin": "work", "for_each": "input", "on_failure": "continue"}]),
    )
    .await;
    let started = start(&db, "big", json!([1, 2, 3, 4, 5])).await;
    let megabyte = "x".repeat(1 << 20);
    for job in claim(&db, at(2.0)).await {
        finish(&db, &job, Ok(json!(megabyte)), at(3.0)).await;
    }
    let done = run(&db, started.id).await;
    assert_eq!(done.state, RunState::PartiallyFailed);
    assert_eq!(done.steps[0].state, StepState::Failed);
    let error = done.steps[0].error.clone().unwrap();
    assert!(
        error.starts_with("the elements' results add up to 52428")
            && error.ends_with("a step's result is at most 4194304"),
        "{error}"
    );
}

/// A transaction that makes a step with expressions ready does not evaluate
/// them: it marks the run, and the evaluation happens after its commit. A
/// host that crashed in between leaves the mark, and another host's sweep
/// finishes the work; a cancelled run is unmarked.
async fn expressions_are_evaluated_after_the_commit_even_after_a_crash(db: TestDb) {
    setup(&db).await;
    define(
        &db,
        "gated",
        json!([
            {"name": "plain", "plugin": "work"},
            {"name": "gated", "plugin": "work", "when": "input.go"},
            {"name": "each", "plugin": "work", "depends_on": ["plain"], "for_each": "input.items"},
        ]),
    )
    .await;
    let started = start_only(&db, "gated", json!({"go": true, "items": [1, 2]})).await;
    assert_eq!(
        step_states(&started),
        [
            ("plain", StepState::Running),
            ("gated", StepState::Pending),
            ("each", StepState::Pending),
        ],
        "only the step without expressions started in the transaction"
    );
    // The host "crashed" here: nothing evaluated, the mark stays.
    let marked = db
        .store
        .runs_awaiting_evaluation(at(1.0), 100)
        .await
        .unwrap();
    assert_eq!(marked, vec![started.id]);
    assert!(
        db.store
            .runs_awaiting_evaluation(at(0.5), 100)
            .await
            .unwrap()
            .is_empty(),
        "marked at its commit, not before"
    );
    // Another host's sweep.
    let swept = corral::worker::evaluator::settle_marked(db.store.as_ref(), at(11.0), at(11.0))
        .await
        .unwrap();
    assert_eq!(swept, 1);
    let after = run(&db, started.id).await;
    assert_eq!(after.steps[1].state, StepState::Running);
    assert!(
        db.store
            .runs_awaiting_evaluation(at(100.0), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // `plain` finishing makes `each` ready: marked again, evaluated after.
    let mut plain = None;
    for job in claim(&db, at(12.0)).await {
        if step_of(&db, &job).await == "plain" {
            plain = Some(job);
        }
    }
    let plain = plain.expect("plain's job");
    let applied = db
        .store
        .job_finish(&[corral_tests::finish_of(&plain, Ok("1".into()), at(13.0))])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    assert_eq!(
        run(&db, started.id).await.steps[2].state,
        StepState::Pending
    );
    assert_eq!(
        db.store
            .runs_awaiting_evaluation(at(13.0), 100)
            .await
            .unwrap(),
        vec![started.id]
    );
    // Cancelled before anyone evaluated: the sweep finds nothing to do.
    let cancelled = db.store.run_cancel("acme", started.id, at(14.0)).await;
    assert_eq!(cancelled.unwrap(), RunCancel::Cancelled);
    assert!(
        db.store
            .runs_awaiting_evaluation(at(100.0), 100)
            .await
            .unwrap()
            .is_empty(),
        "a cancelled run waits for nothing"
    );
    assert_eq!(
        run(&db, started.id).await.steps[2].state,
        StepState::Cancelled
    );
}
