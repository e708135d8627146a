//! The claim, written once for both dialects (docs/queue.md, "Claim").
//!
//! A claim visits only the tenants at the front of the claim ring (the
//! `claim_ring` table: tenants that may have claimable jobs, oldest turn
//! first), never every tenant, so its cost does not grow with the number of
//! tenants. On PostgreSQL it takes their ring rows `FOR NO KEY UPDATE SKIP
//! LOCKED`: claimers on other hosts take the next tenants instead of waiting,
//! and no two claimers ever lease jobs of one tenant at once, which is what
//! keeps `max_concurrency` exact across hosts without a global lock. On
//! SQLite the one writer serializes claims anyway.
//!
//! A ring row whose tenant has no job due is asleep, out of the turn; its
//! `ready_at` is its alarm. Only claims wake rows (the end of the turn of a
//! claim that visits them) and put them to sleep, so the turn never steps
//! over tenants whose jobs all wait for later, however many there are.
//!
//! One transaction, statement by statement (each statement after the lock
//! sees every claim committed before it took the lock):
//! 1. take the turn: lock up to `limit` awake ring rows, up to `limit`
//!    sleeping rows whose alarm has come (oldest alarm first) and, on
//!    PostgreSQL, the rows of up to `limit` tenants with a wake that has
//!    come (an enqueue's, which finds its tenant's row asleep or held by a
//!    claim putting it to sleep, and so waits for no one: migration 0020),
//!    and visit at most `limit` of them, oldest turn first, taking the wakes
//!    of those visited;
//! 2. pick: per tenant, free capacity (`max_concurrency` − running), its
//!    best waiting jobs, then the fair order across tenants;
//! 3. lease the picked jobs (those still waiting);
//! 4. read what the worker needs to run them (on PostgreSQL, which can
//!    write in `WITH`, 2–4 are one statement);
//! 5. end the turn: `served_at = now` for every tenant visited, each awake
//!    (woken, if it slept) unless it is left with no claimable job: then it
//!    gets `ready_at` = its next job's `run_at` (NULL when none waits) and
//!    goes to sleep until then. The pick reads one job more per tenant than
//!    it may take, so a tenant seen to keep a waiting job needs no check
//!    here: with many tenants, each of which gives one job of many, this
//!    step is one statement, not two.

use std::collections::{HashMap, HashSet};

use super::super::{Here, dialect};
use super::Tx;
use crate::model::{ClaimedJob, JobState};
use crate::store::codec::{At, Id, List};
use crate::store::rows::{CLAIM_COLUMNS, ClaimRow};
use crate::store::{ClaimRequest, StoreError, StoreEvent};

/// The states of a job waiting for a claim.
const WAITING: &str = "state IN ('scheduled', 'available', 'retrying')";

pub(in super::super) async fn claim(
    store: &Here,
    request: &ClaimRequest,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let now = At(request.now);
    let limit = i64::from(request.limit);
    let mut tx = Tx::begin(store).await?;

    // 1. The turn: the ring's front, skipping tenants another claim holds.
    // The oldest turn first: a tenant whose job has just come due after a
    // while with none is at the head, which is what lets the worker's fresh
    // lane claim one job and get the new one. The awake rows come through
    // the turn's index; the sleeping ones whose alarm has come through the
    // alarm index (at most `limit`, oldest alarm first; the next claim takes
    // the rest), and they join the turn in the same order. A visited row is
    // woken by the end of the turn, its one write in this claim: a wake of
    // its own before the turn wrote each such row twice, and PostgreSQL then
    // checked the ring's key to `tenants` at the second write, as the row
    // was new in the transaction (2–3 ms of a claim of 128 at 10,000
    // tenants, docs/benchmarks.md). A row taken but not visited stays as it
    // was until the next claim.
    // A claim for named tenants (the fresh lane's) takes the turn among
    // them only.
    // On PostgreSQL, a tenant whose enqueue found its row asleep, or held by
    // a claim putting it to sleep, has a wake instead (`claim_ring_wakes`,
    // migration 0020): it joins the turn as a due sleeping row does, and the
    // turn deletes the wakes it saw, in the same statement, so with the same
    // snapshot: a wake committed after it began is left for the next claim,
    // as its job may not be visible to this one. Both find the rows by key
    // from an array: as `IN (subquery)`, with many wakes waiting the planner
    // hashed a scan of the whole ring and of every wake (11.6 ms instead of
    // 0.9 at 30,000 tenants with 20,000 wakes, docs/benchmarks.md).
    let (woken, consumed) = if dialect::RING_WAKES {
        (
            format!(
                ", woken AS ( \
                    SELECT tenant_id, served_at FROM claim_ring WHERE tenant_id = ANY (ARRAY( \
                        SELECT tenant_id FROM claim_ring_wakes WHERE ready_at <= $1 \
                          AND ($3 IS NULL OR {named}) ORDER BY ready_at LIMIT $2)) {lock} \
                 )",
                named = dialect::any("tenant_id", 3),
                lock = dialect::NO_KEY_SKIP_LOCKED
            ),
            ", consumed AS ( \
                DELETE FROM claim_ring_wakes \
                WHERE tenant_id = ANY (ARRAY(SELECT tenant_id FROM visited)) AND ready_at <= $1 \
             )",
        )
    } else {
        (String::new(), "")
    };
    let visited: Vec<String> = sqlx::query_scalar(&format!(
        "WITH awake AS ( \
            SELECT tenant_id, served_at FROM claim_ring WHERE NOT sleeping AND ready_at <= $1 \
              AND ($3 IS NULL OR {named}) \
            ORDER BY served_at, tenant_id LIMIT $2 {lock} \
         ), due AS ( \
            SELECT tenant_id, served_at FROM claim_ring WHERE sleeping AND ready_at <= $1 \
              AND ($3 IS NULL OR {named}) \
            ORDER BY ready_at LIMIT $2 {lock} \
         ){woken}, visited AS ( \
            SELECT tenant_id, served_at FROM ( \
                SELECT * FROM awake UNION SELECT * FROM due {also_woken} \
            ) AS taken ORDER BY served_at, tenant_id LIMIT $2 \
         ){consumed} \
         SELECT tenant_id FROM visited ORDER BY served_at, tenant_id",
        named = dialect::any("tenant_id", 3),
        lock = dialect::NO_KEY_SKIP_LOCKED,
        also_woken = if dialect::RING_WAKES {
            "UNION SELECT * FROM woken"
        } else {
            ""
        },
    ))
    .bind(now)
    .bind(limit)
    .bind(request.tenants.as_deref().map(List))
    .fetch_all(tx.conn())
    .await?;
    if visited.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }

    // 2. The pick, in the fair order: every tenant's first job before
    // anyone's second; among equals, fewer running jobs first, then the
    // earlier place in the turn (the oldest turn first); within a tenant,
    // priority, run_at, id. Each visited tenant's row is read by a subquery
    // of its own, through the primary key: joined, the planner may read
    // every row of the ring (or of `tenants`) and hash them, a cost that
    // grows with all the tenants there are (with 30,000 ring rows the pick
    // took 9.6 ms instead of 5.3, docs/benchmarks.md). `turn` is
    // MATERIALIZED so each tenant's running jobs are counted once, not once
    // per candidate job. A tenant may give at most `take` jobs: its
    // free capacity, and twice an even share among the tenants with room (a
    // claim is rarely short when some have fewer jobs, and the next claim
    // makes it up; reading `limit` jobs of each of `limit` tenants, 16,384
    // rows for a claim of 128, would cost more than the claim). One job more
    // is read, so `more` tells whether the tenant keeps a waiting job.
    let pick = format!(
        "WITH turn AS MATERIALIZED ( \
            SELECT v.tenant_id, v.place, \
                   (SELECT max_concurrency FROM tenants WHERE id = v.tenant_id) AS cap, \
                   (SELECT count(*) FROM jobs {running} \
                    WHERE jobs.tenant_id = v.tenant_id AND state = 'running') AS busy \
            FROM {visited} \
         ), share AS ( \
            SELECT CASE WHEN room = 0 THEN 0 WHEN room = 1 THEN $2 \
                        ELSE (2 * $2 + room - 1) / room END AS n \
            FROM (SELECT count(*) AS room FROM turn WHERE cap > busy) with_room \
         ), candidates AS ( \
            SELECT j.id, turn.tenant_id, turn.place, turn.busy, \
                   {take} AS take, j.priority, j.run_at, \
                   row_number() OVER (PARTITION BY turn.tenant_id \
                                      ORDER BY j.priority DESC, j.run_at, j.id) AS rank, \
                   count(*) OVER (PARTITION BY turn.tenant_id) AS found \
            FROM turn {best_jobs} \
            WHERE turn.cap > turn.busy \
         ), ranked AS ( \
            SELECT id, tenant_id, found, row_number() OVER ( \
                       ORDER BY rank, busy, place, priority DESC, run_at, id) AS ord \
            FROM candidates WHERE rank <= take \
            ORDER BY ord LIMIT $2 \
         ), picked AS ( \
            SELECT id, ord, found > count(*) OVER (PARTITION BY tenant_id) AS more FROM ranked \
         )",
        running = dialect::indexed_by("jobs_running"),
        visited = dialect::ordered_list_table(3, "v", "tenant_id", "place"),
        take = "CASE WHEN turn.cap - turn.busy < (SELECT n FROM share) \
                THEN turn.cap - turn.busy ELSE (SELECT n FROM share) END",
        best_jobs = dialect::best_jobs(
            &format!(
                "tenant_id = turn.tenant_id AND {WAITING} AND run_at <= $1 AND ($4 IS NULL OR {})",
                dialect::any("queue", 4)
            ),
            "turn.cap - turn.busy + 1",
            "(SELECT n FROM share) + 1"
        ),
    );
    // 3. The lease of the picked jobs still waiting (joined through the
    // primary key: `id = ANY(…)` may lead the planner through the waiting
    // index instead, reading every waiting job), and 4. what the worker
    // runs, in the order of the pick.
    let lease = |picked: &str, now: u8, expires: u8, host: u8, returning: &str| {
        format!(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = {token}, \
                    lease_expires_at = ${expires}, leased_by = ${host}, \
                    started_at = COALESCE(started_at, ${now}), attempt_started_at = ${now} \
             FROM {picked} WHERE jobs.id = v.id AND jobs.{WAITING} RETURNING {returning}",
            token = dialect::NEW_TOKEN,
        )
    };
    // `more`: whether the job's tenant keeps a waiting job after the claim.
    let read = |leased: &str, more: &str| {
        format!(
            "SELECT {CLAIM_COLUMNS}, {more} AS more FROM {leased} \
             JOIN plugins p ON p.tenant_id = jobs.tenant_id AND p.name = jobs.plugin \
                           AND p.version = jobs.plugin_version \
             JOIN tenants t ON t.id = jobs.tenant_id"
        )
    };
    let expires = At(request.now + request.lease);
    let rows: Vec<ClaimRow> = if dialect::WRITES_IN_WITH {
        // 2–4 in one statement: it sees what the turn's lock waited for.
        sqlx::query_as(&format!(
            "{pick}, leased AS ({}) {} ORDER BY jobs.ord",
            lease("picked v", 1, 5, 6, "jobs.*, v.ord, v.more"),
            read("leased jobs", "jobs.more"),
        ))
        .bind(now)
        .bind(limit)
        .bind(List(&visited))
        .bind(request.queues.as_deref().map(List))
        .bind(expires)
        .bind(&request.host_id)
        .fetch_all(tx.conn())
        .await?
    } else {
        let (picked, more): (Vec<Id>, Vec<bool>) = sqlx::query_as::<_, (Id, bool)>(&format!(
            "{pick} SELECT id, more FROM picked ORDER BY ord"
        ))
        .bind(now)
        .bind(limit)
        .bind(List(&visited))
        .bind(request.queues.as_deref().map(List))
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .unzip();
        let more: Vec<Id> = picked
            .iter()
            .zip(more)
            .filter_map(|(id, more)| more.then_some(*id))
            .collect();
        let leased: Vec<Id> = if picked.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar(&lease(
                &dialect::list_table(1, "v", "id"),
                4,
                2,
                3,
                "jobs.id",
            ))
            .bind(List(&picked))
            .bind(expires)
            .bind(&request.host_id)
            .bind(now)
            .fetch_all(tx.conn())
            .await?
        };
        let mut rows: Vec<ClaimRow> = if leased.is_empty() {
            Vec::new()
        } else {
            let leased_jobs = format!(
                "{} JOIN jobs ON jobs.id = v.id",
                dialect::list_table(1, "v", "id")
            );
            sqlx::query_as(&read(&leased_jobs, &dialect::any("jobs.id", 2)))
                .bind(List(&leased))
                .bind(List(&more))
                .fetch_all(tx.conn())
                .await?
        };
        let order: HashMap<Id, usize> = picked.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        rows.sort_by_key(|row| order.get(&row.id).copied().unwrap_or(usize::MAX));
        rows
    };
    // Tenants seen to keep a waiting job stay at the front as they are.
    let keeping: HashSet<&str> = rows
        .iter()
        .filter(|row| row.more)
        .map(|row| row.tenant_id.as_str())
        .collect();
    let maybe_drained: Vec<&str> = visited
        .iter()
        .map(String::as_str)
        .filter(|tenant| !keeping.contains(tenant))
        .collect();

    // 5. The end of the turn. A tenant with nothing claimable left goes to
    // sleep, its alarm set to its next job's `run_at`; on PostgreSQL its row
    // is first taken `FOR UPDATE`, which waits for no one (SKIP LOCKED) and
    // which an enqueue's trigger (`FOR KEY SHARE SKIP LOCKED`) steps past:
    // so every job enqueued before the lock is seen by the next statement
    // (the row is skipped while an enqueue holds it), and every job
    // enqueued after leaves a wake, which the next claim's turn takes once
    // this commits (migration 0020).
    let drained: Vec<String> = if maybe_drained.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar(&format!(
            "SELECT tenant_id FROM claim_ring r WHERE {visited} AND NOT EXISTS ( \
                SELECT 1 FROM jobs WHERE jobs.tenant_id = r.tenant_id AND {WAITING} AND run_at <= $2) \
             {skip}",
            visited = dialect::any("r.tenant_id", 1),
            skip = dialect::SKIP_LOCKED,
        ))
        .bind(List(&maybe_drained))
        .bind(now)
        .fetch_all(tx.conn())
        .await?
    };
    let claimed: Vec<ClaimedJob> = rows.into_iter().map(ClaimedJob::from).collect();
    // A tenant left awake has a job due now: its `ready_at` is at most now
    // (a row that joined the turn through a wake may carry no alarm, or a
    // later one, as its enqueue did not write it).
    sqlx::query(&format!(
        "UPDATE claim_ring SET served_at = $2, ready_at = CASE WHEN {drained} THEN ( \
            SELECT min(run_at) FROM jobs WHERE jobs.tenant_id = claim_ring.tenant_id AND {WAITING}) \
            WHEN ready_at <= $2 THEN ready_at ELSE $2 END, sleeping = {drained} \
         WHERE {visited}",
        drained = dialect::any("tenant_id", 3),
        visited = dialect::any("tenant_id", 1),
    ))
    .bind(List(&visited))
    .bind(now)
    .bind(List(&drained))
    .execute(tx.conn())
    .await?;

    for job in &claimed {
        tx.announce(StoreEvent::JobState(job.id, JobState::Running));
    }
    tx.commit().await?;
    Ok(claimed)
}
