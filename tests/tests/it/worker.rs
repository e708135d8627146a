//! The worker end to end, in process, on both backends: real plugins, real
//! sandbox, real database. Waits are on the store's notifications.

use std::sync::Arc;
use std::time::Duration;

use corral::model::{JobState, Limits, NewJob, OutcomeKind};
use corral::store::CancelResult;
use corral::worker::Worker;
use corral_tests::db::TestDb;
use corral_tests::worker::{Host, config};
use corral_tests::{plugin_bytes, runtime_arc};

const PATIENCE: Duration = Duration::from_secs(120);

corral_tests::on_both_backends!(
    outcomes_reach_their_states,
    a_running_attempt_is_cancelled,
    shutdown_hands_running_jobs_back,
    a_small_tenant_is_not_starved_by_a_backlog,
    a_workflow_runs_end_to_end,
    a_new_job_starts_while_every_slot_runs_a_long_job,
    the_fresh_lane_claims_the_announced_tenants_jobs,
    a_claim_the_database_lost_runs_again_and_its_first_attempt_stops,
    the_heartbeat_stops_an_attempt_whose_lease_is_gone,
);

async fn install(db: &TestDb, tenant: &str, plugins: &[&str]) {
    for name in plugins {
        db.plugin(tenant, name, &plugin_bytes(name), Limits::default(), 3)
            .await;
    }
}

async fn enqueue(db: &TestDb, tenant: &str, job: NewJob) -> uuid::Uuid {
    db.store
        .job_insert_batch(tenant, &[job], chrono::Utc::now())
        .await
        .expect("enqueue")[0]
        .id
}

async fn outcomes_reach_their_states(db: TestDb) {
    db.tenant("acme", 16).await;
    install(
        &db,
        "acme",
        &[
            "echo",
            "flaky",
            "fatal-error",
            "panic",
            "not-json",
            "nul-bytes",
        ],
    )
    .await;
    let echo = enqueue(&db, "acme", NewJob::new("echo", r#"{"hi": [1, 2]}"#)).await;
    let flaky = enqueue(
        &db,
        "acme",
        NewJob::new("flaky", r#"{"succeed_on_attempt": 3}"#),
    )
    .await;
    let fatal = enqueue(&db, "acme", NewJob::new("fatal-error", "{}")).await;
    let mut panic = NewJob::new("panic", "{}");
    panic.max_attempts = Some(2);
    let panic = enqueue(&db, "acme", panic).await;
    let not_json = enqueue(&db, "acme", NewJob::new("not-json", "{}")).await;
    let nul = enqueue(&db, "acme", NewJob::new("nul-bytes", "{}")).await;

    let host = Host::start(&db, config("host-a"));
    db.wait_until_drained(Some("acme"), PATIENCE).await;
    host.stop().await;

    let job = db.store.job_get("acme", echo).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(job.result.as_deref().unwrap()).unwrap(),
        serde_json::json!({"hi": [1, 2]})
    );
    let attempts = db.store.attempt_list("acme", echo).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].fuel_consumed > 0 && attempts[0].peak_memory_bytes > 0);
    assert_eq!(attempts[0].host_id, "host-a");

    let outcomes = |id| {
        let store = db.store.clone();
        async move {
            store
                .attempt_list("acme", id)
                .await
                .unwrap()
                .iter()
                .map(|a| a.outcome)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(state_of(&db, flaky).await, JobState::Completed);
    assert_eq!(
        outcomes(flaky).await,
        vec![
            OutcomeKind::Failed,
            OutcomeKind::Failed,
            OutcomeKind::Completed
        ]
    );
    assert_eq!(state_of(&db, fatal).await, JobState::Dead);
    assert_eq!(outcomes(fatal).await, vec![OutcomeKind::Fatal]);
    assert_eq!(state_of(&db, panic).await, JobState::Dead);
    assert_eq!(
        outcomes(panic).await,
        vec![OutcomeKind::Trapped, OutcomeKind::Trapped]
    );
    let panic_log = &db.store.attempt_list("acme", panic).await.unwrap()[0].log;
    assert!(panic_log.contains("panicked on purpose"), "{panic_log}");
    assert_eq!(state_of(&db, not_json).await, JobState::Dead);
    assert_eq!(outcomes(not_json).await, vec![OutcomeKind::InvalidResult]);
    // NUL characters in a guest's output are stored, replaced; never a stuck write.
    assert_eq!(state_of(&db, nul).await, JobState::Dead);
    let nul_attempt = &db.store.attempt_list("acme", nul).await.unwrap()[0];
    assert_eq!(nul_attempt.outcome, OutcomeKind::InvalidResult);
    assert!(
        nul_attempt.log.contains("out\u{FFFD}put"),
        "{}",
        nul_attempt.log
    );
}

async fn state_of(db: &TestDb, id: uuid::Uuid) -> JobState {
    db.store.job_get("acme", id).await.unwrap().unwrap().state
}

async fn a_running_attempt_is_cancelled(db: TestDb) {
    db.tenant("acme", 16).await;
    let limits = Limits {
        fuel: u64::MAX / 4,
        timeout_ms: 600_000,
        ..Limits::default()
    };
    db.plugin("acme", "spin", &plugin_bytes("spin"), limits, 3)
        .await;
    let id = enqueue(&db, "acme", NewJob::new("spin", "{}")).await;
    let host = Host::start(&db, config("host-a"));
    db.wait_for("acme", id, PATIENCE, |s| s == JobState::Running)
        .await;
    assert_eq!(
        db.store
            .job_cancel("acme", id, chrono::Utc::now())
            .await
            .unwrap(),
        CancelResult::Requested
    );
    db.wait_for("acme", id, PATIENCE, |s| s == JobState::Cancelled)
        .await;
    let attempts = db.store.attempt_list("acme", id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, OutcomeKind::Cancelled);
    host.stop().await;
}

/// A claim the database lost (a failover to a standby it had not reached,
/// a crash of SQLite's machine: docs/queue.md, "Durability"), made here by
/// putting the job's row back as it was before the claim while the host
/// runs the attempt. The job runs again on this host, the lost attempt is
/// not counted, and the new claim stops the old attempt instead of letting
/// it run on beside the new one, whose lease and place in the cancel map
/// its end must not take with it.
async fn a_claim_the_database_lost_runs_again_and_its_first_attempt_stops(db: TestDb) {
    let id = a_long_sleep(&db).await;
    // No heartbeat after the first (at start): what stops the first attempt
    // is the host's claim of the job again, not a heartbeat that finds its
    // lease gone.
    let host = Host::start(
        &db,
        corral::worker::WorkerConfig {
            heartbeat: Duration::from_secs(3600),
            ..config("host-a")
        },
    );
    let metrics = host.metrics();
    db.wait_for("acme", id, PATIENCE, |s| s == JobState::Running)
        .await;

    // Waiting again; the input of the second run a short sleep, so that
    // it ends.
    lose_the_claim(
        &db,
        id,
        [
            r#"state = 'available', input = '{"ms": 10}'::jsonb"#,
            r#"state = 'available', input = '{"ms": 10}'"#,
        ],
    )
    .await;

    db.wait_for("acme", id, PATIENCE, |s| s == JobState::Completed)
        .await;
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(job.attempt, 1, "the lost attempt is not counted");
    let attempts = db.store.attempt_list("acme", id).await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].outcome, OutcomeKind::Completed);
    // Once the host has stopped, every attempt task has ended: the first
    // one was stopped as lost (had it run on, the shutdown's grace, 30 s,
    // would have stopped it as handed back instead).
    host.stop().await;
    assert_eq!(
        leases_lost(&metrics).as_deref(),
        Some("corral_attempts_lease_lost_total 1")
    );
}

/// Tenant `acme` with `sleep`, and a job of it that sleeps far longer than
/// a test: only a stop ends its attempt.
async fn a_long_sleep(db: &TestDb) -> uuid::Uuid {
    db.tenant("acme", 16).await;
    let limits = Limits {
        timeout_ms: 10 * 60 * 1000,
        ..Limits::default()
    };
    db.plugin("acme", "sleep", &plugin_bytes("sleep"), limits, 3)
        .await;
    enqueue(db, "acme", NewJob::new("sleep", r#"{"ms": 600000}"#)).await
}

/// Put the running job's row back as a claim the database lost would
/// leave it: no lease, the attempt not counted, and `then` (PostgreSQL's
/// text, SQLite's) for its state.
async fn lose_the_claim(db: &TestDb, id: uuid::Uuid, then: [&str; 2]) {
    let sql = |then: &str| {
        format!(
            "UPDATE jobs SET attempt = attempt - 1, lease_token = NULL, \
                 lease_expires_at = NULL, leased_by = NULL, started_at = NULL, \
                 attempt_started_at = NULL, {then} \
             WHERE id = '{id}' AND state = 'running' RETURNING 'lost'"
        )
    };
    let lost = corral_tests::db_texts(db, &sql(then[0]), &sql(then[1])).await;
    assert_eq!(lost, ["lost"], "the job was running");
}

/// The line of the host's metrics that counts attempts stopped as lost.
fn leases_lost(metrics: &corral::metrics::Metrics) -> Option<String> {
    metrics
        .render(None, runtime_arc())
        .lines()
        .find(|line| line.starts_with("corral_attempts_lease_lost_total "))
        .map(str::to_owned)
}

/// A host whose heartbeat finds that it no longer holds an attempt's lease
/// (here the job's row is put back as waiting for tomorrow, as a claim the
/// database lost would leave it, and nothing claims it again) stops the
/// attempt and writes no outcome for it.
async fn the_heartbeat_stops_an_attempt_whose_lease_is_gone(db: TestDb) {
    let id = a_long_sleep(&db).await;
    // One slot: the claim loop claims again only once the attempt ends,
    // which is the signal the test waits on.
    let host = Host::start(
        &db,
        corral::worker::WorkerConfig {
            concurrency: 1,
            ..config("host-a")
        },
    );
    let metrics = host.metrics();
    let mut claims = host.worker().claims();
    db.wait_for("acme", id, PATIENCE, |s| s == JobState::Running)
        .await;
    let claimed = claims.borrow_and_update().loop_begun;

    // Waiting for tomorrow (SQLite keeps times as microseconds since the
    // epoch).
    lose_the_claim(
        &db,
        id,
        [
            "state = 'scheduled', run_at = now() + interval '1 day'",
            "state = 'scheduled', \
             run_at = (CAST(strftime('%s', 'now') AS INTEGER) + 86400) * 1000000",
        ],
    )
    .await;

    tokio::time::timeout(PATIENCE, claims.wait_for(|c| c.loop_begun > claimed))
        .await
        .expect("the attempt ends and its slot is free again")
        .expect("claims");
    assert_eq!(
        leases_lost(&metrics).as_deref(),
        Some("corral_attempts_lease_lost_total 1")
    );
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Scheduled, 0));
    assert!(db.store.attempt_list("acme", id).await.unwrap().is_empty());
    host.stop().await;
}

async fn shutdown_hands_running_jobs_back(db: TestDb) {
    db.tenant("acme", 16).await;
    db.plugin(
        "acme",
        "sleep",
        &plugin_bytes("sleep"),
        Limits::default(),
        3,
    )
    .await;
    let id = enqueue(&db, "acme", NewJob::new("sleep", r#"{"ms": 25000}"#)).await;
    let mut cfg = config("host-a");
    cfg.grace = Duration::from_millis(100);
    let host = Host::start(&db, cfg);
    db.wait_for("acme", id, PATIENCE, |s| s == JobState::Running)
        .await;
    host.stop().await;
    let job = db.store.job_get("acme", id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Available, 0),
        "handed back without using an attempt"
    );
    assert!(db.store.attempt_list("acme", id).await.unwrap().is_empty());
}

/// Tenant `big` (`big_cap` running jobs at most) with `backlog` waiting
/// `echo` jobs, and tenant `small` (8) with none; both have `echo`.
async fn backlog_beside_a_small_tenant(db: &TestDb, big_cap: u32, backlog: usize) {
    db.tenant("big", big_cap).await;
    db.tenant("small", 8).await;
    install(db, "big", &["echo"]).await;
    install(db, "small", &["echo"]).await;
    for start in (0..backlog).step_by(1000) {
        db.store
            .job_insert_batch(
                "big",
                &vec![NewJob::new("echo", "{}"); (backlog - start).min(1000)],
                chrono::Utc::now(),
            )
            .await
            .unwrap();
    }
}

async fn a_small_tenant_is_not_starved_by_a_backlog(db: TestDb) {
    backlog_beside_a_small_tenant(&db, 8, 20_000).await;
    let host = Host::start(&db, config("host-a"));
    let small: Vec<_> = db
        .store
        .job_insert_batch(
            "small",
            &vec![NewJob::new("echo", r#""small""#); 10],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    db.wait_until_drained(Some("small"), PATIENCE).await;
    let big = db.store.job_counts(Some("big")).await.unwrap();
    let big_waiting = big.get(&JobState::Available).copied().unwrap_or(0);
    host.stop().await;
    for job in &small {
        assert_eq!(state_for(&db, "small", job.id).await, JobState::Completed);
    }
    assert!(
        big_waiting > 0,
        "the small tenant's jobs finished only after the big backlog drained: {big:?}"
    );
}

async fn state_for(db: &TestDb, tenant: &str, id: uuid::Uuid) -> JobState {
    db.store.job_get(tenant, id).await.unwrap().unwrap().state
}

/// A host that claims faster than its outcomes are written stops at its
/// bound of claimed-but-unrecorded jobs (here the test holds the attempts
/// table, so no outcome is written). A job enqueued then is claimed at
/// once, by the fresh lane, not after the outcomes being written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_job_is_claimed_while_outcomes_wait_to_be_written() {
    use corral::worker::{FRESH_HEADROOM, MAX_FINISH_BATCH};
    use sqlx::Connection;
    let db = TestDb::new(corral_tests::db::Kind::Postgres).await;
    // Room for every claimed job: the tenants' caps are not what stops it.
    backlog_beside_a_small_tenant(&db, 1000, 1000).await;
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE attempts IN SHARE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let config = config("host-a");
    let bound = (config.concurrency + MAX_FINISH_BATCH) as u64;
    let mut changes = db.changes();
    let host = Host::start(&db, config);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while running(&db, "big").await < bound {
        assert!(changes.next(deadline).await, "the host reaches its bound");
    }
    let small = enqueue(&db, "small", NewJob::new("echo", "{}")).await;
    while state_for(&db, "small", small).await != JobState::Running {
        assert!(
            changes.next(deadline).await,
            "the new job is claimed while no outcome can be written"
        );
    }
    // The new job and the big tenant's together stay within the headroom.
    let big = running(&db, "big").await;
    assert!(
        big < bound + FRESH_HEADROOM as u64,
        "at most the headroom beyond the bound: {big} + 1"
    );
    // A tenant enqueueing one job at a time, each announced, cannot make
    // the host claim past the headroom while nothing is recorded.
    for _ in 0..50 {
        enqueue(&db, "small", NewJob::new("echo", "{}")).await;
        let held = running(&db, "big").await + running(&db, "small").await;
        assert!(
            held <= bound + FRESH_HEADROOM as u64,
            "{held} claimed past the bound and its headroom"
        );
    }
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    db.wait_until_drained(None, PATIENCE).await;
    host.stop().await;
    assert_eq!(state_for(&db, "small", small).await, JobState::Completed);
}

/// The running jobs of `tenant`.
async fn running(db: &TestDb, tenant: &str) -> u64 {
    let counts = db.store.job_counts(Some(tenant)).await.unwrap();
    counts.get(&JobState::Running).copied().unwrap_or(0)
}

/// A host with `concurrency` slots for [`long_beside_small`]'s jobs.
fn host_of_long_jobs(db: &TestDb, concurrency: usize) -> Host {
    Host::start(
        db,
        corral::worker::WorkerConfig {
            concurrency,
            // The long jobs are handed back at once when the test ends.
            grace: Duration::from_millis(100),
            ..config("host-a")
        },
    )
}

/// Tenant `long` with `sleep-forever` (its jobs hold their slots far longer
/// than a test), tenant `small` with `echo`.
async fn long_beside_small(db: &TestDb) {
    db.tenant("long", 100).await;
    db.tenant("small", 100).await;
    let limits = Limits {
        timeout_ms: 10 * 60 * 1000,
        ..Limits::default()
    };
    db.plugin(
        "long",
        "sleep-forever",
        &plugin_bytes("sleep-forever"),
        limits,
        1,
    )
    .await;
    install(db, "small", &["echo"]).await;
}

/// A host whose every slot runs a long job still starts a job enqueued
/// now (the fresh lane's slots), instead of making it wait for a long job
/// to end; and no more than the lane's slots beyond `concurrency`.
async fn a_new_job_starts_while_every_slot_runs_a_long_job(db: TestDb) {
    use corral::worker::FRESH_HEADROOM;
    const CONCURRENCY: usize = 2;
    long_beside_small(&db).await;
    let host = host_of_long_jobs(&db, CONCURRENCY);
    let mut changes = db.changes();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for _ in 0..CONCURRENCY {
        enqueue(&db, "long", NewJob::new("sleep-forever", "{}")).await;
    }
    while running(&db, "long").await < CONCURRENCY as u64 {
        assert!(changes.next(deadline).await, "the long jobs start");
    }
    let small = enqueue(&db, "small", NewJob::new("echo", "{}")).await;
    assert_eq!(
        db.wait_for("small", small, PATIENCE, |s| s.is_terminal())
            .await,
        JobState::Completed
    );
    assert_eq!(
        running(&db, "long").await,
        CONCURRENCY as u64,
        "the new job ran while the long jobs held every slot"
    );
    // More long jobs take the lane's slots, and no more.
    for _ in 0..FRESH_HEADROOM + 4 {
        enqueue(&db, "long", NewJob::new("sleep-forever", "{}")).await;
    }
    let most = (CONCURRENCY + FRESH_HEADROOM) as u64;
    while running(&db, "long").await < most {
        assert!(changes.next(deadline).await, "the lane's slots fill up");
    }
    let counts = db.store.job_counts(Some("long")).await.unwrap();
    assert_eq!(
        counts.get(&JobState::Running).copied(),
        Some(most),
        "no claim past the lane's slots: {counts:?}"
    );
    assert_eq!(
        counts.get(&JobState::Available).copied(),
        Some(4),
        "{counts:?}"
    );
    host.stop().await;
}

/// The fresh lane claims the jobs of the tenant an announcement names, not
/// whichever tenant's turn is oldest. Here every slot runs a long job and
/// "long" has a backlog whose turn is older than "small"'s (small was
/// served last): a claim of one job of the oldest turn would start a long
/// job on the lane's slot and leave small's new job waiting for a slot,
/// which never frees, and the test would fail at its patience.
async fn the_fresh_lane_claims_the_announced_tenants_jobs(db: TestDb) {
    const CONCURRENCY: usize = 2;
    const BACKLOG: usize = 20;
    long_beside_small(&db).await;
    // Long's jobs are announced before the host listens: its claim loop
    // takes them, the lane nothing.
    let mut events = db.store.subscribe();
    db.store
        .job_insert_batch(
            "long",
            &vec![NewJob::new("sleep-forever", "{}"); CONCURRENCY + BACKLOG],
            chrono::Utc::now(),
        )
        .await
        .expect("enqueue");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !matches!(
        tokio::time::timeout_at(deadline, events.recv()).await,
        Ok(Ok(corral::store::StoreEvent::JobsAvailable(Some(_))))
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "long's jobs are announced"
        );
    }
    let host = host_of_long_jobs(&db, CONCURRENCY);
    let mut changes = db.changes();
    while running(&db, "long").await < CONCURRENCY as u64 {
        assert!(changes.next(deadline).await, "the long jobs start");
    }
    let small_job = async || {
        let small = enqueue(&db, "small", NewJob::new("echo", "{}")).await;
        assert_eq!(
            db.wait_for("small", small, PATIENCE, |s| s.is_terminal())
                .await,
            JobState::Completed
        );
    };
    // The lane answers announcements in turn: by the end of small's first
    // job it has answered the host's own (on PostgreSQL its listener's
    // start names no tenant, and the lane may start one of long's jobs).
    small_job().await;
    let before = running(&db, "long").await;
    // Small was served after long's last turn.
    small_job().await;
    let counts = db.store.job_counts(Some("long")).await.unwrap();
    assert_eq!(
        counts.get(&JobState::Running).copied(),
        Some(before),
        "the lane took none of the backlog for small's announcements: {counts:?}"
    );
    host.stop().await;
}

/// A job committed while the claim loop's claim is in flight, holding its
/// tenant's ring row, is claimed by the fresh lane once that claim ends.
/// The lane's own claim meanwhile steps past the held row (SKIP LOCKED) and
/// finds nothing, and the loop's claim began before the job existed (its
/// `run_at` is after the claim's time), so neither takes it; here the loop
/// then has no slot left and its polling is an hour away, so only the
/// lane's claim after the loop's can. Without that claim the job waits for
/// the poll and the test fails at its patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_committed_during_a_claim_that_holds_its_tenant_is_claimed_after_it() {
    use sqlx::Connection;
    const CONCURRENCY: usize = 2;
    let db = TestDb::new(corral_tests::db::Kind::Postgres).await;
    long_beside_small(&db).await;
    let mut events = db.store.subscribe();
    // A job of a queue the host does not serve: the small tenant's ring row
    // stays in every turn, so the host's claim holds it.
    enqueue(
        &db,
        "small",
        NewJob {
            queue: "elsewhere".into(),
            ..NewJob::new("echo", "{}")
        },
    )
    .await;
    let mut long = Vec::new();
    for _ in 0..CONCURRENCY {
        long.push(enqueue(&db, "long", NewJob::new("sleep-forever", "{}")).await);
    }
    // Those three enqueues are announced before the host listens, so the
    // lane claims only for the job below.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for _ in 0..3 {
        while !matches!(
            tokio::time::timeout_at(deadline, events.recv()).await,
            Ok(Ok(corral::store::StoreEvent::JobsAvailable(Some(_))))
        ) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "enqueues are announced"
            );
        }
    }
    // The host's first claim leases the long jobs, and waits for this lock.
    let mut blocker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(long[0])
        .execute(&mut blocker)
        .await
        .unwrap();
    let host = Host::start(
        &db,
        corral::worker::WorkerConfig {
            concurrency: CONCURRENCY,
            queues: Some(vec!["default".into()]),
            poll_interval: Duration::from_secs(3600),
            grace: Duration::from_millis(100),
            ..config("host-a")
        },
    );
    let mut claims = host.worker().claims();
    tokio::time::timeout_at(deadline, claims.wait_for(|c| c.loop_in_flight()))
        .await
        .expect("the host's claim begins")
        .expect("claims");
    let small = enqueue(&db, "small", NewJob::new("echo", "{}")).await;
    // The fresh lane claims on the announcement, while the loop's claim
    // waits for the lock.
    tokio::time::timeout_at(deadline, claims.wait_for(|c| c.lane_ended >= 1))
        .await
        .expect("the fresh lane claims")
        .expect("claims");
    assert!(
        claims.borrow().loop_in_flight(),
        "the host's claim still waits"
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    assert_eq!(
        db.wait_for("small", small, PATIENCE, |s| s.is_terminal())
            .await,
        JobState::Completed,
        "the new job runs once the host's claim has let go of its tenant"
    );
    host.stop().await;
}

/// An outcome the database refuses (here a result PostgreSQL cannot store,
/// written past the runtime's checks) must not block the others behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_outcome_does_not_block_the_rest() {
    use corral::model::{Attempt, Finish, Transition};
    use corral::store::ClaimRequest;
    let db = TestDb::new(corral_tests::db::Kind::Postgres).await;
    db.tenant("acme", 16).await;
    db.plugin("acme", "echo", b"component", Limits::default(), 3)
        .await;
    db.store
        .job_insert_batch(
            "acme",
            &vec![NewJob::new("echo", "{}"); 5],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let claimed = db
        .store
        .job_claim(&ClaimRequest {
            host_id: "host-a".into(),
            now: chrono::Utc::now(),
            limit: 5,
            lease: Duration::from_secs(30),
            queues: None,
            tenants: None,
        })
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let finishes: Vec<Finish> = claimed
        .iter()
        .enumerate()
        .map(|(i, job)| Finish {
            workflow_run_id: None,
            progress: None,
            job_id: job.id,
            lease_token: job.lease_token,
            attempt: Attempt {
                attempt: job.attempt,
                outcome: OutcomeKind::Completed,
                message: None,
                started_at: now,
                finished_at: now,
                fuel_consumed: 1,
                peak_memory_bytes: 1,
                host_id: "host-a".into(),
                log: String::new(),
                log_dropped_bytes: 0,
                http: None,
            },
            transition: Transition::Complete {
                result: if i == 2 {
                    r#"{"a":"\u0000"}"#.into()
                } else {
                    "1".into()
                },
            },
        })
        .collect();
    let worker = Worker::new(
        db.store.clone(),
        Arc::clone(runtime_arc()),
        config("host-a"),
    );
    tokio::time::timeout(PATIENCE, worker.write_outcomes(&finishes))
        .await
        .expect("the recorder does not retry a refused outcome forever");
    let counts = db.store.job_counts(Some("acme")).await.unwrap();
    assert_eq!(counts.get(&JobState::Completed), Some(&4), "{counts:?}");
    assert_eq!(
        counts.get(&JobState::Running),
        Some(&1),
        "the refused one waits for its lease to expire"
    );
}

/// Wait (on the store's notifications) until the run finishes.
async fn wait_for_run(db: &TestDb, tenant: &str, id: uuid::Uuid) -> corral::workflow::WorkflowRun {
    let mut events = db.store.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let run = db
            .store
            .run_get(tenant, id)
            .await
            .expect("run_get")
            .expect("run exists");
        if run.state.is_terminal() {
            return run;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => events = db.store.subscribe(),
            Err(_) => panic!("run {id} still {} after {PATIENCE:?}", run.state),
        }
    }
}

/// A diamond whose middle fans out, run by a real worker with the `step`
/// plugin (which returns its input and the context it received): the
/// guest sees the run input and the upstream results.
async fn a_workflow_runs_end_to_end(db: TestDb) {
    use corral::store::NewRun;
    use serde_json::json;
    db.tenant("acme", 16).await;
    install(&db, "acme", &["step"]).await;
    let spec = serde_json::from_value(json!({"steps": [
        {"name": "split", "plugin": "step", "input": {"parts": ["x", "y", "z"]}},
        {"name": "each", "plugin": "step", "depends_on": ["split"],
         "for_each": "steps.split.input.parts", "max_parallel": 2},
        {"name": "side", "plugin": "step", "depends_on": ["split"]},
        {"name": "join", "plugin": "step", "depends_on": ["each", "side"]},
    ]}))
    .unwrap();
    db.store
        .workflow_insert("acme", "diamond", &spec, chrono::Utc::now())
        .await
        .expect("definition");
    let host = Host::start(&db, config("host-a"));
    let run = db
        .store
        .run_start(
            "acme",
            &NewRun {
                workflow: "diamond",
                version: None,
                input: r#"{"order": 42}"#,
                schedule: None,
                key: None,
            },
            chrono::Utc::now(),
        )
        .await
        .expect("run")
        .0;
    let done = wait_for_run(&db, "acme", run.id).await;
    host.stop().await;
    assert_eq!(
        done.state,
        corral::workflow::RunState::Completed,
        "{done:#?}"
    );
    let each = done.steps[1].result.clone().unwrap();
    assert_eq!(each.as_array().map(Vec::len), Some(3));
    assert_eq!(
        each[1]["input"],
        json!("y"),
        "element 1's input is its element"
    );
    assert_eq!(each[1]["context"]["item"], json!("y"));
    assert_eq!(each[1]["context"]["index"], json!(1));
    assert_eq!(
        done.steps[2].result.clone().unwrap()["input"],
        json!({"order": 42})
    );
    let join = done.steps[3].result.clone().unwrap();
    assert_eq!(join["context"]["input"], json!({"order": 42}));
    assert_eq!(
        join["context"]["steps"]["each"], each,
        "join sees the fan-out's results"
    );
    assert_eq!(
        join["context"]["steps"]["split"]["input"],
        json!({"parts": ["x", "y", "z"]})
    );
}
