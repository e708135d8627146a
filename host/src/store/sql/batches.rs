//! Writes of many jobs in one statement, written once: a batch of new
//! jobs, of outcomes, of lease extensions, of progress reports. Each batch
//! is bound as one JSON array of rows ([`dialect::rows`] reads it as a
//! table: `jsonb_to_recordset` on PostgreSQL, `json_each` on SQLite), so a
//! batch costs one parameter and one statement whatever its size.

use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use uuid::Uuid;

use super::super::{Here, dialect};
use super::Conn;
use crate::model::{Finish, JobId, JobState, NewJob, ProgressUpdate, Timestamp, Transition};
use crate::store::codec::{At, Id, Json, List, Nat, Token, big};
use crate::store::{Inserted, Lease, StoreError, StoreEvent, json_text};

/// A row of a batch and the SQL type of each of its fields, as
/// [`dialect::rows`] reads them, declared together so the two cannot drift.
macro_rules! batch_row {
    ($(#[$meta:meta])* struct $name:ident<$lt:lifetime> { $($field:ident: $ty:ty => $sql:literal,)* }) => {
        $(#[$meta])*
        #[derive(Serialize)]
        struct $name<$lt> {
            $($field: $ty,)*
        }
        impl $name<'_> {
            /// Its fields in order, each with its SQL type.
            const COLUMNS: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), $sql),)*];
        }
    };
}

/// A batch as the one JSON parameter [`dialect::rows`] reads (a `null`
/// reads as SQL `NULL`).
pub(super) fn batch<T: Serialize>(rows: &[T]) -> Result<Json, StoreError> {
    json_text(&rows).map(Json)
}

/// The batch bound as `$n`, as the `WITH` item `name` with `columns`.
/// MATERIALIZED, so it is read once per statement: inlined, SQLite may read
/// the batch's JSON again for every row it is joined with (a batch of 128
/// outcomes took 25 ms, nearly all of it parsing JSON).
pub(super) fn batch_cte(name: &str, n: u8, columns: &[(&str, &str)]) -> String {
    format!(
        "{name} AS MATERIALIZED (SELECT * FROM {})",
        dialect::rows(n, "r", columns)
    )
}

/// A time in a batch, as this dialect's rows read it.
fn at(t: Timestamp) -> dialect::JsonAt {
    dialect::json_at(t)
}

batch_row! {
    /// One job of an enqueued batch.
    struct NewJobRow<'a> {
        ord: usize => "int",
        id: Id => "uuid",
        plugin: &'a str => "text",
        version: Option<u32> => "int",
        input: &'a str => "json",
        queue: &'a str => "text",
        priority: i32 => "int",
        run_at: dialect::JsonAt => "timestamptz",
        max_attempts: Option<u32> => "int",
        timeout_ms: Option<i64> => "bigint",
        key: Option<&'a str> => "text",
        replay_of: Option<Id> => "uuid",
    }
}

/// Insert checked jobs in one statement on `conn`, each pinned to its
/// plugin's version (the latest unless it names one). The plugin versions
/// are read `FOR SHARE`, so a concurrent delete of a version waits for this
/// enqueue or this enqueue sees the version gone: no job is ever pinned to a
/// deleted version. An unknown plugin leaves `digest` NULL, which the NOT
/// NULL constraint turns into a refusal of the whole batch.
pub(in super::super) async fn insert_jobs(
    store: &Here,
    conn: &mut Conn,
    tenant: &str,
    jobs: &[NewJob],
    now: Timestamp,
) -> Result<Vec<Inserted>, StoreError> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let rows: Vec<NewJobRow> = jobs
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(ord, (job, id))| NewJobRow {
            ord,
            id: Id(*id),
            plugin: &job.plugin,
            version: job.version,
            input: &job.input,
            queue: &job.queue,
            priority: job.priority,
            run_at: at(job.run_at.unwrap_or(now)),
            max_attempts: job.max_attempts,
            timeout_ms: job.timeout_ms.map(big),
            key: job.idempotency_key.as_deref(),
            replay_of: job.replay_of.map(Id),
        })
        .collect();
    let inserted = sqlx::query_scalar::<_, Id>(&format!(
        "WITH {input}, \
         wanted AS (SELECT DISTINCT plugin, version FROM input), \
         versions AS ( \
            SELECT name, version, digest, max_attempts FROM plugins \
            WHERE tenant_id = $2 AND deleted_at IS NULL AND name IN (SELECT plugin FROM wanted) {share} \
         ), found AS ( \
            SELECT w.plugin, w.version, (SELECT max(v.version) FROM versions v WHERE v.name = w.plugin \
                   AND (w.version IS NULL OR v.version = w.version)) AS pinned \
            FROM wanted w \
         ) \
         INSERT INTO jobs (id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input, attempt, \
                           max_attempts, timeout_ms, run_at, created_at, idempotency_key, replay_of) \
         SELECT i.id, $2, i.plugin, f.pinned, v.digest, i.queue, i.priority, \
                CASE WHEN i.run_at > $3 THEN 'scheduled' ELSE 'available' END, i.input, 0, \
                COALESCE(i.max_attempts, v.max_attempts), i.timeout_ms, i.run_at, $3, i.key, i.replay_of \
         FROM input i JOIN found f ON f.plugin = i.plugin AND (f.version = i.version OR (f.version IS NULL AND i.version IS NULL)) \
         LEFT JOIN versions v ON v.name = f.plugin AND v.version = f.pinned \
         WHERE TRUE ORDER BY i.ord \
         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
        input = batch_cte("input", 1, NewJobRow::COLUMNS),
        share = dialect::FOR_SHARE,
    ))
    .bind(batch(&rows)?)
    .bind(tenant)
    .bind(At(now))
    .fetch_all(&mut *conn)
    .await;
    let created: HashSet<Uuid> = match inserted {
        Ok(rows) => rows.into_iter().map(|id| id.0).collect(),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            return Err(StoreError::unknown_tenant(tenant));
        }
        Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::NotNullViolation => {
            return Err(unknown_plugin(store, tenant, jobs).await);
        }
        Err(e) => return Err(e.into()),
    };
    // Jobs not created matched an idempotency key: answer with the first job.
    let mut existing: HashMap<String, Uuid> = HashMap::new();
    if created.len() < jobs.len() {
        let keys: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.idempotency_key.as_deref())
            .collect();
        let rows: Vec<(String, Id)> = sqlx::query_as(&format!(
            "SELECT idempotency_key, id FROM jobs WHERE tenant_id = $1 AND {}",
            dialect::any("idempotency_key", 2)
        ))
        .bind(tenant)
        .bind(List(&keys))
        .fetch_all(&mut *conn)
        .await?;
        existing.extend(rows.into_iter().map(|(key, id)| (key, id.0)));
    }
    jobs.iter()
        .zip(ids)
        .map(|(job, id)| {
            if created.contains(&id) {
                return Ok(Inserted { id, created: true });
            }
            job.idempotency_key
                .as_ref()
                .and_then(|key| existing.get(key))
                .map(|id| Inserted {
                    id: *id,
                    created: false,
                })
                .ok_or_else(|| {
                    StoreError::Conflict(
                        "a job was neither created nor found by its idempotency key".into(),
                    )
                })
        })
        .collect()
}

/// Name what a refused batch lacks: its tenant, or the first plugin (and
/// version) that does not exist. Read outside the refused statement's
/// transaction, which PostgreSQL has aborted.
async fn unknown_plugin(store: &Here, tenant: &str, jobs: &[NewJob]) -> StoreError {
    let tenant_exists: Result<Option<Nat<u8>>, _> =
        sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(store.reader())
            .await;
    match tenant_exists {
        Ok(Some(_)) => {}
        Ok(None) => return StoreError::unknown_tenant(tenant),
        Err(e) => return e.into(),
    }
    for job in jobs {
        match super::store::plugin_version(store.reader(), tenant, &job.plugin, job.version).await {
            Ok(Some(_)) => continue,
            Ok(None) => return StoreError::unknown_plugin(&job.plugin, job.version),
            Err(e) => return e,
        }
    }
    StoreError::UnknownPlugin("a job names a plugin that does not exist".into())
}

batch_row! {
    /// One outcome of a finished batch: the job's new state and its attempt.
    struct OutcomeRow<'a> {
        id: Id => "uuid",
        token: Token => "uuid",
        state: &'a str => "text",
        result: Option<&'a str> => "json",
        error: Option<&'a str> => "text",
        run_at: Option<dialect::JsonAt> => "timestamptz",
        attempt: u32 => "int",
        outcome: &'a str => "text",
        message: Option<&'a str> => "text",
        started_at: dialect::JsonAt => "timestamptz",
        finished_at: dialect::JsonAt => "timestamptz",
        fuel: i64 => "bigint",
        memory: i64 => "bigint",
        host: &'a str => "text",
        log: &'a str => "text",
        dropped: i64 => "bigint",
        percent: Option<u8> => "smallint",
        progress: Option<&'a str> => "text",
        http: Option<String> => "json",
    }
}

/// The outcomes applied to their jobs, each fenced by its lease (the token,
/// which only a running job holds, and the same attempt; a lease-expiry
/// only once the lease has expired), returning `id, tenant_id, state` of
/// the jobs it changed. A cancel asked while the attempt ran turns a retry
/// into `cancelled`. It reads the batch's rows from `locked` ([`locked`]).
const APPLY_OUTCOMES: &str = "UPDATE jobs SET \
       state = CASE WHEN jobs.cancel_requested AND u.state = 'retrying' THEN 'cancelled' ELSE u.state END, \
       result = u.result, error = u.error, run_at = COALESCE(u.run_at, jobs.run_at), \
       finished_at = CASE WHEN u.state IN ('completed', 'dead', 'cancelled') \
                            OR (jobs.cancel_requested AND u.state = 'retrying') THEN u.finished_at END, \
       lease_token = NULL, lease_expires_at = NULL, leased_by = NULL, \
       progress_percent = COALESCE(u.percent, jobs.progress_percent), \
       progress_message = CASE WHEN u.percent IS NULL THEN jobs.progress_message ELSE u.progress END \
    FROM locked u \
    WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.attempt = u.attempt \
      AND (u.outcome <> 'lease_expired' OR jobs.lease_expires_at < u.finished_at) \
    RETURNING jobs.id, jobs.tenant_id, jobs.state";

/// The attempt rows of the outcomes applied (`done`: `id, tenant_id`).
const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (job_id, attempt, tenant_id, outcome, message, \
       started_at, finished_at, fuel_consumed, peak_memory_bytes, host_id, log, log_dropped_bytes, http) \
    SELECT u.id, u.attempt, done.tenant_id, u.outcome, u.message, u.started_at, u.finished_at, u.fuel, \
           u.memory, u.host, u.log, u.dropped, u.http \
    FROM u JOIN done ON done.id = u.id";

/// Record outcomes, each fenced by its lease token: the jobs it changed,
/// in their new states. Where the dialect can write in `WITH`, the jobs and
/// their attempts are one statement (so it needs no transaction of its
/// own); otherwise two, on `conn`'s transaction.
pub(in super::super) async fn record(
    conn: &mut Conn,
    finishes: &[Finish],
) -> Result<Vec<(JobId, JobState)>, StoreError> {
    let rows: Vec<OutcomeRow> = finishes
        .iter()
        .map(|f| {
            let a = &f.attempt;
            let (result, error, run_at) = match &f.transition {
                Transition::Complete { result } => (Some(result.as_str()), None, None),
                Transition::Retry { run_at, error } => (None, Some(error.as_str()), Some(*run_at)),
                Transition::Dead { error } => (None, Some(error.as_str()), None),
                Transition::Cancel => (None, Some("cancelled"), None),
            };
            Ok(OutcomeRow {
                id: Id(f.job_id),
                token: Token(f.lease_token),
                state: f.transition.state().as_str(),
                result,
                error,
                run_at: run_at.map(at),
                attempt: a.attempt,
                outcome: a.outcome.as_str(),
                message: a.message.as_deref(),
                started_at: at(a.started_at),
                finished_at: at(a.finished_at),
                fuel: big(a.fuel_consumed),
                memory: big(a.peak_memory_bytes),
                host: &a.host_id,
                log: &a.log,
                dropped: big(a.log_dropped_bytes),
                percent: f.progress.as_ref().map(|p| p.percent),
                progress: f.progress.as_ref().map(|p| p.message.as_str()),
                http: a.http.as_ref().map(json_text).transpose()?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let batch = batch(&rows)?;
    // Row locks in id order, waited for, so two batches (or a batch and a
    // cancel) sharing jobs cannot deadlock.
    let with = format!(
        "WITH {u}, {locked}",
        u = batch_cte("u", 1, OutcomeRow::COLUMNS),
        locked = locked(dialect::FOR_NO_KEY_UPDATE),
    );
    let changed: Vec<(Id, String)> = if dialect::WRITES_IN_WITH {
        // `recorded` runs to completion though nothing reads it (a writing
        // `WITH` item always does), and it inserts one attempt per row of
        // `done`. Joining the two to return the rows had the planner, which
        // expects one row from each, compare every pair: 16,256 for a batch
        // of 128 (docs/benchmarks.md).
        sqlx::query_as(&format!(
            "{with}, done AS ({APPLY_OUTCOMES}), recorded AS ({INSERT_ATTEMPTS}) \
             SELECT id, state FROM done"
        ))
        .bind(&batch)
        .fetch_all(&mut *conn)
        .await?
    } else {
        let done: Vec<(Id, String, String)> = sqlx::query_as(&format!("{with} {APPLY_OUTCOMES}"))
            .bind(&batch)
            .fetch_all(&mut *conn)
            .await?;
        let ids: Vec<Id> = done.iter().map(|(id, _, _)| *id).collect();
        sqlx::query(&format!(
            "WITH {u}, \
             done AS (SELECT id, tenant_id FROM jobs WHERE {applied}) {INSERT_ATTEMPTS}",
            u = batch_cte("u", 1, OutcomeRow::COLUMNS),
            applied = dialect::any("id", 2),
        ))
        .bind(&batch)
        .bind(List(&ids))
        .execute(&mut *conn)
        .await?;
        done.into_iter().map(|(id, _, state)| (id, state)).collect()
    };
    changed
        .into_iter()
        .map(|(id, state)| Ok((id.0, crate::store::rows::state(&state, JobState::parse)?)))
        .collect()
}

batch_row! {
    /// A lease to extend, or a running job's progress.
    struct LeaseRow<'a> {
        id: Id => "uuid",
        token: Token => "uuid",
        percent: Option<u8> => "smallint",
        message: Option<&'a str> => "text",
    }
}

/// The `WITH` item `locked`: the rows of the batch `u` (`id`, `token`, …)
/// whose job still holds the lease the row names, with `u`'s columns, their
/// job rows locked in id order with `lock`. MATERIALIZED, so the lock runs
/// once per row, not again for every row the statement filters.
///
/// Each job is found through the primary key, one probe per row of the
/// batch, and the statement that writes reads the batch from `locked`
/// itself, joined through the key again: every cost is bounded by the
/// batch. The lease token is the test of a running job (the schema's CHECK
/// gives a token to exactly the running jobs), never `state = 'running'`:
/// that predicate let PostgreSQL walk the index of running jobs, whose
/// statistics usually say it is tiny, once for each row of the batch, and
/// compare every running job of the cluster with it. Beside 2,048 running
/// jobs of other tenants an outcome batch of 128 took 127 ms that way, and
/// 4.6 ms through the key (docs/benchmarks.md, "Plans that trusted the
/// statistics").
fn locked(lock: &str) -> String {
    format!(
        "locked AS MATERIALIZED (SELECT u.* FROM u JOIN jobs ON jobs.id = u.id \
         WHERE jobs.lease_token = u.token ORDER BY u.id {lock})"
    )
}

/// Extend leases without waiting on any row lock: the leases still held,
/// and whether a cancel was asked of each. A lease whose row another
/// transaction holds (its job being finished or cancelled) is not extended
/// this beat but still reported held.
pub(in super::super) async fn heartbeat(
    store: &Here,
    leases: &[Lease],
    now: Timestamp,
    lease: Duration,
) -> Result<Vec<(Id, bool)>, StoreError> {
    let rows: Vec<LeaseRow> = leases
        .iter()
        .map(|l| LeaseRow {
            id: Id(l.job_id),
            token: Token(l.lease_token),
            percent: None,
            message: None,
        })
        .collect();
    let batch = batch(&rows)?;
    let expires = chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(Timestamp::MAX_UTC);
    sqlx::query(&format!(
        "WITH {u}, {locked} \
         UPDATE jobs SET lease_expires_at = $2 FROM locked u \
         WHERE jobs.id = u.id AND jobs.lease_token = u.token",
        u = batch_cte("u", 1, LeaseRow::COLUMNS),
        locked = locked(dialect::NO_KEY_SKIP_LOCKED),
    ))
    .bind(&batch)
    .bind(At(expires))
    .execute(store.writer())
    .await?;
    Ok(sqlx::query_as(&format!(
        "WITH {u} SELECT jobs.id, jobs.cancel_requested FROM u JOIN jobs ON jobs.id = u.id \
         WHERE jobs.lease_token = u.token",
        u = batch_cte("u", 1, LeaseRow::COLUMNS),
    ))
    .bind(&batch)
    .fetch_all(store.reader())
    .await?)
}

/// Record progress, fenced like an outcome, skipping jobs whose row another
/// transaction holds (the next report or the outcome carries it), and
/// announce it.
pub(in super::super) async fn progress(
    store: &Here,
    updates: &[ProgressUpdate],
) -> Result<(), StoreError> {
    let rows: Vec<LeaseRow> = updates
        .iter()
        .map(|u| LeaseRow {
            id: Id(u.job_id),
            token: Token(u.lease_token),
            percent: Some(u.progress.percent),
            message: Some(&u.progress.message),
        })
        .collect();
    let mut conn = store.writer().acquire().await?;
    let changed: Vec<Id> = sqlx::query_scalar(&format!(
        "WITH {u}, {locked} \
         UPDATE jobs SET progress_percent = u.percent, progress_message = u.message FROM locked u \
         WHERE jobs.id = u.id AND jobs.lease_token = u.token \
         RETURNING jobs.id",
        u = batch_cte("u", 1, LeaseRow::COLUMNS),
        locked = locked(dialect::NO_KEY_SKIP_LOCKED),
    ))
    .bind(batch(&rows)?)
    .fetch_all(&mut *conn)
    .await?;
    let events: Vec<StoreEvent> = changed
        .into_iter()
        .map(|id| StoreEvent::JobProgress(id.0))
        .collect();
    super::announce_now(store, &mut conn, events).await
}
