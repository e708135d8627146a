//! `just bench-claims`: what one claim costs as the number of tenants grows.
//!
//! Per backend, a fresh database holding T tenants (T = 1, 100, 1,000 and
//! 10,000), each with 20 waiting jobs and room to run them, then 40 claims
//! of up to 128 jobs (after 10 untimed), each timed alone; the claimed jobs
//! are handed back (untimed) so every claim sees the same database. One JSON line per
//! backend with the median and p90 per T, and the ratio of the median at
//! 10,000 tenants to the median at one (the same-run baseline): a claim
//! that visits every tenant grows with T, one that visits the claim ring's
//! front does not.
//!
//! Then, on the largest database, `SLEEPERS` more tenants whose one job is
//! due only tomorrow (delayed jobs, or retries in a backoff), and the same
//! claims again: `p50_sleepers_over_none` is the median with them over the
//! median without, on the same database in the same run: a claim whose
//! cost grows with such tenants (the turn stepping over each of them, or
//! a plan that reads the whole ring) shows here.
//!
//! Then, on the same database, what the writes of claimed jobs cost
//! beside other tenants' running jobs: `WRITES` batches of 128 outcomes
//! and heartbeats of 128 leases, timed alone, then again while
//! `OTHERS_RUNNING` jobs of other tenants run (claimed, never finished).
//! `writes.*_over_alone` is the second median over the first: a write
//! that finds its jobs by walking every running job of the cluster grows
//! with them (docs/benchmarks.md, "Plans that trusted the statistics").
//!
//! Last, on a database of 100 tenants analyzed while nothing waits,
//! claims of a burst of `BURST` jobs enqueued since, then the same once
//! the database is analyzed again: `after_burst.before_over_after` is near
//! 1 when no claim's plan trusts the statistics to say how many jobs wait
//! (docs/benchmarks.md, "Plans that trusted the statistics").
//!
//! Target: a claim of 128 with 10,000 tenants <= 5 ms at the median.
//!
//! Knobs: `CORRAL_BENCH_TENANTS=100,1000` (only those counts),
//! `CORRAL_BENCH_SLEEPERS=0` (no sleepers), and `CORRAL_BENCH_CLAIMS_SETUP`,
//! one statement run on each database once populated (what an index costs
//! a claim: `DROP INDEX jobs_tenant_id`; docs/benchmarks.md, "What each
//! index of a lease costs a claim").

use std::time::{Duration, Instant};

use corral::model::{Limits, NewJob, Quotas};
use corral::store::ClaimRequest;
use corral_tests::db::{Kind, TestDb, add_plugin, add_tenant};
use serde_json::json;

const TENANT_COUNTS: [usize; 4] = [1, 100, 1_000, 10_000];
const JOBS_PER_TENANT: usize = 20;
const CLAIMS: usize = 40;
const CLAIM_SIZE: u32 = 128;
/// Claims before the timed ones: statements prepared, pages cached.
const WARM_UP: usize = 10;
/// Tenants whose jobs all wait for later, added to the largest database.
const SLEEPERS: usize = 20_000;
/// Tasks adding them at once (PostgreSQL takes them in parallel).
const ADDERS: usize = 8;
/// Jobs of one tenant enqueued after the statistics were taken.
const BURST: usize = 50_000;
/// Finished jobs the statistics are taken on, before the burst.
const HISTORY: usize = 20_000;
/// Claims timed on each side of `claims_after_burst` (few: a claim that
/// walks every waiting job of the burst takes seconds).
const BURST_CLAIMS: usize = 10;
/// Batches of outcomes and heartbeats timed on each side of `time_writes`.
const WRITES: usize = 20;
/// Of each, untimed first (the statements prepared, the pages cached).
const WRITES_WARM_UP: usize = 3;
/// Jobs of other tenants left running for the second side: a cluster of
/// eight hosts at `--concurrency` 256.
const OTHERS_RUNNING: usize = 2_048;

fn main() {
    corral_tests::bench::runtime().block_on(async {
        for (kind, name) in corral_tests::bench::backends() {
            bench(kind, name).await;
        }
    });
}

/// A database with `tenants` tenants of `JOBS_PER_TENANT` waiting jobs each.
async fn populated(kind: Kind, tenants: usize) -> TestDb {
    let db = TestDb::new(kind).await;
    let jobs = vec![NewJob::new("work", "{}"); JOBS_PER_TENANT];
    let past = chrono::Utc::now() - chrono::Duration::seconds(60);
    for t in 0..tenants {
        let tenant = format!("t{t:05}");
        db.tenant(&tenant, 1_000).await;
        db.plugin(&tenant, "work", b"c", Limits::default(), 3).await;
        db.store
            .job_insert_batch(&tenant, &jobs, past)
            .await
            .expect("enqueue");
    }
    db
}

/// `count` tenants, each with one job due a day from now.
async fn add_sleepers(db: &TestDb, count: usize) {
    let mut job = NewJob::new("work", "{}");
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    let mut adders = tokio::task::JoinSet::new();
    for adder in 0..ADDERS {
        let (store, job) = (db.store.clone(), job.clone());
        adders.spawn(async move {
            for s in (adder..count).step_by(ADDERS) {
                let tenant = format!("s{s:06}");
                add_tenant(&*store, &tenant, Quotas::default().max_concurrency).await;
                add_plugin(&*store, &tenant, "work", b"c", Limits::default(), 3).await;
                store
                    .job_insert_batch(&tenant, std::slice::from_ref(&job), chrono::Utc::now())
                    .await
                    .expect("enqueue");
            }
        });
    }
    while let Some(done) = adders.join_next().await {
        done.expect("adder");
    }
}

/// Median and p90 of `CLAIMS` claims, in milliseconds, on a settled
/// database: PostgreSQL's autovacuum, which the writes of the setup start,
/// would otherwise share the two cores with the claims timed, more after
/// the larger setup, and the comparison would measure that. Then
/// `WARM_UP` claims untimed (the statements prepared, the pages cached).
async fn time_claims(db: &TestDb) -> (f64, f64, usize) {
    settle(db).await;
    claims_timed(db, WARM_UP, CLAIMS).await
}

/// Vacuum and analyze the database (PostgreSQL; nothing on SQLite).
async fn settle(db: &TestDb) {
    corral_tests::db_texts(db, "VACUUM ANALYZE", "SELECT 'nothing to settle'").await;
}

/// Median and p90 of `claims` claims after `warm_up` untimed, each handed
/// back, and the jobs per claim.
async fn claims_timed(db: &TestDb, warm_up: usize, claims: usize) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(claims);
    let mut claimed_total = 0;
    for round in 0..warm_up + claims {
        let started = Instant::now();
        let claimed = db.store.job_claim(&claim("bench")).await.expect("claim");
        if round >= warm_up {
            times.push(started.elapsed());
            claimed_total += claimed.len();
        }
        // Hand them back so the next claim sees the same database.
        for job in claimed {
            db.store
                .job_release(job.id, job.lease_token, None)
                .await
                .expect("release");
        }
    }
    times.sort();
    (
        ms(times[claims / 2]),
        ms(times[claims * 9 / 10]),
        claimed_total / claims,
    )
}

/// Claims of one tenant's burst of `BURST` jobs, enqueued after the
/// statistics were taken (on `HISTORY` finished jobs, none waiting: a
/// quiet hour), timed before any `ANALYZE` sees the burst, then again
/// once the database is settled. A claim whose plan trusts the statistics
/// to say how many jobs wait (walking the index of waiting jobs for every
/// job it leases) costs seconds here until the next `ANALYZE`.
async fn claims_after_burst(kind: Kind, name: &str) -> serde_json::Value {
    let db = TestDb::new(kind).await;
    let past = chrono::Utc::now() - chrono::Duration::seconds(60);
    let tenants = 100;
    for t in 0..tenants {
        let tenant = format!("t{t:05}");
        db.tenant(&tenant, 1_000).await;
        db.plugin(&tenant, "work", b"c", Limits::default(), 3).await;
        let jobs = vec![NewJob::new("work", "{}"); HISTORY / tenants];
        db.store
            .job_insert_batch(&tenant, &jobs, past)
            .await
            .expect("enqueue");
    }
    corral_tests::finish_all(&db, Ok("{}")).await;
    settle(&db).await;
    let jobs = vec![NewJob::new("work", "{}"); 1_000];
    for _ in 0..BURST / jobs.len() {
        db.store
            .job_insert_batch("t00000", &jobs, past)
            .await
            .expect("enqueue");
    }
    let (burst, _, per_claim) = claims_timed(&db, 1, BURST_CLAIMS).await;
    settle(&db).await;
    let (settled, _, _) = claims_timed(&db, 1, BURST_CLAIMS).await;
    eprintln!(
        "{name}: claims of a burst of {BURST} jobs: p50 {burst} ms before an ANALYZE \
         sees it, {settled} ms after, {per_claim} jobs"
    );
    json!({
        "burst": BURST,
        "claim_p50_ms_before_analyze": burst,
        "claim_p50_ms_after_analyze": settled,
        "before_over_after": ratio(burst, settled),
    })
}

/// A claim of up to `CLAIM_SIZE` jobs of any tenant, now, by `host`.
fn claim(host: &str) -> ClaimRequest {
    ClaimRequest {
        host_id: host.into(),
        now: chrono::Utc::now(),
        limit: CLAIM_SIZE,
        lease: Duration::from_secs(60),
        queues: None,
        tenants: None,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// `a / b`, to two decimals: each comparison the JSON line reports.
fn ratio(a: f64, b: f64) -> f64 {
    (a / b * 100.0).round() / 100.0
}

/// Medians, in milliseconds, of `WRITES` heartbeats of a claim's leases
/// and of `WRITES` batches of its outcomes (after `WRITES_WARM_UP` of each
/// untimed).
async fn time_writes(db: &TestDb) -> (f64, f64) {
    let (mut beats, mut outcomes) = (Vec::new(), Vec::new());
    for round in 0..WRITES_WARM_UP + WRITES {
        let claimed = db.store.job_claim(&claim("bench")).await.expect("claim");
        let now = chrono::Utc::now();
        let leases: Vec<_> = claimed.iter().map(corral_tests::lease_of).collect();
        let started = Instant::now();
        db.store
            .job_heartbeat(&leases, now, Duration::from_secs(60))
            .await
            .expect("heartbeat");
        let beat = started.elapsed();
        let finishes: Vec<_> = claimed
            .iter()
            .map(|job| corral_tests::finish_of(job, Ok("{}".into()), now))
            .collect();
        let started = Instant::now();
        let applied = db.store.job_finish(&finishes).await.expect("finish");
        let outcome = started.elapsed();
        assert!(applied.iter().all(|a| *a), "every outcome is applied");
        if round >= WRITES_WARM_UP {
            beats.push(beat);
            outcomes.push(outcome);
        }
    }
    beats.sort();
    outcomes.sort();
    (ms(beats[WRITES / 2]), ms(outcomes[WRITES / 2]))
}

/// The writes of claimed jobs timed alone, then beside `OTHERS_RUNNING`
/// running jobs of other tenants. The database is settled (vacuumed and
/// analyzed) once, first, while no job runs: its statistics then say what
/// they say in production whenever running jobs are a sliver of the table
/// (a busy hour after a quiet one, a burst of long jobs), which is when a
/// plan that walks every running job is chosen.
async fn writes_beside_running(db: &TestDb, name: &str) -> serde_json::Value {
    settle(db).await;
    let (beat_alone, outcomes_alone) = time_writes(db).await;
    let mut held = 0;
    while held < OTHERS_RUNNING {
        let claimed = db.store.job_claim(&claim("others")).await.expect("claim");
        assert!(!claimed.is_empty(), "enough jobs wait to run");
        held += claimed.len();
    }
    let (beat, outcomes) = time_writes(db).await;
    eprintln!(
        "{name}: a batch of {CLAIM_SIZE} outcomes {outcomes_alone} ms alone, {outcomes} ms beside \
         {held} running jobs; a heartbeat of {CLAIM_SIZE} leases {beat_alone} ms, {beat} ms"
    );
    json!({
        "others_running": held,
        "outcomes_p50_ms_alone": outcomes_alone,
        "outcomes_p50_ms": outcomes,
        "outcomes_over_alone": ratio(outcomes, outcomes_alone),
        "heartbeat_p50_ms_alone": beat_alone,
        "heartbeat_p50_ms": beat,
        "heartbeat_over_alone": ratio(beat, beat_alone),
    })
}

async fn bench(kind: Kind, name: &str) {
    let mut rows = serde_json::Map::new();
    let mut medians = Vec::new();
    // `CORRAL_BENCH_TENANTS=100,1000` measures only those counts.
    let counts: Vec<usize> = std::env::var("CORRAL_BENCH_TENANTS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| TENANT_COUNTS.to_vec());
    // `CORRAL_BENCH_SLEEPERS=0` leaves them out.
    let sleepers: usize = std::env::var("CORRAL_BENCH_SLEEPERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(SLEEPERS);
    // `CORRAL_BENCH_CLAIMS_SETUP="DROP INDEX jobs_tenant_id"` runs one
    // statement on each database once it is populated: what an index or a
    // setting costs a claim, measured without a migration.
    let setup = std::env::var("CORRAL_BENCH_CLAIMS_SETUP").ok();
    let mut largest = None;
    for tenants in counts {
        let db = populated(kind, tenants).await;
        if let Some(sql) = &setup {
            corral_tests::db_texts(&db, sql, sql).await;
        }
        let (p50, p90, per_claim) = time_claims(&db).await;
        eprintln!("{name}: {tenants} tenants: claim p50 {p50} ms, p90 {p90} ms, {per_claim} jobs");
        medians.push(p50);
        rows.insert(
            tenants.to_string(),
            json!({"claim_p50_ms": p50, "claim_p90_ms": p90, "jobs_per_claim": per_claim}),
        );
        largest = Some((db, tenants, p50));
    }
    let mut with_sleepers = serde_json::Value::Null;
    let mut writes = serde_json::Value::Null;
    if let Some((db, tenants, without)) = largest {
        if sleepers > 0 {
            add_sleepers(&db, sleepers).await;
            let (p50, p90, per_claim) = time_claims(&db).await;
            eprintln!(
                "{name}: {tenants} tenants and {sleepers} waiting for later: \
                 claim p50 {p50} ms, p90 {p90} ms, {per_claim} jobs"
            );
            with_sleepers = json!({
                "tenants": tenants,
                "sleepers": sleepers,
                "claim_p50_ms": p50,
                "claim_p90_ms": p90,
                "jobs_per_claim": per_claim,
                "p50_sleepers_over_none": ratio(p50, without),
            });
        }
        // (A database of a few tenants holds too few jobs to keep so many running.)
        if tenants * JOBS_PER_TENANT >= 4 * OTHERS_RUNNING {
            writes = writes_beside_running(&db, name).await;
        }
    }
    let at_most = medians.last().copied().unwrap_or(f64::MAX);
    let line = json!({
        "bench": "claims",
        "backend": name,
        "claim_size": CLAIM_SIZE,
        "jobs_per_tenant": JOBS_PER_TENANT,
        "tenants": rows,
        "with_sleepers": with_sleepers,
        "writes": writes,
        "after_burst": claims_after_burst(kind, name).await,
        "p50_10000_over_1": ratio(at_most, medians[0]),
        "target_p50_ms_at_10000": 5,
        "meets_target": at_most <= 5.0,
    });
    println!("{line}");
}
