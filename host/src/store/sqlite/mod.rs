//! The SQLite store: the embedded default, for one host.
//!
//! One writer connection (SQLite allows one writer at a time; funnelling
//! every write through one connection means no write ever fails with
//! SQLITE_BUSY) and a few reader connections (WAL mode lets them read while
//! the writer writes). Every multi-statement operation is one transaction on
//! the writer, so it is atomic and serialized: claims read exact counts of
//! running jobs per tenant. Times are microseconds since the Unix epoch.
//!
//! Durability: WAL with `synchronous = NORMAL` survives a crash of the
//! process (SIGKILL included); a crash of the operating system or a power
//! loss may lose the last transactions. Use PostgreSQL where that matters.
//!
//! Wake-ups are in-process: the store itself announces what it wrote.

mod dialect;
// The statements and flows both backends share, compiled for this one
// (see `sql/mod.rs` for why one source is compiled twice).
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::codec::{Id, big};
use super::{Inserted, Lease, StoreError, StoreEvent};
use crate::model::{
    Finish, JobId, JobState, NewJob, PluginVersion, ProgressUpdate, Timestamp, Transition,
};

/// Reader connections. Reads never block the writer in WAL mode.
const READERS: u32 = 4;
/// How long a statement waits for a lock held by another process (a second
/// `corral` on the same file, or `sqlite3`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffered wake-ups per subscriber.
const EVENT_BUFFER: usize = 1024;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    events: broadcast::Sender<StoreEvent>,
}

/// A time as SQLite keeps it, for the JSON batches of the statements here.
fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// What `sql/` calls this backend's database and store.
type Db = Sqlite;
type Here = SqliteStore;

impl SqliteStore {
    /// The WAL readers: reads never wait for the writer.
    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one writer connection.
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_lazy_with(options.read_only(true));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(SqliteStore {
            writer,
            reader,
            events,
        })
    }

    fn announce(&self, event: StoreEvent) {
        let _ = self.events.send(event);
    }
}

/// The statements that differ from PostgreSQL's; `sql/store.rs` calls them.
impl SqliteStore {
    /// Extend leases in one statement on the writer: the leases still
    /// held, and whether a cancel was asked of each.
    async fn heartbeat(
        &self,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<(Id, bool)>, StoreError> {
        let rows: Vec<serde_json::Value> = leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "id": l.job_id.to_string(),
                    "token": l.lease_token.simple().to_string(),
                })
            })
            .collect();
        Ok(sqlx::query_as(
            "WITH u AS (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token \
                        FROM json_each(?1)) \
             UPDATE jobs SET lease_expires_at = ?2 FROM u \
             WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.state = 'running' \
             RETURNING jobs.id, jobs.cancel_requested",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(micros(now) + lease.as_micros() as i64)
        .fetch_all(&self.writer)
        .await?)
    }

    /// Record outcomes, each fenced by its lease token: the jobs it
    /// changed, in their new states.
    async fn record(
        &self,
        conn: &mut SqliteConnection,
        finishes: &[Finish],
    ) -> Result<Vec<(JobId, JobState)>, StoreError> {
        let rows: Vec<serde_json::Value> = finishes
            .iter()
            .map(|f| {
                let a = &f.attempt;
                let (result, error, run_at) = match &f.transition {
                    Transition::Complete { result } => (Some(result.as_str()), None, None),
                    Transition::Retry { run_at, error } => {
                        (None, Some(error.as_str()), Some(micros(*run_at)))
                    }
                    Transition::Dead { error } => (None, Some(error.as_str()), None),
                    Transition::Cancel => (None, Some("cancelled"), None),
                };
                serde_json::json!({
                    "id": f.job_id.to_string(),
                    "token": f.lease_token.simple().to_string(),
                    "state": f.transition.state().as_str(),
                    "result": result,
                    "error": error,
                    "run_at": run_at,
                    "attempt": a.attempt,
                    "outcome": a.outcome.as_str(),
                    "message": a.message,
                    "started_at": micros(a.started_at),
                    "finished_at": micros(a.finished_at),
                    "fuel": big(a.fuel_consumed),
                    "memory": big(a.peak_memory_bytes),
                    "host": a.host_id,
                    "log": a.log,
                    "dropped": big(a.log_dropped_bytes),
                    "http": a.http.as_ref().and_then(|h| serde_json::to_string(h).ok()),
                    "percent": f.progress.as_ref().map(|p| p.percent),
                    "progress": f.progress.as_ref().map(|p| p.message.as_str()),
                })
            })
            .collect();
        let batch = serde_json::Value::Array(rows).to_string();
        let updated = sqlx::query(
            "WITH u AS (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token, \
                    json_extract(value, '$.state') AS state, json_extract(value, '$.result') AS result, \
                    json_extract(value, '$.error') AS error, json_extract(value, '$.run_at') AS run_at, \
                    json_extract(value, '$.attempt') AS attempt, json_extract(value, '$.outcome') AS outcome, \
                    json_extract(value, '$.finished_at') AS finished_at, json_extract(value, '$.percent') AS percent, \
                    json_extract(value, '$.progress') AS progress FROM json_each(?1)) \
             UPDATE jobs SET \
                state = CASE WHEN jobs.cancel_requested AND u.state = 'retrying' THEN 'cancelled' ELSE u.state END, \
                result = u.result, error = u.error, run_at = COALESCE(u.run_at, jobs.run_at), \
                finished_at = CASE WHEN u.state IN ('completed', 'dead', 'cancelled') \
                                     OR (jobs.cancel_requested AND u.state = 'retrying') THEN u.finished_at END, \
                lease_token = NULL, lease_expires_at = NULL, leased_by = NULL, \
                progress_percent = COALESCE(u.percent, jobs.progress_percent), \
                progress_message = CASE WHEN u.percent IS NULL THEN jobs.progress_message ELSE u.progress END \
             FROM u \
             WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.state = 'running' \
               AND jobs.attempt = u.attempt AND (u.outcome <> 'lease_expired' OR jobs.lease_expires_at < u.finished_at) \
             RETURNING jobs.id, jobs.state",
        )
        .bind(&batch)
        .fetch_all(&mut *conn)
        .await?;
        let mut changed = Vec::with_capacity(updated.len());
        for row in &updated {
            let state: String = row.try_get(1)?;
            if let Some(state) = JobState::parse(&state) {
                changed.push((row.try_get::<Id, _>("id")?.0, state));
            }
        }
        let applied_ids = serde_json::to_string(
            &changed
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO attempts (job_id, attempt, tenant_id, outcome, message, started_at, finished_at, \
                                   fuel_consumed, peak_memory_bytes, host_id, log, log_dropped_bytes, http) \
             SELECT json_extract(u.value, '$.id'), json_extract(u.value, '$.attempt'), j.tenant_id, \
                    json_extract(u.value, '$.outcome'), json_extract(u.value, '$.message'), \
                    json_extract(u.value, '$.started_at'), json_extract(u.value, '$.finished_at'), \
                    json_extract(u.value, '$.fuel'), json_extract(u.value, '$.memory'), \
                    json_extract(u.value, '$.host'), json_extract(u.value, '$.log'), json_extract(u.value, '$.dropped'), \
                    json_extract(u.value, '$.http') \
             FROM json_each(?1) AS u JOIN jobs j ON j.id = json_extract(u.value, '$.id') \
             WHERE json_extract(u.value, '$.id') IN (SELECT value FROM json_each(?2))",
        )
        .bind(&batch)
        .bind(applied_ids)
        .execute(&mut *conn)
        .await?;
        Ok(changed)
    }

    /// Record progress, fenced, and announce it.
    async fn progress(&self, updates: &[ProgressUpdate]) -> Result<(), StoreError> {
        let rows: Vec<serde_json::Value> = updates
            .iter()
            .map(|u| {
                serde_json::json!({
                    "id": u.job_id.to_string(),
                    "token": u.lease_token.simple().to_string(),
                    "percent": u.progress.percent,
                    "message": u.progress.message,
                })
            })
            .collect();
        let changed = sqlx::query(
            "WITH u AS (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token, \
                    json_extract(value, '$.percent') AS percent, json_extract(value, '$.message') AS message \
                    FROM json_each(?1)) \
             UPDATE jobs SET progress_percent = u.percent, progress_message = u.message FROM u \
             WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.state = 'running' \
             RETURNING jobs.id",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .fetch_all(&self.writer)
        .await?;
        for row in &changed {
            self.announce(StoreEvent::JobProgress(row.try_get::<Id, _>("id")?.0));
        }
        Ok(())
    }

    /// Insert checked jobs in one statement on `conn`, pinning each to a plugin version.
    async fn insert_jobs(
        &self,
        conn: &mut SqliteConnection,
        tenant: &str,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError> {
        let tenant_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = ?1")
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?;
        if tenant_exists.is_none() {
            return Err(StoreError::unknown_tenant(tenant));
        }
        // Resolve each distinct plugin (and version) once, then insert the
        // whole batch in one statement.
        let mut plugins: HashMap<(String, Option<u32>), PluginVersion> = HashMap::new();
        for job in jobs {
            if let std::collections::hash_map::Entry::Vacant(slot) =
                plugins.entry((job.plugin.clone(), job.version))
            {
                let found =
                    sql::store::plugin_version(&mut *conn, tenant, &job.plugin, job.version)
                        .await?
                        .ok_or_else(|| StoreError::unknown_plugin(&job.plugin, job.version))?;
                slot.insert(found);
            }
        }
        let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .zip(&ids)
            .map(|(job, id)| {
                let plugin = &plugins[&(job.plugin.clone(), job.version)];
                let run_at = job.run_at.unwrap_or(now);
                let state = if run_at > now {
                    JobState::Scheduled
                } else {
                    JobState::Available
                };
                serde_json::json!({
                    "id": id.to_string(),
                    "plugin": job.plugin,
                    "version": plugin.version,
                    "digest": plugin.digest,
                    "queue": job.queue,
                    "priority": job.priority,
                    "state": state.as_str(),
                    "input": job.input,
                    "max_attempts": job.max_attempts.unwrap_or(plugin.max_attempts),
                    "timeout_ms": job.timeout_ms.map(big),
                    "run_at": micros(run_at),
                    "key": job.idempotency_key,
                    "replay_of": job.replay_of.map(|id| id.to_string()),
                })
            })
            .collect();
        let created: Vec<String> = sqlx::query_scalar(
            "INSERT INTO jobs (id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input, attempt, \
                               max_attempts, timeout_ms, run_at, created_at, idempotency_key, replay_of) \
             SELECT json_extract(value, '$.id'), ?2, json_extract(value, '$.plugin'), json_extract(value, '$.version'), \
                    json_extract(value, '$.digest'), json_extract(value, '$.queue'), json_extract(value, '$.priority'), \
                    json_extract(value, '$.state'), json_extract(value, '$.input'), 0, \
                    json_extract(value, '$.max_attempts'), json_extract(value, '$.timeout_ms'), \
                    json_extract(value, '$.run_at'), ?3, json_extract(value, '$.key'), \
                    json_extract(value, '$.replay_of') \
             FROM json_each(?1) WHERE TRUE ORDER BY key \
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING id",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(tenant)
        .bind(micros(now))
        .fetch_all(&mut *conn)
        .await?;
        let created: std::collections::HashSet<String> = created.into_iter().collect();
        let mut out = Vec::with_capacity(jobs.len());
        for (job, id) in jobs.iter().zip(ids) {
            if created.contains(&id.to_string()) {
                out.push(Inserted { id, created: true });
                continue;
            }
            // An idempotency key matched: answer with the first job.
            let existing: String = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE tenant_id = ?1 AND idempotency_key = ?2",
            )
            .bind(tenant)
            .bind(&job.idempotency_key)
            .fetch_one(&mut *conn)
            .await?;
            let id = Uuid::parse_str(&existing).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            out.push(Inserted { id, created: false });
        }
        Ok(out)
    }
}
