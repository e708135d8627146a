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
//! 4. read what the worker needs to run them, in the order of the pick
//!    (on PostgreSQL, which can write in `WITH`, 2 and 3 are one
//!    statement);
//! 5. end the turn: `served_at = now` for every tenant visited, each awake
//!    (woken, if it slept) unless it is left with no claimable job: then it
//!    gets `ready_at` = its next job's `run_at` (NULL when none waits) and
//!    goes to sleep until then. The pick reads one job more per tenant than
//!    it may take, so a tenant seen to keep a waiting job needs no check
//!    here: with many tenants, each of which gives one job of many, this
//!    step is one statement, not two.
//!
//! On PostgreSQL these statements run inside one function call
//! ([`CLAIM_FUNCTION`], made on each connection from the same statement
//! texts): a function of PL/pgSQL takes a fresh snapshot for each of its
//! statements, as the statements of a transaction do, so it keeps every
//! guarantee above, in one round trip instead of six (`BEGIN`, the four
//! statements, `COMMIT`). Under load each round trip waits for a core
//! (drains 5% faster here; pickups and a claim alone on an idle machine
//! unchanged, docs/benchmarks.md, "A claim in one round trip"), and across
//! a network each costs its latency. SQLite, in the process, runs them one
//! by one in a transaction of its writer.

use std::collections::HashSet;

use sqlx::{Column, Executor, TypeInfo};

use super::super::{Here, dialect};
use super::{Conn, Tx};
use crate::model::{ClaimedJob, JobState};
use crate::store::codec::{At, Id, List};
use crate::store::rows::{CLAIM_COLUMNS, ClaimRow};
use crate::store::{ClaimRequest, StoreError, StoreEvent};

/// The states of a job waiting for a claim.
const WAITING: &str = "state IN ('scheduled', 'available', 'retrying')";

/// A job still waiting, tested on a row found by its id: the schema's
/// CHECKs give a lease token to exactly the running jobs and a finish time
/// to exactly the finished ones. Written with the states ([`WAITING`]),
/// the test let PostgreSQL choose the index of waiting jobs, which its
/// statistics show as nearly empty when they were taken before a burst,
/// and walk all of it for every job of the claim: a claim of 128 took
/// 1.9 s beside 50,000 jobs enqueued since, every claim until the next
/// `ANALYZE` (docs/benchmarks.md, "Plans that trusted the statistics").
const STILL_WAITING: &str = "jobs.lease_token IS NULL AND jobs.finished_at IS NULL";

/// The name of the claim's function on PostgreSQL. It lives in the
/// session's own schema (`pg_temp`), made by the first claim on each
/// connection: so it is always the one built from this binary's statement
/// texts, however many versions of Corral share the database during a
/// rolling upgrade, and it needs no migration (and is gone with the
/// connection).
const CLAIM_FUNCTION: &str = "pg_temp.corral_claim";

/// The SQLSTATEs of a connection with no claim function yet:
/// `undefined_function`, and `invalid_schema_name` while the session has
/// made no temporary object (its `pg_temp` does not exist yet).
const NO_FUNCTION_YET: [&str; 2] = ["42883", "3F000"];

pub(in super::super) async fn claim(
    store: &Here,
    request: &ClaimRequest,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let rows = if dialect::CLAIM_IN_ONE_CALL {
        claim_in_one_call(store, request).await?
    } else {
        claim_step_by_step(store, request).await?
    };
    Ok(rows.into_iter().map(ClaimedJob::from).collect())
}

/// The claim's statements one by one, in a transaction (SQLite: the pick
/// and the lease are two statements, as it cannot write in `WITH`).
async fn claim_step_by_step(
    store: &Here,
    request: &ClaimRequest,
) -> Result<Vec<ClaimRow>, StoreError> {
    let now = At(request.now);
    let limit = i64::from(request.limit);
    let mut tx = Tx::begin(store).await?;

    // 1. The turn.
    let visited: Vec<String> = sqlx::query_scalar(&turn(
        "SELECT tenant_id FROM visited ORDER BY served_at, tenant_id",
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

    // 2. The pick, 3. the lease.
    let picked: Vec<(Id, String, bool)> = sqlx::query_as(&format!(
        "{} SELECT id, tenant_id, more FROM picked ORDER BY ord",
        pick()
    ))
    .bind(now)
    .bind(limit)
    .bind(List(&visited))
    .bind(request.queues.as_deref().map(List))
    .fetch_all(tx.conn())
    .await?;
    let (picked, keeping) = keeping_tenants(picked);
    let leased: HashSet<Id> = if picked.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar(&lease(
            &dialect::list_table(1, "v", "id"),
            4,
            2,
            3,
            "jobs.id",
        ))
        .bind(List(&picked))
        .bind(At(request.now + request.lease))
        .bind(&request.host_id)
        .bind(now)
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .collect()
    };
    // In the order of the pick.
    let leased: Vec<Id> = picked
        .into_iter()
        .filter(|id| leased.contains(id))
        .collect();

    // 5. The end of the turn (the read, 4, needs nothing of it).
    let drained: Vec<String> = if keeping.len() == visited.len() {
        Vec::new()
    } else {
        sqlx::query_scalar(&drained())
            .bind(List(&visited))
            .bind(now)
            .bind(List(&keeping))
            .fetch_all(tx.conn())
            .await?
    };
    sqlx::query(&end_of_turn())
        .bind(List(&visited))
        .bind(now)
        .bind(List(&drained))
        .execute(tx.conn())
        .await?;

    // 4. What the worker runs, in the order of the pick.
    let rows: Vec<ClaimRow> = if leased.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(&read())
            .bind(List(&leased))
            .fetch_all(tx.conn())
            .await?
    };
    for row in &rows {
        tx.announce(StoreEvent::JobState(row.id.0, JobState::Running));
    }
    tx.commit().await?;
    Ok(rows)
}

/// The picked (or leased) jobs in order, and the tenants seen to keep a
/// waiting job after the claim.
fn keeping_tenants(jobs: Vec<(Id, String, bool)>) -> (Vec<Id>, Vec<String>) {
    let mut keeping: Vec<String> = Vec::new();
    let ids = jobs
        .into_iter()
        .map(|(id, tenant, more)| {
            if more && !keeping.contains(&tenant) {
                keeping.push(tenant);
            }
            id
        })
        .collect();
    (ids, keeping)
}

/// Make [`CLAIM_FUNCTION`] on a new connection of the claims' pool
/// (PostgreSQL), if the database is migrated as far as this binary knows
/// (on a connection made before, the first claim makes it). Checked first
/// so that the database logs no error: a failed statement is an `ERROR`
/// line in its log.
// Called by the PostgreSQL store's pool only: this source is compiled for
// SQLite too, whose claims need no function.
#[allow(dead_code)]
pub(in super::super) async fn prepare_connection(conn: &mut Conn) -> Result<(), StoreError> {
    let migrating: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !migrating {
        return Ok(());
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await?;
    if usize::try_from(applied).is_ok_and(|n| n >= dialect::migrator().iter().count()) {
        make_claim_function(conn).await?;
    }
    Ok(())
}

/// The claim as one call of [`CLAIM_FUNCTION`] (PostgreSQL), which this
/// connection makes first if it has none.
async fn claim_in_one_call(
    store: &Here,
    request: &ClaimRequest,
) -> Result<Vec<ClaimRow>, StoreError> {
    let mut conn = store.claimer().acquire().await?;
    let mut made = false;
    loop {
        let rows = sqlx::query_as(&format!(
            "SELECT * FROM {CLAIM_FUNCTION}($1, $2, $3, $4, $5, $6)"
        ))
        .bind(At(request.now))
        .bind(i64::from(request.limit))
        .bind(request.tenants.as_deref().map(List))
        .bind(request.queues.as_deref().map(List))
        .bind(At(request.now + request.lease))
        .bind(&request.host_id)
        .fetch_all(&mut *conn)
        .await;
        match rows {
            Err(e) if !made && sqlstate(&e).is_some_and(|s| NO_FUNCTION_YET.contains(&&*s)) => {
                make_claim_function(&mut conn).await?;
                made = true;
            }
            rows => {
                let rows: Vec<ClaimRow> = rows?;
                let events = rows
                    .iter()
                    .map(|row| StoreEvent::JobState(row.id.0, JobState::Running))
                    .collect();
                super::announce_now(store, &mut conn, events).await?;
                return Ok(rows);
            }
        }
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
}

/// Make [`CLAIM_FUNCTION`] on this connection: the statements of
/// [`claim_step_by_step`] with PL/pgSQL between them, each `$n` renamed to
/// the function's parameter or variable it stands for. The columns it
/// returns are those of the read, as the database describes them.
async fn make_claim_function(conn: &mut Conn) -> Result<(), StoreError> {
    let columns: Vec<String> = (&mut *conn)
        // (the lists as empty literals: an unbound `$n` has no type to describe)
        .describe(&renamed(&read(), &["'{}'::uuid[]"]))
        .await?
        .columns()
        .iter()
        .map(|c| format!("\"{}\" {}", c.name(), c.type_info().name()))
        .collect();
    // Parameters: $1 now, $2 limit, $3 the named tenants, $4 the queues,
    // $5 the lease's end, $6 the host.
    let function = format!(
        "CREATE OR REPLACE FUNCTION {CLAIM_FUNCTION}( \
            timestamptz, bigint, text[], text[], timestamptz, text) \
         RETURNS TABLE ({columns}) LANGUAGE plpgsql VOLATILE AS $claim$ \
         #variable_conflict use_column \n\
         DECLARE \
            v_visited text[]; v_leased uuid[]; v_keeping text[]; v_drained text[]; \
         BEGIN \
            {turn}; \
            IF cardinality(v_visited) = 0 THEN RETURN; END IF; \
            {pick}, leased AS ({lease}) \
            SELECT coalesce(array_agg(id ORDER BY ord), '{{}}'), \
                   coalesce(array_agg(DISTINCT tenant_id) FILTER (WHERE more), '{{}}') \
              INTO v_leased, v_keeping FROM leased; \
            IF cardinality(v_keeping) < cardinality(v_visited) THEN \
                v_drained := ARRAY({drained}); \
            ELSE \
                v_drained := '{{}}'; \
            END IF; \
            {end_of_turn}; \
            RETURN QUERY {read}; \
         END $claim$",
        columns = columns.join(", "),
        turn = turn(
            "SELECT coalesce(array_agg(tenant_id ORDER BY served_at, tenant_id), '{}') \
             INTO v_visited FROM visited"
        ),
        pick = renamed(&pick(), &["$1", "$2", "v_visited", "$4"]),
        lease = lease(
            "picked v",
            1,
            5,
            6,
            "jobs.id, jobs.tenant_id, v.ord, v.more"
        ),
        drained = renamed(&drained(), &["v_visited", "$1", "v_keeping"]),
        end_of_turn = renamed(&end_of_turn(), &["v_visited", "$1", "v_drained"]),
        read = renamed(&read(), &["v_leased"]),
    );
    sqlx::query(&function).execute(&mut *conn).await?;
    Ok(())
}

/// `sql` with each `$n` replaced by `names[n - 1]` (a `$` not followed by
/// the number of a name is left as it is).
fn renamed(sql: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let name = rest[at + 1..at + 1 + digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| names.get(n.checked_sub(1)?));
        match name {
            Some(name) => out.push_str(name),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// Step 1, the turn, `select` reading the visited tenants from `visited`
/// (`tenant_id`, `served_at`). $1 now, $2 limit, $3 the named tenants.
fn turn(select: &str) -> String {
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
    format!(
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
         ){consumed} {select}",
        named = dialect::any("tenant_id", 3),
        lock = dialect::NO_KEY_SKIP_LOCKED,
        also_woken = if dialect::RING_WAKES {
            "UNION SELECT * FROM woken"
        } else {
            ""
        },
    )
}

/// Step 2, the pick: `WITH … picked (id, tenant_id, ord, more)`. $1 now, $2
/// limit, $3 the visited tenants in the order of the turn, $4 the queues.
fn pick() -> String {
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
    format!(
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
            SELECT id, tenant_id, ord, \
                   found > count(*) OVER (PARTITION BY tenant_id) AS more FROM ranked \
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
    )
}

/// Step 3, the lease of the `picked` jobs (`v.id`) still waiting, at `$now`,
/// until `$expires`, by `$host`. Joined through the primary key, which is
/// the only index it can use: `id = ANY(…)`, or a test that names the
/// waiting states (hence [`STILL_WAITING`]), may lead the planner through
/// the waiting index instead, reading every waiting job.
fn lease(picked: &str, now: u8, expires: u8, host: u8, returning: &str) -> String {
    format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = {token}, \
                lease_expires_at = ${expires}, leased_by = ${host}, \
                started_at = COALESCE(started_at, ${now}), attempt_started_at = ${now} \
         FROM {picked} WHERE jobs.id = v.id AND {STILL_WAITING} RETURNING {returning}",
        token = dialect::NEW_TOKEN,
    )
}

/// Step 4, what the worker runs, in the order of the pick: $1 the leased jobs.
fn read() -> String {
    format!(
        "SELECT {CLAIM_COLUMNS} \
         FROM {leased} JOIN jobs ON jobs.id = v.id \
         JOIN plugins p ON p.tenant_id = jobs.tenant_id AND p.name = jobs.plugin \
                       AND p.version = jobs.plugin_version \
         JOIN tenants t ON t.id = jobs.tenant_id \
         ORDER BY v.ord",
        leased = dialect::ordered_list_table(1, "v", "id", "ord"),
    )
}

/// Step 5, the end of the turn, first: which visited tenants go to sleep. $1
/// the visited tenants, $2 now, $3 those seen to keep a waiting job.
fn drained() -> String {
    // 5. The end of the turn. A tenant with nothing claimable left goes to
    // sleep, its alarm set to its next job's `run_at`; on PostgreSQL its row
    // is first taken `FOR UPDATE`, which waits for no one (SKIP LOCKED) and
    // which an enqueue's trigger (`FOR KEY SHARE SKIP LOCKED`) steps past:
    // so every job enqueued before the lock is seen by the next statement
    // (the row is skipped while an enqueue holds it), and every job
    // enqueued after leaves a wake, which the next claim's turn takes once
    // this commits (migration 0020).
    format!(
        "SELECT tenant_id FROM claim_ring r WHERE {visited} AND NOT {keeping} AND NOT EXISTS ( \
            SELECT 1 FROM jobs WHERE jobs.tenant_id = r.tenant_id AND {WAITING} AND run_at <= $2) \
         {skip}",
        visited = dialect::any("r.tenant_id", 1),
        keeping = dialect::any("r.tenant_id", 3),
        skip = dialect::SKIP_LOCKED,
    )
}

/// Step 5, the end of the turn: $1 the visited tenants, $2 now, $3 the drained.
fn end_of_turn() -> String {
    // A tenant left awake has a job due now: its `ready_at` is at most now
    // (a row that joined the turn through a wake may carry no alarm, or a
    // later one, as its enqueue did not write it).
    format!(
        "UPDATE claim_ring SET served_at = $2, ready_at = CASE WHEN {drained} THEN ( \
            SELECT min(run_at) FROM jobs WHERE jobs.tenant_id = claim_ring.tenant_id AND {WAITING}) \
            WHEN ready_at <= $2 THEN ready_at ELSE $2 END, sleeping = {drained} \
         WHERE {visited}",
        drained = dialect::any("tenant_id", 3),
        visited = dialect::any("tenant_id", 1),
    )
}

#[cfg(test)]
mod tests {
    use super::renamed;

    #[test]
    fn renamed_replaces_each_numbered_placeholder_once() {
        assert_eq!(
            renamed("a = $1 AND b = $2 OR $10 $x$ $", &["v_a", "$1"]),
            "a = v_a AND b = $1 OR $10 $x$ $"
        );
    }
}
