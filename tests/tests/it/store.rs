//! The store conformance suite: every test runs against PostgreSQL and
//! against SQLite, with a controlled clock (every store call takes `now`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use corral::model::{
    Attempt, ClaimedJob, Finish, JobState, Limits, MAX_BATCH_JOBS, NewJob, OutcomeKind, Progress,
    ProgressUpdate,
};
use corral::store::{
    CancelResult, ClaimRequest, KeyLookup, Lease, PluginDelete, RequestKey, StoreError, StoreEvent,
};
use corral::worker::{Backoff, retry};
use corral_tests::db::TestDb;
use corral_tests::lease_of;

corral_tests::on_both_backends!(
    a_job_runs_and_completes,
    scheduled_jobs_wait_for_their_time,
    retries_back_off_then_dead_letter,
    deterministic_failures_dead_letter_at_once,
    idempotency_keys_return_the_first_job,
    a_request_key_taken_concurrently_stores_one_batch,
    batches_are_all_or_nothing,
    priorities_order_claims,
    cancellation_of_waiting_and_running_jobs,
    stale_tokens_are_fenced_out,
    max_concurrency_is_respected,
    claims_are_fair_across_tenants,
    claims_take_turns_across_tenants,
    a_claim_for_named_tenants_takes_only_their_jobs,
    a_drained_tenant_comes_back_when_a_job_is_due,
    a_tenant_whose_job_comes_due_is_next_in_the_turn,
    a_tenant_leaves_the_front_with_its_last_claimable_job,
    tenants_whose_jobs_wait_for_later_sleep_until_a_claim_wakes_them,
    shutdown_hands_jobs_back_without_using_an_attempt,
    heartbeats_keep_leases_alive,
    retention_prunes_finished_jobs,
    tenants_see_only_their_own_jobs,
    plugin_versions_are_pinned_at_enqueue,
    tenants_and_keys_are_administered,
    progress_is_recorded_fenced_and_announced,
    deleted_versions_leave_tombstones,
    the_enqueue_rate_window_counts_per_minute,
    an_insert_counts_its_batch_against_the_rate,
    new_jobs_are_announced,
    waiting_jobs_are_counted_up_to_a_cap,
    hosts_listed_are_bounded,
    the_schema_holds_the_name_rule,
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
        result_bytes: 1024,
        log_bytes: 1024,
    }
}

async fn setup(db: &TestDb) {
    db.tenant("acme", 100).await;
    db.plugin("acme", "work", b"component v1", limits(), 3)
        .await;
}

/// The ids a claim of up to `limit` jobs at `now` takes, in its order.
async fn claimed_ids(db: &TestDb, now: DateTime<Utc>, limit: u32) -> Vec<corral::model::JobId> {
    let claimed = db.store.job_claim(&claim_at(now, limit)).await.unwrap();
    claimed.iter().map(|c| c.id).collect()
}

fn claim_at(now: DateTime<Utc>, limit: u32) -> ClaimRequest {
    ClaimRequest {
        host_id: "host-a".into(),
        now,
        limit,
        lease: Duration::from_secs(30),
        queues: None,
        tenants: None,
    }
}

fn attempt(job: &ClaimedJob, outcome: OutcomeKind, now: DateTime<Utc>) -> Attempt {
    Attempt {
        attempt: job.attempt,
        outcome,
        message: Some(format!("attempt {}", job.attempt)),
        started_at: now,
        finished_at: now,
        fuel_consumed: 42,
        peak_memory_bytes: 65536,
        host_id: "host-a".into(),
        log: "[info] hi\n".into(),
        log_dropped_bytes: 0,
        http: None,
    }
}

/// The finish a worker would write for `outcome` at `now` (no jitter).
fn finish(
    job: &ClaimedJob,
    outcome: OutcomeKind,
    result: Option<&str>,
    now: DateTime<Utc>,
) -> Finish {
    Finish {
        workflow_run_id: None,
        progress: None,
        job_id: job.id,
        lease_token: job.lease_token,
        attempt: attempt(job, outcome, now),
        transition: retry::transition(
            outcome,
            result.map(String::from),
            Some("boom"),
            job.attempt,
            job.max_attempts,
            retry::RetryClock {
                now,
                backoff: &backoff(),
                unit: 1.0,
            },
        ),
    }
}

fn backoff() -> Backoff {
    Backoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(60),
    }
}

async fn enqueue(db: &TestDb, tenant: &str, job: NewJob, now: DateTime<Utc>) -> uuid::Uuid {
    let inserted = db
        .store
        .job_insert_batch(tenant, &[job], now)
        .await
        .expect("enqueue");
    inserted[0].id
}

async fn state(db: &TestDb, tenant: &str, id: uuid::Uuid) -> JobState {
    db.store
        .job_get(tenant, id)
        .await
        .unwrap()
        .expect("job exists")
        .state
}

async fn a_job_runs_and_completes(db: TestDb) {
    setup(&db).await;
    db.store
        .plugin_insert(
            &corral::store::NewPlugin {
                tenant_id: "acme".into(),
                name: "work".into(),
                digest: corral::model::Digest::of(b"component v1").to_string(),
                limits: limits(),
                max_attempts: 3,
                http: None,
            },
            b"component v1",
            at(0.0),
        )
        .await
        .unwrap();
    let id = enqueue(&db, "acme", NewJob::new("work", r#"{"n": 1}"#), at(0.0)).await;
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Available);
    assert_eq!((job.attempt, job.max_attempts, job.version), (0, 3, 1));
    assert_eq!(
        job.digest,
        corral::model::Digest::of(b"component v1").to_string()
    );

    let claimed = db.store.job_claim(&claim_at(at(1.0), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.id, c.attempt, c.limits), (id, 1, limits()));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&c.input).unwrap(),
        serde_json::json!({"n": 1})
    );
    assert_eq!(state(&db, "acme", id).await, JobState::Running);
    assert!(
        db.store
            .job_claim(&claim_at(at(1.0), 10))
            .await
            .unwrap()
            .is_empty(),
        "claimed once"
    );

    let applied = db
        .store
        .job_finish(&[finish(
            c,
            OutcomeKind::Completed,
            Some(r#"{"ok":true}"#),
            at(2.0),
        )])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(job.result.as_deref().unwrap()).unwrap(),
        serde_json::json!({"ok": true})
    );
    assert_eq!(job.started_at, Some(at(1.0)));
    assert_eq!(job.finished_at, Some(at(2.0)));
    let attempts = db.store.attempt_list("acme", id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0], attempt(c, OutcomeKind::Completed, at(2.0)));
    assert_eq!(
        db.store
            .job_counts(Some("acme"))
            .await
            .unwrap()
            .get(&JobState::Completed),
        Some(&1)
    );
}

async fn scheduled_jobs_wait_for_their_time(db: TestDb) {
    setup(&db).await;
    let mut job = NewJob::new("work", "{}");
    job.run_at = Some(at(60.0));
    let id = enqueue(&db, "acme", job, at(0.0)).await;
    assert_eq!(state(&db, "acme", id).await, JobState::Scheduled);
    assert!(
        db.store
            .job_claim(&claim_at(at(59.9), 10))
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = db.store.job_claim(&claim_at(at(60.0), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
}

async fn retries_back_off_then_dead_letter(db: TestDb) {
    setup(&db).await;
    let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    // Attempt 1 fails at t=1: backoff ceiling 10 s (jitter unit 1.0 = the whole ceiling).
    let c = db
        .store
        .job_claim(&claim_at(at(1.0), 1))
        .await
        .unwrap()
        .remove(0);
    db.store
        .job_finish(&[finish(&c, OutcomeKind::Failed, None, at(1.0))])
        .await
        .unwrap();
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Retrying);
    assert_eq!(job.run_at, at(11.0));
    assert_eq!(job.error.as_deref(), Some("boom"));
    assert!(
        db.store
            .job_claim(&claim_at(at(10.9), 1))
            .await
            .unwrap()
            .is_empty(),
        "still backing off"
    );
    // Attempt 2 fails at t=11: the ceiling doubles to 20 s.
    let c = db
        .store
        .job_claim(&claim_at(at(11.0), 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.attempt, 2);
    db.store
        .job_finish(&[finish(&c, OutcomeKind::Trapped, None, at(11.0))])
        .await
        .unwrap();
    assert_eq!(
        db.store.job_get("acme", id).await.unwrap().unwrap().run_at,
        at(31.0)
    );
    // Attempt 3 is the last: dead.
    let c = db
        .store
        .job_claim(&claim_at(at(31.0), 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.attempt, 3);
    db.store
        .job_finish(&[finish(&c, OutcomeKind::Timeout, None, at(31.0))])
        .await
        .unwrap();
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.finished_at, Some(at(31.0)));
    let outcomes: Vec<_> = db
        .store
        .attempt_list("acme", id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        vec![
            OutcomeKind::Failed,
            OutcomeKind::Trapped,
            OutcomeKind::Timeout
        ]
    );
    // The cap: attempt 10 would wait 10 * 2^9 s, capped at 60.
    assert_eq!(backoff().ceiling(10), Duration::from_secs(60));
}

async fn deterministic_failures_dead_letter_at_once(db: TestDb) {
    setup(&db).await;
    for outcome in [
        OutcomeKind::Fatal,
        OutcomeKind::FuelExhausted,
        OutcomeKind::MemoryExceeded,
        OutcomeKind::InvalidResult,
        OutcomeKind::OutputTooLarge,
    ] {
        let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
        let c = db
            .store
            .job_claim(&claim_at(at(0.0), 1))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(c.id, id);
        db.store
            .job_finish(&[finish(&c, outcome, None, at(1.0))])
            .await
            .unwrap();
        assert_eq!(state(&db, "acme", id).await, JobState::Dead, "{outcome}");
    }
}

async fn idempotency_keys_return_the_first_job(db: TestDb) {
    setup(&db).await;
    db.tenant("other", 10).await;
    db.plugin("other", "work", b"component v1", limits(), 3)
        .await;
    let mut job = NewJob::new("work", r#"{"first": true}"#);
    job.idempotency_key = Some("order-42".into());
    let first = db
        .store
        .job_insert_batch("acme", &[job.clone()], at(0.0))
        .await
        .unwrap();
    assert!(first[0].created);
    job.input = r#"{"first": false}"#.into();
    let again = db
        .store
        .job_insert_batch("acme", &[job.clone()], at(1.0))
        .await
        .unwrap();
    assert_eq!(again[0].id, first[0].id);
    assert!(!again[0].created);
    // Keys are per tenant.
    let other = db
        .store
        .job_insert_batch("other", &[job], at(1.0))
        .await
        .unwrap();
    assert!(other[0].created);
    assert_ne!(other[0].id, first[0].id);
    assert_eq!(db.job_total("acme").await, 1);
}

/// Many copies of one keyed batch at once (a client retrying on a timeout
/// while its first request still runs) store it once: every copy answers
/// the same ids; a different batch under the key is refused and stores
/// nothing; the key is pruned with the finished jobs.
async fn a_request_key_taken_concurrently_stores_one_batch(db: TestDb) {
    setup(&db).await;
    let key = RequestKey::new("import-7".into(), "fingerprint-a".into()).unwrap();
    let jobs = vec![NewJob::new("work", "{}"); 3];
    let copies = (0..8).map(|_| {
        let (store, key, jobs) = (db.store.clone(), key.clone(), jobs.clone());
        tokio::spawn(async move {
            store
                .job_insert_keyed("acme", &jobs, Some(&key), None, at(0.0))
                .await
        })
    });
    let mut answers = Vec::new();
    for copy in copies {
        answers.push(copy.await.unwrap().expect("every copy is answered"));
    }
    let created: Vec<_> = answers.iter().filter(|a| a[0].created).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let ids: Vec<_> = created[0].iter().map(|i| i.id).collect();
    for answer in &answers {
        assert_eq!(answer.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
    }
    assert_eq!(db.job_total("acme").await, 3);

    let other = RequestKey::new("import-7".into(), "fingerprint-b".into()).unwrap();
    let refused = db
        .store
        .job_insert_keyed("acme", &jobs, Some(&other), None, at(1.0))
        .await;
    assert!(
        matches!(refused, Err(StoreError::KeyReused(_))),
        "{refused:?}"
    );
    assert_eq!(db.job_total("acme").await, 3);

    // Once pruned (with the jobs it led to), the key is free again.
    let claimed = db.store.job_claim(&claim_at(at(2.0), 10)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let finishes: Vec<_> = claimed
        .iter()
        .map(|c| finish(c, OutcomeKind::Completed, Some("1"), at(3.0)))
        .collect();
    db.store.job_finish(&finishes).await.unwrap();
    db.store.job_prune(at(10.0), 100).await.unwrap();
    let fresh = db
        .store
        .job_insert_keyed("acme", &jobs, Some(&other), None, at(11.0))
        .await
        .unwrap();
    assert!(fresh.iter().all(|i| i.created));
}

async fn batches_are_all_or_nothing(db: TestDb) {
    setup(&db).await;
    let good = NewJob::new("work", "{}");
    let mut unknown = NewJob::new("nope", "{}");
    let err = db
        .store
        .job_insert_batch("acme", &[good.clone(), unknown.clone()], at(0.0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPlugin(_)), "{err}");
    assert!(
        err.to_string().contains("`nope`"),
        "names the plugin: {err}"
    );
    unknown.plugin = "work".into();
    unknown.version = Some(9);
    let err = db
        .store
        .job_insert_batch("acme", &[good.clone(), unknown], at(0.0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no version 9"), "{err}");
    let mut bad = good.clone();
    bad.input = "{not json".into();
    let err = db
        .store
        .job_insert_batch("acme", &[good.clone(), bad], at(0.0))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("job 1: input is not valid JSON"),
        "{err}"
    );
    let mut nul = good.clone();
    nul.input = r#"{"a": "\u0000"}"#.into();
    let err = db
        .store
        .job_insert_batch("acme", &[nul], at(0.0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NUL character"), "{err}");
    let too_many = vec![good.clone(); MAX_BATCH_JOBS + 1];
    assert!(matches!(
        db.store.job_insert_batch("acme", &too_many, at(0.0)).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(db.job_total("acme").await, 0, "nothing stored");

    let full = vec![good; MAX_BATCH_JOBS];
    let ids = db
        .store
        .job_insert_batch("acme", &full, at(0.0))
        .await
        .unwrap();
    assert_eq!(ids.len(), MAX_BATCH_JOBS);
    assert!(ids.iter().all(|i| i.created));
    assert_eq!(
        db.store.job_counts(Some("acme")).await.unwrap()[&JobState::Available],
        MAX_BATCH_JOBS as u64
    );
}

async fn priorities_order_claims(db: TestDb) {
    setup(&db).await;
    let mut low = NewJob::new("work", r#""low""#);
    low.priority = -5;
    let mut high = NewJob::new("work", r#""high""#);
    high.priority = 10;
    let normal = NewJob::new("work", r#""normal""#);
    db.store
        .job_insert_batch("acme", &[low, normal, high], at(0.0))
        .await
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        let c = db
            .store
            .job_claim(&claim_at(at(1.0), 1))
            .await
            .unwrap()
            .remove(0);
        order.push(c.input);
    }
    assert_eq!(order, vec![r#""high""#, r#""normal""#, r#""low""#]);
}

async fn cancellation_of_waiting_and_running_jobs(db: TestDb) {
    setup(&db).await;
    let waiting = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    assert_eq!(
        db.store.job_cancel("acme", waiting, at(1.0)).await.unwrap(),
        CancelResult::Cancelled
    );
    let job = db.store.job_get("acme", waiting).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.finished_at),
        (JobState::Cancelled, Some(at(1.0)))
    );
    assert!(
        db.store
            .job_claim(&claim_at(at(2.0), 10))
            .await
            .unwrap()
            .is_empty(),
        "a cancelled job is never claimed"
    );
    assert_eq!(
        db.store.job_cancel("acme", waiting, at(2.0)).await.unwrap(),
        CancelResult::AlreadyFinished
    );
    assert_eq!(
        db.store
            .job_cancel("acme", uuid::Uuid::now_v7(), at(2.0))
            .await
            .unwrap(),
        CancelResult::NotFound
    );

    let running = enqueue(&db, "acme", NewJob::new("work", "{}"), at(3.0)).await;
    let c = db
        .store
        .job_claim(&claim_at(at(3.0), 1))
        .await
        .unwrap()
        .remove(0);
    let mut events = db.store.subscribe();
    assert_eq!(
        db.store
            .job_cancel("other-tenant", running, at(4.0))
            .await
            .unwrap(),
        CancelResult::NotFound
    );
    assert_eq!(
        db.store.job_cancel("acme", running, at(4.0)).await.unwrap(),
        CancelResult::Requested
    );
    // The host running it hears of it at once...
    let heard = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(StoreEvent::CancelRequested(id)) = events.recv().await {
                return id;
            }
        }
    })
    .await
    .expect("a cancel notification");
    assert_eq!(heard, running);
    // ...and at its next heartbeat too, should the notification be lost.
    let beat = db
        .store
        .job_heartbeat(&[lease_of(&c)], at(5.0), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(beat.cancel_requested, vec![running]);
    // A running job that then fails retryably is cancelled, not retried.
    db.store
        .job_finish(&[finish(&c, OutcomeKind::Failed, None, at(6.0))])
        .await
        .unwrap();
    assert_eq!(state(&db, "acme", running).await, JobState::Cancelled);

    let stopped = enqueue(&db, "acme", NewJob::new("work", "{}"), at(7.0)).await;
    let c = db
        .store
        .job_claim(&claim_at(at(7.0), 1))
        .await
        .unwrap()
        .remove(0);
    db.store.job_cancel("acme", stopped, at(7.5)).await.unwrap();
    db.store
        .job_finish(&[finish(&c, OutcomeKind::Cancelled, None, at(8.0))])
        .await
        .unwrap();
    let job = db.store.job_get("acme", stopped).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.finished_at),
        (JobState::Cancelled, Some(at(8.0)))
    );
    assert_eq!(
        db.store.attempt_list("acme", stopped).await.unwrap()[0].outcome,
        OutcomeKind::Cancelled
    );

    // Many at once, in one transaction: each as one cancel would, the
    // results in the order asked.
    let waiting = enqueue(&db, "acme", NewJob::new("work", "{}"), at(9.0)).await;
    let running = enqueue(&db, "acme", NewJob::new("work", "{}"), at(9.0)).await;
    let claimed = claimed_ids(&db, at(9.0), 1).await;
    let (running, waiting) = if claimed == vec![running] {
        (running, waiting)
    } else {
        (waiting, running)
    };
    db.tenant("other-tenant", 10).await;
    db.plugin("other-tenant", "work", b"component v1", limits(), 3)
        .await;
    let theirs = enqueue(&db, "other-tenant", NewJob::new("work", "{}"), at(9.0)).await;
    let unknown = uuid::Uuid::now_v7();
    let results = db
        .store
        .job_cancel_many(
            "acme",
            &[stopped, running, unknown, waiting, theirs, waiting],
            at(10.0),
        )
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            CancelResult::AlreadyFinished,
            CancelResult::Requested,
            CancelResult::NotFound,
            CancelResult::Cancelled,
            CancelResult::NotFound,
            CancelResult::Cancelled,
        ]
    );
    assert_eq!(state(&db, "acme", waiting).await, JobState::Cancelled);
    assert_eq!(state(&db, "acme", running).await, JobState::Running);
    assert_eq!(
        state(&db, "other-tenant", theirs).await,
        JobState::Available,
        "another tenant's job is untouched"
    );
    assert_eq!(
        db.store
            .job_cancel_many("acme", &[], at(10.0))
            .await
            .unwrap(),
        vec![]
    );
}

async fn stale_tokens_are_fenced_out(db: TestDb) {
    setup(&db).await;
    let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let c = db
        .store
        .job_claim(&claim_at(at(0.0), 1))
        .await
        .unwrap()
        .remove(0);
    let mut forged = finish(&c, OutcomeKind::Completed, Some("1"), at(1.0));
    forged.lease_token = uuid::Uuid::new_v4();
    assert_eq!(db.store.job_finish(&[forged]).await.unwrap(), vec![false]);
    assert_eq!(state(&db, "acme", id).await, JobState::Running);

    // The lease (30 s) expires; the janitor records the loss and retries the job.
    assert!(
        db.store
            .job_expired_leases(at(29.0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let config = corral::worker::WorkerConfig {
        backoff: backoff(),
        ..Default::default()
    };
    let expired = corral::worker::janitor::expire_leases(db.store.as_ref(), &config, at(31.0))
        .await
        .unwrap();
    assert_eq!(expired, 1);
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Retrying);
    let attempts = db.store.attempt_list("acme", id).await.unwrap();
    assert_eq!(
        (attempts[0].outcome, attempts[0].host_id.as_str()),
        (OutcomeKind::LeaseExpired, "host-a")
    );
    // A second janitor pass (another host's) finds nothing to do.
    assert_eq!(
        corral::worker::janitor::expire_leases(db.store.as_ref(), &config, at(32.0))
            .await
            .unwrap(),
        0
    );
    // The slow worker's late outcome changes nothing.
    let late = finish(&c, OutcomeKind::Completed, Some("1"), at(33.0));
    assert_eq!(
        db.store
            .job_finish(std::slice::from_ref(&late))
            .await
            .unwrap(),
        vec![false]
    );
    // Nor after the job was claimed again (attempt 2, a new token).
    let again = db
        .store
        .job_claim(&claim_at(at(60.0), 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempt, 2);
    assert_eq!(db.store.job_finish(&[late]).await.unwrap(), vec![false]);
    assert_eq!(
        db.store
            .job_finish(&[finish(&again, OutcomeKind::Completed, Some("2"), at(61.0))])
            .await
            .unwrap(),
        vec![true]
    );
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.result.as_deref()),
        (JobState::Completed, Some("2"))
    );
}

async fn max_concurrency_is_respected(db: TestDb) {
    db.tenant("small", 2).await;
    db.plugin("small", "work", b"c", limits(), 3).await;
    db.store
        .job_insert_batch("small", &vec![NewJob::new("work", "{}"); 5], at(0.0))
        .await
        .unwrap();
    let first = db.store.job_claim(&claim_at(at(1.0), 10)).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(
        db.store
            .job_claim(&claim_at(at(1.0), 10))
            .await
            .unwrap()
            .is_empty(),
        "at its limit"
    );
    db.store
        .job_finish(&[finish(
            &first[0],
            OutcomeKind::Completed,
            Some("1"),
            at(2.0),
        )])
        .await
        .unwrap();
    assert_eq!(
        db.store
            .job_claim(&claim_at(at(2.0), 10))
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn claims_are_fair_across_tenants(db: TestDb) {
    db.tenant("big", 100).await;
    db.tenant("small", 100).await;
    db.plugin("big", "work", b"c", limits(), 3).await;
    db.plugin("small", "work", b"c", limits(), 3).await;
    db.store
        .job_insert_batch("big", &vec![NewJob::new("work", "{}"); 500], at(0.0))
        .await
        .unwrap();
    let late = enqueue(&db, "small", NewJob::new("work", "{}"), at(10.0)).await;
    // The small tenant's newer job is in the very next claim of two, despite the backlog.
    let claimed = db.store.job_claim(&claim_at(at(11.0), 2)).await.unwrap();
    assert!(claimed.iter().any(|c| c.id == late), "{claimed:?}");
    let tenants: std::collections::BTreeSet<_> =
        claimed.iter().map(|c| c.tenant_id.as_str()).collect();
    assert_eq!(tenants.len(), 2);
}

/// The claim ring: a claim visits the tenants whose turn is oldest, so
/// claims of one job serve tenants in turn, not the first tenant again.
/// Tenants "a", "b" and "c", each with three jobs waiting since `at(0)`.
async fn three_tenants_with_three_jobs(db: &TestDb) {
    for tenant in ["a", "b", "c"] {
        db.tenant(tenant, 100).await;
        db.plugin(tenant, "work", b"c", limits(), 3).await;
        db.store
            .job_insert_batch(tenant, &vec![NewJob::new("work", "{}"); 3], at(0.0))
            .await
            .unwrap();
    }
}

async fn claims_take_turns_across_tenants(db: TestDb) {
    three_tenants_with_three_jobs(&db).await;
    let mut served = Vec::new();
    for second in 1..=4 {
        let claimed = db
            .store
            .job_claim(&claim_at(at(f64::from(second)), 1))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{claimed:?}");
        served.push(claimed[0].tenant_id.clone());
    }
    assert_eq!(served, ["a", "b", "c", "a"]);
}

/// A claim for named tenants (the worker's fresh lane) takes only their
/// jobs, in their turn, however old the turn of the others is, and leaves
/// the others' turn as it was.
async fn a_claim_for_named_tenants_takes_only_their_jobs(db: TestDb) {
    three_tenants_with_three_jobs(&db).await;
    let named = |tenants: &[&str], second: f64, limit: u32| ClaimRequest {
        tenants: Some(tenants.iter().map(|t| t.to_string()).collect()),
        ..claim_at(at(second), limit)
    };
    let claimed = db.store.job_claim(&named(&["c"], 1.0, 10)).await.unwrap();
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    assert!(
        claimed.iter().all(|job| job.tenant_id == "c"),
        "{claimed:?}"
    );
    let claimed = db
        .store
        .job_claim(&named(&["b", "c"], 2.0, 2))
        .await
        .unwrap();
    let tenants: Vec<&str> = claimed.iter().map(|j| j.tenant_id.as_str()).collect();
    assert_eq!(tenants, ["b", "b"]);
    assert!(
        db.store
            .job_claim(&named(&["c", "nobody"], 3.0, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // "a" was never served, so an unnamed claim starts with it.
    let claimed = db.store.job_claim(&claim_at(at(4.0), 1)).await.unwrap();
    assert_eq!(claimed[0].tenant_id, "a");
}

/// A tenant whose claimable jobs are all taken leaves the front of the
/// ring until its next job is due, and comes back for it: a scheduled job,
/// then a new one.
async fn a_drained_tenant_comes_back_when_a_job_is_due(db: TestDb) {
    setup(&db).await;
    let now = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let mut later = NewJob::new("work", "{}");
    later.run_at = Some(at(10.0));
    let later = enqueue(&db, "acme", later, at(0.0)).await;
    assert_eq!(claimed_ids(&db, at(1.0), 10).await, [now]);
    assert!(claimed_ids(&db, at(5.0), 10).await.is_empty());
    assert_eq!(claimed_ids(&db, at(10.0), 10).await, [later]);
    assert!(claimed_ids(&db, at(11.0), 10).await.is_empty());
    let again = enqueue(&db, "acme", NewJob::new("work", "{}"), at(12.0)).await;
    assert_eq!(claimed_ids(&db, at(12.0), 10).await, [again]);
}

/// The ring's order is each tenant's last turn, oldest first. A tenant
/// whose jobs all wait for later is passed over until one is due, then it
/// is next, ahead of tenants with a backlog served since: the worker's
/// fresh lane relies on this, claiming one job to get a new one.
async fn a_tenant_whose_job_comes_due_is_next_in_the_turn(db: TestDb) {
    for tenant in ["a", "b", "c"] {
        db.tenant(tenant, 100).await;
        db.plugin(tenant, "work", b"c", limits(), 3).await;
    }
    let mut later = NewJob::new("work", "{}");
    later.run_at = Some(at(10.0));
    enqueue(&db, "a", later, at(0.0)).await;
    for tenant in ["b", "c"] {
        db.store
            .job_insert_batch(tenant, &vec![NewJob::new("work", "{}"); 3], at(0.0))
            .await
            .unwrap();
    }
    let mut served = Vec::new();
    // "a" was never served: once its job is due, it is next.
    for second in [1.0, 2.0, 3.0, 11.0, 12.0, 13.0] {
        let claimed = db.store.job_claim(&claim_at(at(second), 1)).await.unwrap();
        assert_eq!(claimed.len(), 1, "at {second}: {claimed:?}");
        served.push(claimed[0].tenant_id.clone());
    }
    assert_eq!(served, ["b", "c", "b", "a", "c", "b"]);
}

/// Whether each tenant is in the turn (its ring row awake), by name.
async fn ring_fronts(db: &TestDb) -> Vec<String> {
    let sql = "SELECT tenant_id || CASE WHEN sleeping THEN ' out' ELSE ' in' END \
               FROM claim_ring ORDER BY tenant_id";
    corral_tests::db_texts(db, sql, sql).await
}

/// The claim reads one job more per tenant than it takes, and checks only
/// the tenants it did not see keep a waiting job: a tenant leaves the front
/// with its last claimable job, whether that claim took all its jobs, the
/// last few, or exactly as many as it could; one that keeps jobs stays.
async fn a_tenant_leaves_the_front_with_its_last_claimable_job(db: TestDb) {
    for (tenant, jobs) in [("five", 5), ("three", 3), ("many", 40)] {
        db.tenant(tenant, 100).await;
        db.plugin(tenant, "work", b"c", limits(), 3).await;
        db.store
            .job_insert_batch(tenant, &vec![NewJob::new("work", "{}"); jobs], at(0.0))
            .await
            .unwrap();
    }
    // Three tenants with room share a claim of 6: twice an even share is
    // 4 each, so every tenant gives 2 and "five" and "many" keep jobs.
    let claimed = db.store.job_claim(&claim_at(at(1.0), 6)).await.unwrap();
    assert_eq!(claimed.len(), 6);
    assert_eq!(ring_fronts(&db).await, ["five in", "many in", "three in"]);
    // 9 more: every tenant's next jobs. "three" gives its last one (more
    // than it has would be its share), "five" its last three.
    let claimed = db.store.job_claim(&claim_at(at(2.0), 9)).await.unwrap();
    let from = |tenant: &str| claimed.iter().filter(|c| c.tenant_id == tenant).count();
    assert_eq!((from("five"), from("three")), (3, 1), "{claimed:?}");
    assert_eq!(ring_fronts(&db).await, ["five out", "many in", "three out"]);
    // "many" alone: a claim of exactly what it has left takes all of it.
    let claimed = db.store.job_claim(&claim_at(at(3.0), 33)).await.unwrap();
    assert_eq!(claimed.len(), 33);
    assert_eq!(
        ring_fronts(&db).await,
        ["five out", "many out", "three out"]
    );
    assert!(claimed_ids(&db, at(4.0), 10).await.is_empty());
}

/// A tenant whose jobs all wait for later is out of the turn (asleep) from
/// its enqueue on, so no claim steps over it; once its time has come, each
/// claim wakes at most as many such tenants as it may visit, oldest alarm
/// first, and the next claims wake the rest: none is lost.
async fn tenants_whose_jobs_wait_for_later_sleep_until_a_claim_wakes_them(db: TestDb) {
    for (tenant, due) in [("a", 13.0), ("b", 11.0), ("c", 12.0)] {
        db.tenant(tenant, 100).await;
        db.plugin(tenant, "work", b"c", limits(), 3).await;
        let mut later = NewJob::new("work", "{}");
        later.run_at = Some(at(due));
        enqueue(&db, tenant, later, at(0.0)).await;
    }
    assert_eq!(ring_fronts(&db).await, ["a out", "b out", "c out"]);
    assert!(claimed_ids(&db, at(5.0), 2).await.is_empty());
    assert_eq!(ring_fronts(&db).await, ["a out", "b out", "c out"]);
    // All three are due; a claim of 2 wakes "b" and "c", whose alarms are
    // the oldest, and takes their jobs; they go back to sleep with nothing
    // left to wait for.
    let claimed = db.store.job_claim(&claim_at(at(20.0), 2)).await.unwrap();
    let mut tenants: Vec<_> = claimed.iter().map(|c| c.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    assert_eq!(tenants, ["b", "c"]);
    assert_eq!(ring_fronts(&db).await, ["a out", "b out", "c out"]);
    // The next claim wakes "a".
    let claimed = db.store.job_claim(&claim_at(at(21.0), 2)).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].tenant_id, "a");
    // A new job due now: its tenant sleeps until the next claim wakes it.
    enqueue(&db, "b", NewJob::new("work", "{}"), at(22.0)).await;
    assert_eq!(ring_fronts(&db).await, ["a out", "b out", "c out"]);
    let claimed = db.store.job_claim(&claim_at(at(22.0), 1)).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].tenant_id, "b");
}

async fn shutdown_hands_jobs_back_without_using_an_attempt(db: TestDb) {
    setup(&db).await;
    let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let c = db
        .store
        .job_claim(&claim_at(at(0.0), 1))
        .await
        .unwrap()
        .remove(0);
    assert!(
        !db.store
            .job_release(id, uuid::Uuid::new_v4(), None)
            .await
            .unwrap(),
        "fenced"
    );
    assert!(db.store.job_release(id, c.lease_token, None).await.unwrap());
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Available, 0));
    let again = db
        .store
        .job_claim(&claim_at(at(1.0), 1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempt, 1);
    assert!(db.store.attempt_list("acme", id).await.unwrap().is_empty());
}

async fn heartbeats_keep_leases_alive(db: TestDb) {
    setup(&db).await;
    let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let mut req = claim_at(at(0.0), 1);
    req.lease = Duration::from_secs(5);
    let c = db.store.job_claim(&req).await.unwrap().remove(0);
    let beat = db
        .store
        .job_heartbeat(&[lease_of(&c)], at(4.0), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(beat.held, vec![id]);
    assert!(
        db.store
            .job_expired_leases(at(8.0), 10)
            .await
            .unwrap()
            .is_empty(),
        "extended to t=9"
    );
    assert_eq!(
        db.store
            .job_expired_leases(at(9.5), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        db.store
            .job_heartbeat(
                &[Lease {
                    job_id: id,
                    lease_token: uuid::Uuid::new_v4(),
                }],
                at(4.0),
                Duration::from_secs(5)
            )
            .await
            .unwrap()
            .held
            .is_empty()
    );
}

async fn retention_prunes_finished_jobs(db: TestDb) {
    setup(&db).await;
    let old = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let c = db
        .store
        .job_claim(&claim_at(at(0.0), 1))
        .await
        .unwrap()
        .remove(0);
    db.store
        .job_finish(&[finish(&c, OutcomeKind::Completed, Some("1"), at(1.0))])
        .await
        .unwrap();
    let waiting = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let pruned = corral::worker::janitor::prune(db.store.as_ref(), at(100.0))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert!(db.store.job_get("acme", old).await.unwrap().is_none());
    assert!(
        db.store.attempt_list("acme", old).await.unwrap().is_empty(),
        "attempts go with their job"
    );
    assert!(
        db.store.job_get("acme", waiting).await.unwrap().is_some(),
        "unfinished jobs stay"
    );
}

async fn tenants_see_only_their_own_jobs(db: TestDb) {
    setup(&db).await;
    db.tenant("other", 10).await;
    let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    assert!(db.store.job_get("other", id).await.unwrap().is_none());
    assert!(db.store.attempt_list("other", id).await.unwrap().is_empty());
    // Another tenant cannot enqueue against acme's plugin.
    let err = db
        .store
        .job_insert_batch("other", &[NewJob::new("work", "{}")], at(0.0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownPlugin(_)), "{err}");
}

async fn plugin_versions_are_pinned_at_enqueue(db: TestDb) {
    setup(&db).await;
    assert_eq!(
        db.plugin("acme", "work", b"component v1", limits(), 3)
            .await,
        1,
        "same bytes, same version"
    );
    let v1_job = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    assert_eq!(
        db.plugin("acme", "work", b"component v2", limits(), 3)
            .await,
        2
    );
    let v2_job = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let mut pinned = NewJob::new("work", "{}");
    pinned.version = Some(1);
    let v1_again = enqueue(&db, "acme", pinned, at(0.0)).await;
    for (id, expected) in [(v1_job, 1), (v2_job, 2), (v1_again, 1)] {
        assert_eq!(
            db.store.job_get("acme", id).await.unwrap().unwrap().version,
            expected
        );
    }
    let blob = db
        .store
        .plugin_blob_get(&corral::model::Digest::of(b"component v2").to_string())
        .await
        .unwrap();
    assert_eq!(blob.as_deref(), Some(&b"component v2"[..]));
    let latest = db
        .store
        .plugin_get("acme", "work", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((latest.version, latest.size), (2, 12));
    db.plugin("acme", "another", b"x", limits(), 3).await;
    let listed: Vec<_> = db
        .store
        .plugin_list("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect();
    assert_eq!(
        listed,
        vec![("another".to_string(), 1), ("work".to_string(), 2)]
    );
    let versions: Vec<_> = db
        .store
        .plugin_versions("acme", "work")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(versions, vec![2, 1]);
    assert!(db.store.plugin_list("nobody").await.unwrap().is_empty());
}

async fn tenants_and_keys_are_administered(db: TestDb) {
    use corral::model::{ApiKey, Quotas};
    db.tenant("beta", 4).await;
    db.tenant("alpha", 8).await;
    let ids: Vec<_> = db
        .store
        .tenant_list()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec!["alpha", "beta"]);
    let quotas = Quotas {
        max_concurrency: 2,
        enqueue_per_minute: 10,
        ..Quotas::default()
    };
    let updated = db
        .store
        .tenant_update_quotas("alpha", &quotas)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.quotas, quotas);
    assert_eq!(
        db.store.tenant_get("alpha").await.unwrap().unwrap().quotas,
        quotas
    );
    assert!(
        db.store
            .tenant_update_quotas("nobody", &quotas)
            .await
            .unwrap()
            .is_none()
    );
    let err = db
        .store
        .tenant_insert(&db.store.tenant_get("alpha").await.unwrap().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    assert!(!db.store.admin_key_exists().await.unwrap());
    let key = |id: &str, tenant: Option<&str>| ApiKey {
        id: id.into(),
        tenant_id: tenant.map(String::from),
        secret_hash: corral::keys::hash("secret"),
        created_at: at(0.0),
        revoked_at: None,
    };
    db.store
        .api_key_insert(&key("admin01", None))
        .await
        .unwrap();
    assert!(db.store.admin_key_exists().await.unwrap());
    db.store
        .api_key_insert(&key("alpha01", Some("alpha")))
        .await
        .unwrap();
    let err = db
        .store
        .api_key_insert(&key("ghost01", Some("ghost")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(matches!(
        db.store
            .api_key_insert(&key("alpha01", Some("alpha")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // A tenant's key comes with its tenant's quotas, an admin key without.
    let alpha = db.store.tenant_get("alpha").await.unwrap().unwrap();
    assert_eq!(
        db.store.api_key_get("alpha01").await.unwrap(),
        Some(KeyLookup {
            key: key("alpha01", Some("alpha")),
            quotas: Some(alpha.quotas),
        })
    );
    assert_eq!(
        db.store.api_key_get("admin01").await.unwrap(),
        Some(KeyLookup {
            key: key("admin01", None),
            quotas: None,
        })
    );
    assert!(db.store.api_key_get("nope").await.unwrap().is_none());
    // Only the owning tenant revokes, once.
    assert!(
        !db.store
            .api_key_revoke(Some("beta"), "alpha01", at(1.0))
            .await
            .unwrap()
    );
    assert!(
        db.store
            .api_key_revoke(Some("alpha"), "alpha01", at(1.0))
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .api_key_revoke(Some("alpha"), "alpha01", at(2.0))
            .await
            .unwrap()
    );
    assert_eq!(
        db.store
            .api_key_get("alpha01")
            .await
            .unwrap()
            .unwrap()
            .key
            .revoked_at,
        Some(at(1.0))
    );
}

async fn progress_is_recorded_fenced_and_announced(db: TestDb) {
    setup(&db).await;
    let id = enqueue(&db, "acme", NewJob::new("work", "{}"), at(0.0)).await;
    let progress = |percent, message: &str| Progress {
        percent,
        message: message.into(),
    };
    let mut events = db.store.subscribe();
    let c = db
        .store
        .job_claim(&claim_at(at(0.0), 1))
        .await
        .unwrap()
        .remove(0);
    let update = ProgressUpdate {
        job_id: id,
        lease_token: c.lease_token,
        progress: progress(40, "reading"),
    };
    db.store
        .job_progress(std::slice::from_ref(&update))
        .await
        .unwrap();
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.progress, Some(progress(40, "reading")));
    let announced = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(StoreEvent::JobProgress(job)) = events.recv().await {
                return job;
            }
        }
    })
    .await
    .expect("a progress event");
    assert_eq!(announced, id);

    // A stale lease changes nothing.
    let forged = ProgressUpdate {
        lease_token: uuid::Uuid::new_v4(),
        progress: progress(99, "forged"),
        ..update.clone()
    };
    db.store.job_progress(&[forged]).await.unwrap();
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.progress, Some(progress(40, "reading")));

    // The outcome carries the last report.
    let mut done = finish(&c, OutcomeKind::Completed, Some("1"), at(1.0));
    done.progress = Some(progress(100, "done"));
    assert_eq!(db.store.job_finish(&[done]).await.unwrap(), vec![true]);
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.progress, Some(progress(100, "done")));
    // After the finish, a late periodic write is fenced out.
    db.store.job_progress(&[update]).await.unwrap();
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.progress, Some(progress(100, "done")));
}

async fn deleted_versions_leave_tombstones(db: TestDb) {
    setup(&db).await;
    db.plugin("acme", "work", b"component v2", limits(), 3)
        .await;
    let mut pinned = NewJob::new("work", "{}");
    pinned.version = Some(1);
    let id = enqueue(&db, "acme", pinned.clone(), at(0.0)).await;
    assert_eq!(
        db.store
            .plugin_delete("acme", "work", 1, at(1.0))
            .await
            .unwrap(),
        PluginDelete::InUse(1)
    );
    assert_eq!(
        db.store
            .plugin_delete("acme", "work", 7, at(1.0))
            .await
            .unwrap(),
        PluginDelete::NotFound
    );
    assert_eq!(
        db.store
            .plugin_delete("other", "work", 1, at(1.0))
            .await
            .unwrap(),
        PluginDelete::NotFound
    );
    assert_eq!(
        db.store.job_cancel("acme", id, at(2.0)).await.unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(
        db.store
            .plugin_delete("acme", "work", 1, at(3.0))
            .await
            .unwrap(),
        PluginDelete::Deleted
    );
    assert_eq!(
        db.store
            .plugin_delete("acme", "work", 1, at(3.0))
            .await
            .unwrap(),
        PluginDelete::NotFound
    );
    assert!(
        db.store
            .plugin_get("acme", "work", Some(1))
            .await
            .unwrap()
            .is_none()
    );
    let versions: Vec<u32> = db
        .store
        .plugin_versions("acme", "work")
        .await
        .unwrap()
        .iter()
        .map(|p| p.version)
        .collect();
    assert_eq!(versions, vec![2]);
    // The job that named it keeps its record.
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.version, 1);
    assert!(matches!(
        db.store.job_insert_batch("acme", &[pinned], at(4.0)).await,
        Err(StoreError::UnknownPlugin(_))
    ));

    // Deleting the latest makes the one before it the latest; numbers are
    // never reused.
    assert_eq!(
        db.store
            .plugin_delete("acme", "work", 2, at(5.0))
            .await
            .unwrap(),
        PluginDelete::Deleted
    );
    assert!(
        db.store
            .plugin_get("acme", "work", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.store.plugin_list("acme").await.unwrap().is_empty());
    assert!(matches!(
        db.store
            .job_insert_batch("acme", &[NewJob::new("work", "{}")], at(6.0))
            .await,
        Err(StoreError::UnknownPlugin(_))
    ));
    db.plugin("acme", "work", b"component v2", limits(), 3)
        .await;
    let latest = db
        .store
        .plugin_get("acme", "work", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 3);
}

async fn the_enqueue_rate_window_counts_per_minute(db: TestDb) {
    setup(&db).await;
    let rate = |jobs, now| {
        let store = db.store.clone();
        async move { store.enqueue_rate_take("acme", jobs, 5, now).await.unwrap() }
    };
    // T0 is a whole minute.
    assert!(rate(3, at(0.0)).await);
    assert!(rate(2, at(30.0)).await);
    assert!(!rate(1, at(59.9)).await, "5 of 5 used");
    assert!(!rate(6, at(60.0)).await, "more than the rate never fits");
    assert!(rate(5, at(60.0)).await, "a new minute");
    db.store
        .enqueue_rate_return("acme", 2, at(61.0))
        .await
        .unwrap();
    assert!(rate(2, at(62.0)).await, "given back");
    assert!(!rate(1, at(63.0)).await);
    assert!(matches!(
        db.store.enqueue_rate_take("nobody", 1, 5, at(0.0)).await,
        Err(StoreError::NotFound(_))
    ));
}

/// An insert given the tenant's rate counts its batch against it (on
/// PostgreSQL in a statement before the insert, on SQLite in the insert's
/// transaction; the rule is the same): the whole batch must fit, or it is
/// refused whole and nothing is stored or counted; jobs a job's
/// idempotency key answered are given back; a request key's replay and a
/// refused insert count nothing.
async fn an_insert_counts_its_batch_against_the_rate(db: TestDb) {
    use corral::store::RateLimit;
    setup(&db).await;
    let insert = |jobs: Vec<NewJob>, key: Option<RequestKey>, now| {
        let store = db.store.clone();
        async move {
            store
                .job_insert_keyed(
                    "acme",
                    &jobs,
                    key.as_ref(),
                    Some(RateLimit { per_minute: 5 }),
                    now,
                )
                .await
        }
    };
    let work = |n| vec![NewJob::new("work", "{}"); n];
    let keyed = |key: &str| NewJob {
        idempotency_key: Some(key.into()),
        ..NewJob::new("work", "{}")
    };
    let refused = |outcome: Result<Vec<corral::store::Inserted>, StoreError>| {
        matches!(outcome, Err(StoreError::RateLimited { per_minute: 5, .. }))
    };
    // T0 is a whole minute.
    assert_eq!(insert(work(3), None, at(0.0)).await.unwrap().len(), 3);
    assert!(refused(insert(work(3), None, at(1.0)).await), "6 of 5");
    assert_eq!(db.job_total("acme").await, 3, "nothing of it stored");
    assert!(matches!(
        insert(vec![NewJob::new("nope", "{}")], None, at(2.0)).await,
        Err(StoreError::UnknownPlugin(_))
    ));
    let key = RequestKey::new("import-1".into(), "fingerprint".into()).unwrap();
    let first = insert(work(2), Some(key.clone()), at(3.0)).await.unwrap();
    assert!(
        first.iter().all(|i| i.created),
        "5 of 5: the unknown plugin counted nothing"
    );
    let replay = insert(work(2), Some(key), at(4.0)).await.unwrap();
    assert!(
        replay.iter().all(|i| !i.created),
        "a replay answers, uncounted"
    );
    assert!(refused(insert(work(1), None, at(5.0)).await));
    // A new minute: jobs found by their key are given back.
    assert!(insert(vec![keyed("a")], None, at(60.0)).await.unwrap()[0].created);
    let mut batch = work(3);
    batch.push(keyed("a"));
    let answered = insert(batch, None, at(61.0)).await.unwrap();
    assert_eq!(answered.iter().filter(|i| i.created).count(), 3);
    assert_eq!(
        insert(work(1), None, at(62.0)).await.unwrap().len(),
        1,
        "1 + 3 + 1 of 5"
    );
    assert!(refused(insert(work(1), None, at(63.0)).await));
    assert_eq!(db.job_total("acme").await, 3 + 2 + 1 + 3 + 1);
}

/// Every enqueue is announced to subscribers (`JobsAvailable`, what wakes
/// the workers), naming its tenant (what the fresh lane claims for): on
/// PostgreSQL by the ring trigger in the insert's statement, on SQLite by
/// the store after the commit; alone (one statement committed on its own),
/// under a request key, and counted against a rate.
async fn new_jobs_are_announced(db: TestDb) {
    use corral::store::RateLimit;
    setup(&db).await;
    let key = RequestKey::new("import-1".into(), "fingerprint".into()).unwrap();
    let ways = [
        (None, None),
        (Some(&key), None),
        (None, Some(RateLimit { per_minute: 100 })),
    ];
    for (key, rate) in ways {
        let mut events = db.store.subscribe();
        // Whatever was announced before this enqueue does not count.
        while events.try_recv().is_ok() {}
        db.store
            .job_insert_keyed("acme", &[NewJob::new("work", "{}")], key, rate, Utc::now())
            .await
            .unwrap();
        let announced = async {
            loop {
                match events.recv().await {
                    Ok(StoreEvent::JobsAvailable(Some(tenant))) if tenant == "acme" => return,
                    Ok(_) => {}
                    Err(e) => panic!("events: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), announced)
            .await
            .unwrap_or_else(|_| panic!("no JobsAvailable for an enqueue ({key:?}, {rate:?})"));
    }
}

async fn waiting_jobs_are_counted_up_to_a_cap(db: TestDb) {
    setup(&db).await;
    let jobs: Vec<NewJob> = (0..5).map(|_| NewJob::new("work", "{}")).collect();
    db.store
        .job_insert_batch("acme", &jobs, at(0.0))
        .await
        .unwrap();
    assert_eq!(db.store.job_waiting_count("acme", 100).await.unwrap(), 5);
    assert_eq!(db.store.job_waiting_count("acme", 3).await.unwrap(), 3);
    db.store.job_claim(&claim_at(at(0.0), 2)).await.unwrap();
    assert_eq!(db.store.job_waiting_count("acme", 100).await.unwrap(), 3);
    assert_eq!(db.store.job_waiting_count("other", 100).await.unwrap(), 0);
}

/// The schema refuses the names `model::Name` refuses and takes those it
/// takes (migration 0017 rewrote PostgreSQL's checks of the rule): a job's
/// queue and a tenant's id, written through the store, which leaves the
/// rule to the model and the schema.
async fn the_schema_holds_the_name_rule(db: TestDb) {
    setup(&db).await;
    let longest = "a".repeat(63);
    let too_long = "a".repeat(64);
    for (name, good) in [
        ("a", true),
        ("0-a_b", true),
        (longest.as_str(), true),
        ("", false),
        (too_long.as_str(), false),
        ("-a", false),
        ("_a", false),
        ("Ab", false),
        ("a b", false),
        ("a\n", false),
        ("\u{e9}", false),
    ] {
        let model = corral::model::Name::parse("queue", name);
        assert_eq!(model.is_ok(), good, "the model and {name:?}");
        let mut job = NewJob::new("work", "{}");
        job.queue = name.into();
        let stored = db.store.job_insert_batch("acme", &[job], at(0.0)).await;
        assert_eq!(stored.is_ok(), good, "queue {name:?}: {stored:?}");
        let tenant = db
            .store
            .tenant_insert(&corral::model::Tenant {
                id: name.into(),
                name: name.into(),
                quotas: Default::default(),
                created_at: at(0.0),
            })
            .await;
        assert_eq!(tenant.is_ok(), good, "tenant {name:?}: {tenant:?}");
    }
}

/// What a migrated schema is made of, one line per fact: each column with
/// its nullability, each index (table, name, unique or not, partial or not,
/// its columns), and per table its counts of CHECK constraints and foreign
/// keys. Constraint-backed indexes (primary keys, UNIQUE) are left out: the
/// two backends name them differently, and the columns and checks cover them.
async fn schema_facts(db: &TestDb) -> std::collections::BTreeSet<String> {
    const POSTGRES: [&str; 4] = [
        "SELECT table_name || '.' || column_name || CASE WHEN is_nullable = 'NO' \
           THEN ' not null' ELSE ' null' END \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
        "SELECT 'index ' || t.relname || ' ' || i.relname \
           || CASE WHEN x.indisunique THEN ' unique' ELSE '' END \
           || CASE WHEN x.indpred IS NOT NULL THEN ' partial' ELSE '' END || ' (' \
           || (SELECT string_agg(coalesce(a.attname, 'expression'), ',' ORDER BY k.ord) \
               FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord) \
               LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) \
           || ')' \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
        "SELECT 'checks ' || conrelid::regclass::text || ' ' || count(*) \
         FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace \
         GROUP BY conrelid",
        "SELECT 'foreign keys ' || conrelid::regclass::text || ' ' || count(*) \
         FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace \
         GROUP BY conrelid",
    ];
    const SQLITE: [&str; 4] = [
        "SELECT m.name || '.' || p.name || CASE WHEN p.\"notnull\" = 1 \
           THEN ' not null' ELSE ' null' END \
         FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
        "SELECT 'index ' || m.tbl_name || ' ' || m.name \
           || CASE WHEN l.\"unique\" = 1 THEN ' unique' ELSE '' END \
           || CASE WHEN l.partial = 1 THEN ' partial' ELSE '' END || ' (' \
           || (SELECT group_concat(coalesce(name, 'expression'), ',') \
               FROM (SELECT name FROM pragma_index_info(m.name) ORDER BY seqno)) \
           || ')' \
         FROM sqlite_master m JOIN pragma_index_list(m.tbl_name) l ON l.name = m.name \
         WHERE m.type = 'index' AND l.origin = 'c' AND m.tbl_name <> '_sqlx_migrations'",
        // SQLite keeps no catalog of checks: count them in each table's
        // definition, which ALTER TABLE keeps up to date.
        "SELECT 'checks ' || name || ' ' \
           || ((length(upper(sql)) - length(replace(upper(sql), 'CHECK', ''))) / 5) \
         FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
           AND name <> '_sqlx_migrations' AND upper(sql) LIKE '%CHECK%'",
        "SELECT 'foreign keys ' || m.name || ' ' || count(DISTINCT f.id) \
         FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
         WHERE m.type = 'table' GROUP BY m.name",
    ];
    let mut facts = std::collections::BTreeSet::new();
    for (postgres, sqlite) in POSTGRES.into_iter().zip(SQLITE) {
        facts.extend(corral_tests::db_texts(db, postgres, sqlite).await);
    }
    facts
}

/// The differences between the two migrated schemas that are meant:
/// (backend that has the fact, the fact). Anything else is drift.
const INTENDED_SCHEMA_DIFFERENCES: &[(&str, &str)] = &[
    // SQLite has no boolean type: `jobs.cancel_requested`,
    // `schedules.paused` and `catch_up`, and `claim_ring.sleeping` are
    // INTEGER columns with a CHECK that they hold 0 or 1 (PostgreSQL's
    // BOOLEAN needs none).
    ("sqlite", "checks claim_ring 1"),
    ("postgres", "checks jobs 12"),
    ("sqlite", "checks jobs 13"),
    ("postgres", "checks schedules 1"),
    ("sqlite", "checks schedules 3"),
    // SQLite lets a PRIMARY KEY column that is not an INTEGER hold NULL (a
    // legacy quirk of its own) unless it also says NOT NULL, which these
    // do not; PostgreSQL's primary keys are never null. Every write names
    // these ids, and making them NOT NULL on SQLite would mean rebuilding
    // each table.
    ("postgres", "api_keys.id not null"),
    ("sqlite", "api_keys.id null"),
    ("postgres", "jobs.id not null"),
    ("sqlite", "jobs.id null"),
    ("postgres", "plugin_blobs.digest not null"),
    ("sqlite", "plugin_blobs.digest null"),
    ("postgres", "tenant_enqueue_rate.tenant_id not null"),
    ("sqlite", "tenant_enqueue_rate.tenant_id null"),
    ("postgres", "tenants.id not null"),
    ("sqlite", "tenants.id null"),
    ("postgres", "workflow_runs.id not null"),
    ("sqlite", "workflow_runs.id null"),
];

/// PostgreSQL's trigger functions plan their queries once per connection
/// and keep the plan, made for the rows of the first statement they saw;
/// each carries the settings that keep that plan fit for any batch (their
/// costs are measured in docs/benchmarks.md, not timed here):
/// - the state trigger joins a statement's old and new rows without nested
///   loops (after a one-row update, a batch of n rows compared n² pairs;
///   migration 0015);
/// - the trigger that deletes a deleted job's attempts probes `attempts`
///   by key per job (after a first large delete on a small table, every
///   later delete read all of `attempts`; migration 0016).
#[tokio::test]
async fn trigger_functions_keep_plans_fit_for_any_batch() {
    let db = TestDb::new(corral_tests::db::Kind::Postgres).await;
    let settings = corral_tests::db_texts(
        &db,
        "SELECT proname || ': ' || array_to_string(proconfig, ',') FROM pg_proc \
         WHERE proname IN ('corral_job_state_notify', 'corral_job_attempts_delete') \
         ORDER BY proname",
        "SELECT 'unused'",
    )
    .await;
    assert_eq!(
        settings,
        [
            "corral_job_attempts_delete: enable_hashjoin=off,enable_mergejoin=off",
            "corral_job_state_notify: enable_nestloop=off",
        ]
    );
}

/// A PostgreSQL claim is one call of a function each connection of the
/// store's claim pool makes in its temporary schema once the database is
/// migrated. A connection opened before the migrations has none, and the
/// first claim on it makes it; a connection opened later makes it as it
/// opens. Either way the claims take every job, and no function is left in
/// the database's own schema.
#[tokio::test]
async fn connections_opened_before_the_migrations_claim_all_the_same() {
    use sqlx::Connection;
    let early = TestDb::unmigrated_postgres().await;
    // Connections opened before the schema is there: the readiness check
    // fails on the store's pool, a claim on its claim pool.
    let claim = claim_at(at(0.0), 10);
    let (a, b) = tokio::join!(early.store.ready(), early.store.job_claim(&claim));
    assert!(a.is_err() && b.is_err());
    let migrating = corral::store::connect(&early.url).await.unwrap();
    migrating.migrate().await.unwrap();

    let mut conn = sqlx::PgConnection::connect(&early.url).await.unwrap();
    let functions = "SELECT count(*) FILTER (WHERE n.nspname LIKE 'pg\\_temp\\_%'), \
                            count(*) FILTER (WHERE n.nspname NOT LIKE 'pg\\_temp\\_%') \
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                     WHERE p.proname = 'corral_claim'";
    let (made, _): (i64, i64) = sqlx::query_as(functions)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    setup(&early).await;
    early
        .store
        .job_insert_batch("acme", &[NewJob::new("work", "{}")], at(0.0))
        .await
        .unwrap();
    assert_eq!(claimed_ids(&early, at(0.5), 10).await.len(), 1);
    // The claim made a function on its connection, opened before.
    let (made_now, kept): (i64, i64) = sqlx::query_as(functions)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(made_now, made + 1);

    let later = corral::store::connect(&early.url).await.unwrap();
    later
        .job_insert_batch("acme", &[NewJob::new("work", "{}")], at(2.0))
        .await
        .unwrap();
    let claimed = later.job_claim(&claim_at(at(2.5), 10)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(kept, 0);
}

/// On PostgreSQL an enqueue waits for no row of the claim ring (migration
/// 0020): neither for another transaction updating its tenant's row while
/// the row is asleep (another enqueue waking it, before 0020), nor for a
/// claim that holds the row to put the tenant to sleep, which then sleeps
/// without the new job in view. Each time the enqueue leaves a wake, and
/// the next claim takes its job. Before 0020 each enqueue here waited for
/// the other transaction (the test's patience) and, after that claim, the
/// job waited with its tenant asleep.
#[tokio::test]
async fn an_enqueue_waits_for_no_ring_row_and_its_wake_brings_the_claim() {
    use sqlx::Connection;
    let db = TestDb::new(corral_tests::db::Kind::Postgres).await;
    setup(&db).await;
    let enqueue = |secs: f64| {
        let store = db.store.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                store.job_insert_batch("acme", &[NewJob::new("work", "{}")], at(secs)),
            )
            .await
            .expect("the enqueue waited for the other transaction")
            .unwrap()
        }
    };
    // Another transaction, on a connection of its own, statement by statement.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    async fn run(conn: &mut sqlx::PgConnection, statements: &[&str]) {
        for statement in statements {
            sqlx::query(statement).execute(&mut *conn).await.unwrap();
        }
    }
    // A first job, claimed: the tenant's row is then asleep.
    enqueue(0.0).await;
    assert_eq!(claimed_ids(&db, at(1.0), 10).await.len(), 1);

    // The row asleep and being updated by the other transaction.
    run(
        &mut other,
        &[
            "BEGIN",
            "UPDATE claim_ring SET served_at = served_at WHERE tenant_id = 'acme'",
        ],
    )
    .await;
    enqueue(2.0).await;
    run(&mut other, &["ROLLBACK"]).await;
    assert_eq!(claimed_ids(&db, at(3.0), 10).await.len(), 1);

    // A row that joined the turn through its wakes and keeps jobs stays in
    // the turn (awake, due) once they are taken.
    for _ in 0..3 {
        enqueue(4.0).await;
    }
    assert_eq!(claimed_ids(&db, at(5.0), 1).await.len(), 1);
    assert_eq!(claimed_ids(&db, at(5.5), 1).await.len(), 1);
    // The row awake, then held by the other transaction as by a claim that
    // puts the tenant to sleep (one that found it drained).
    run(
        &mut other,
        &[
            "BEGIN",
            "SELECT 1 FROM claim_ring WHERE tenant_id = 'acme' FOR UPDATE",
            "UPDATE claim_ring SET sleeping = TRUE, ready_at = NULL WHERE tenant_id = 'acme'",
        ],
    )
    .await;
    // A burst meanwhile: one wake per enqueue statement, no more.
    for _ in 0..20 {
        enqueue(6.0).await;
    }
    run(&mut other, &["COMMIT"]).await;
    let wakes = || {
        corral_tests::db_texts(
            &db,
            "SELECT count(*)::text FROM claim_ring_wakes",
            "SELECT 'unused'",
        )
    };
    assert_eq!(wakes().await, ["20"]);
    // The job left waiting and the new ones, though the row sleeps; the one
    // claim that visits the tenant deletes all its due wakes.
    assert_eq!(claimed_ids(&db, at(7.0), 100).await.len(), 21);
    assert_eq!(wakes().await, ["0"]);
}

/// SQLite's WAL is checkpointed by the store's own connection, off the
/// writer's commits (docs/queue.md, "Durability"): after a burst of writes
/// far below the writer's backstop, the WAL-index (the `-shm` file, whose
/// layout is https://sqlite.org/walformat.html: the last valid frame at
/// byte 16, the frames copied into the database at byte 96) comes to show
/// every frame copied, though nothing but the store touches the database.
/// The writer alone would have left the frames since its last 1,000-page
/// checkpoint in the WAL.
#[tokio::test]
async fn sqlite_checkpoints_its_wal_off_the_writers_commits() {
    let db = TestDb::new(corral_tests::db::Kind::Sqlite).await;
    let mut changes = db.changes();
    setup(&db).await;
    for _ in 0..30 {
        db.store
            .job_insert_batch("acme", &vec![NewJob::new("work", "{}"); 100], at(0.0))
            .await
            .unwrap();
    }
    let file = db.url.strip_prefix("sqlite://").expect("a SQLite URL");
    let index = format!("{file}-shm");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let bytes = std::fs::read(&index).expect("the WAL-index");
        let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        let (frames, copied) = (word(16), word(96));
        assert!(
            frames < corral::store::sqlite::WAL_BACKSTOP_PAGES,
            "the writer's backstop: {frames} frames"
        );
        if frames > 0 && copied == frames {
            break;
        }
        // The checkpoint writes the database file: a change to wait on.
        assert!(
            changes.next(deadline).await,
            "{copied} of {frames} WAL frames checkpointed after a minute"
        );
    }
}

/// Both backends' migrations build the same schema: the same tables,
/// columns and nullability, indexes, checks and foreign keys, but for the
/// differences listed (and explained) in `INTENDED_SCHEMA_DIFFERENCES`.
#[tokio::test]
async fn both_backends_migrate_to_the_same_schema() {
    let postgres = schema_facts(&TestDb::new(corral_tests::db::Kind::Postgres).await).await;
    let sqlite = schema_facts(&TestDb::new(corral_tests::db::Kind::Sqlite).await).await;
    assert!(postgres.len() > 100, "{postgres:#?}");
    let mut drift = Vec::new();
    for (backend, only, other) in [
        ("postgres", &postgres, &sqlite),
        ("sqlite", &sqlite, &postgres),
    ] {
        for fact in only.difference(other) {
            if !INTENDED_SCHEMA_DIFFERENCES.contains(&(backend, fact.as_str())) {
                drift.push(format!("only on {backend}: {fact}"));
            }
        }
    }
    for (backend, fact) in INTENDED_SCHEMA_DIFFERENCES {
        let (has, lacks) = if *backend == "postgres" {
            (&postgres, &sqlite)
        } else {
            (&sqlite, &postgres)
        };
        if !has.contains(*fact) || lacks.contains(*fact) {
            drift.push(format!("listed as only on {backend} but is not: {fact}"));
        }
    }
    assert!(
        drift.is_empty(),
        "the schemas drifted:\n{}",
        drift.join("\n")
    );
}

/// A deployment restarting under fresh host ids leaves rows until the
/// janitor forgets them: one listing reads at most `MAX_HOSTS_LISTED`, by id.
async fn hosts_listed_are_bounded(db: TestDb) {
    use corral::store::{HostSeen, MAX_HOSTS_LISTED};
    let hosts = MAX_HOSTS_LISTED as usize + 5;
    for i in 0..hosts {
        db.store
            .host_beat(&HostSeen {
                host_id: format!("host-{i:05}"),
                concurrency: 4,
                started_at: at(0.0),
                seen_at: at(10.0),
            })
            .await
            .unwrap();
    }
    let listed = db.store.host_list(at(5.0)).await.unwrap();
    assert_eq!(listed.len(), MAX_HOSTS_LISTED as usize);
    let ids: Vec<&str> = listed.iter().map(|h| h.host_id.as_str()).collect();
    assert_eq!(ids.first(), Some(&"host-00000"));
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "listed by id");
    // Hosts not seen since `since` are not listed at all.
    assert!(db.store.host_list(at(11.0)).await.unwrap().is_empty());
}
