//! The PostgreSQL store: any number of hosts share one database.
//!
//! Transactions, locks and round trips, operation by operation:
//! - **enqueue**: one `INSERT … SELECT FROM UNNEST(…)` for the whole batch
//!   (one round trip, atomic). The plugin version is resolved in the same
//!   statement, once per distinct plugin (and locked `FOR SHARE` once per
//!   plugin, not once per job); an unknown plugin leaves `digest` NULL, which the NOT NULL
//!   constraint turns into an error for the whole batch. A statement-level
//!   trigger NOTIFYs `corral_jobs`.
//! - **claim**: written once for both backends (`sql/claim.rs`): the
//!   claim ring's front taken `FOR NO KEY UPDATE SKIP LOCKED`, so claimers on
//!   many hosts share out tenants instead of queueing on one lock.
//! - **finish**: one statement for a batch of outcomes: a fenced `UPDATE`
//!   (`lease_token` and `state = 'running'` must still match) and the
//!   `INSERT` of attempt rows for exactly the jobs the update touched.
//! - **heartbeat**: one `UPDATE` of every lease the host holds.
//! - **progress**: one `UPDATE` per batch of running jobs (fenced like a
//!   finish) that also NOTIFYs `corral_job_progress` with their ids.
//! - **plugin delete** vs **enqueue**: the delete locks the version row
//!   `FOR UPDATE` before counting the jobs pinned to it; the enqueue reads the
//!   version `FOR SHARE`. Whichever comes second waits for the first, then
//!   sees its outcome: no job is ever pinned to a deleted version.

mod dialect;
// The statements and flows both backends share, compiled for this one
// (see `sql/mod.rs` for why one source is compiled twice).
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use std::time::Duration;

use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::codec::{Id, big};
use super::{Inserted, Lease, StoreError, StoreEvent};
use crate::model::{Finish, JobId, JobState, NewJob, ProgressUpdate, Timestamp, Transition};

/// Connections per host. Workers use a few (claim, finish, heartbeat,
/// listener); the API the rest.
const MAX_CONNECTIONS: u32 = 16;
/// How long a caller waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Channels the listener follows.
const JOBS_CHANNEL: &str = "corral_jobs";
const CANCEL_CHANNEL: &str = "corral_cancel";
const STATE_CHANNEL: &str = "corral_job_state";
const PROGRESS_CHANNEL: &str = "corral_job_progress";
/// `<run id> <state>` when a workflow run finishes.
const RUN_CHANNEL: &str = "corral_run_state";
/// Job ids per progress notification (payloads are limited to 8000 bytes;
/// an id and its newline take 37).
const PROGRESS_IDS_PER_NOTIFY: usize = 100;
/// Pause before re-listening after the listener's connection failed.
const LISTENER_RETRY: Duration = Duration::from_millis(500);
/// Buffered wake-ups per subscriber; a lagging subscriber just polls.
const EVENT_BUFFER: usize = 1024;

pub struct PostgresStore {
    pool: PgPool,
    events: broadcast::Sender<StoreEvent>,
    listener: JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What `sql/` calls this backend's database and store.
type Db = Postgres;
type Here = PostgresStore;

impl PostgresStore {
    /// Reads and writes share one pool.
    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Tell this process's subscribers (see [`dialect::announced_here`]).
    fn announce(&self, event: StoreEvent) {
        let _ = self.events.send(event);
    }

    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let listener = tokio::spawn(listen(pool.clone(), events.clone()));
        Ok(PostgresStore {
            pool,
            events,
            listener,
        })
    }
}

/// Follow the notification channels for as long as the store lives,
/// reconnecting after failures. After a reconnect, notifications may have
/// been missed, so it announces `JobsAvailable` once.
async fn listen(pool: PgPool, events: broadcast::Sender<StoreEvent>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for job notifications; retrying");
                tokio::time::sleep(LISTENER_RETRY).await;
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([
                JOBS_CHANNEL,
                CANCEL_CHANNEL,
                STATE_CHANNEL,
                PROGRESS_CHANNEL,
                RUN_CHANNEL,
            ])
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(LISTENER_RETRY).await;
            continue;
        }
        let _ = events.send(StoreEvent::JobsAvailable);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.channel() {
                    CANCEL_CHANNEL => {
                        if let Ok(id) = Uuid::parse_str(notification.payload()) {
                            let _ = events.send(StoreEvent::CancelRequested(id));
                        }
                    }
                    // Up to 100 lines `<job id> <state>` (one notification per statement).
                    STATE_CHANNEL => {
                        for line in notification.payload().lines() {
                            let mut parts = line.split(' ');
                            let id = parts.next().and_then(|id| Uuid::parse_str(id).ok());
                            let state = parts.next().and_then(JobState::parse);
                            if let (Some(id), Some(state)) = (id, state) {
                                let _ = events.send(StoreEvent::JobState(id, state));
                            }
                        }
                    }
                    // One job id a line.
                    PROGRESS_CHANNEL => {
                        for id in notification
                            .payload()
                            .lines()
                            .filter_map(|l| Uuid::parse_str(l).ok())
                        {
                            let _ = events.send(StoreEvent::JobProgress(id));
                        }
                    }
                    RUN_CHANNEL => {
                        let mut parts = notification.payload().split(' ');
                        let id = parts.next().and_then(|id| Uuid::parse_str(id).ok());
                        let state = parts.next().and_then(crate::workflow::RunState::parse);
                        if let (Some(id), Some(state)) = (id, state) {
                            let _ = events.send(StoreEvent::RunState(id, state));
                        }
                    }
                    _ => {
                        let _ = events.send(StoreEvent::JobsAvailable);
                    }
                },
                // The connection was lost; the next call reconnects.
                Ok(None) => {
                    let _ = events.send(StoreEvent::JobsAvailable);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "job notifications interrupted; reconnecting");
                    tokio::time::sleep(LISTENER_RETRY).await;
                    break;
                }
            }
        }
    }
}

/// The statements that differ from SQLite's; `sql/store.rs` calls them.
impl PostgresStore {
    /// Extend leases without waiting on any row lock: the leases still
    /// held, and whether a cancel was asked of each.
    async fn heartbeat(
        &self,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<(Id, bool)>, StoreError> {
        // `mine` reads without locking; `extended` skips rows other
        // transactions hold, so this statement never waits for a lock.
        Ok(sqlx::query_as(
            "WITH u AS (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) AS u(id, token)), \
             mine AS ( \
                SELECT j.id, j.cancel_requested FROM jobs j JOIN u ON j.id = u.id AND j.lease_token = u.token \
                WHERE j.state = 'running' \
             ), locked AS ( \
                SELECT j.id FROM jobs j JOIN u ON j.id = u.id AND j.lease_token = u.token \
                WHERE j.state = 'running' FOR NO KEY UPDATE OF j SKIP LOCKED \
             ), extended AS ( \
                UPDATE jobs SET lease_expires_at = $3 + $4 * interval '1 millisecond' \
                FROM locked WHERE jobs.id = locked.id RETURNING jobs.id \
             ) \
             SELECT id, cancel_requested FROM mine",
        )
        .bind(leases.iter().map(|l| l.job_id).collect::<Vec<_>>())
        .bind(leases.iter().map(|l| l.lease_token).collect::<Vec<_>>())
        .bind(now)
        .bind(lease.as_millis() as f64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Record outcomes in one statement, each fenced by its lease token:
    /// the jobs it changed, in their new states.
    async fn record(
        &self,
        conn: &mut PgConnection,
        finishes: &[Finish],
    ) -> Result<Vec<(JobId, JobState)>, StoreError> {
        let column = |f: fn(&Finish) -> Option<String>| finishes.iter().map(f).collect::<Vec<_>>();
        let rows: Vec<(Id, String)> = sqlx::query_as(
            "WITH u AS ( \
                SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], \
                                     $7::int[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], \
                                     $12::bigint[], $13::bigint[], $14::text[], $15::text[], $16::bigint[], \
                                     $17::smallint[], $18::text[], $19::text[]) \
                    AS u(id, token, state, result, error, run_at, attempt, outcome, message, started_at, finished_at, \
                         fuel, memory, host, log, dropped, percent, progress, http) \
             ), locked AS ( \
                SELECT jobs.id FROM jobs JOIN u ON jobs.id = u.id ORDER BY jobs.id FOR NO KEY UPDATE OF jobs \
             ), done AS ( \
                UPDATE jobs SET \
                       state = CASE WHEN jobs.cancel_requested AND u.state = 'retrying' THEN 'cancelled' \
                                    ELSE u.state END, \
                       result = u.result::jsonb, error = u.error, run_at = COALESCE(u.run_at, jobs.run_at), \
                       finished_at = CASE WHEN u.state IN ('completed', 'dead', 'cancelled') \
                                            OR (jobs.cancel_requested AND u.state = 'retrying') \
                                          THEN u.finished_at END, \
                       lease_token = NULL, lease_expires_at = NULL, leased_by = NULL, \
                       progress_percent = COALESCE(u.percent, jobs.progress_percent), \
                       progress_message = CASE WHEN u.percent IS NULL THEN jobs.progress_message ELSE u.progress END \
                FROM u \
                WHERE jobs.id = u.id AND jobs.id IN (SELECT id FROM locked) \
                  AND jobs.lease_token = u.token AND jobs.state = 'running' \
                  AND jobs.attempt = u.attempt \
                  AND (u.outcome <> 'lease_expired' OR jobs.lease_expires_at < u.finished_at) \
                RETURNING jobs.id, jobs.tenant_id, jobs.state \
             ), recorded AS ( \
             INSERT INTO attempts (job_id, attempt, tenant_id, outcome, message, started_at, finished_at, \
                                   fuel_consumed, peak_memory_bytes, host_id, log, log_dropped_bytes, http) \
             SELECT u.id, u.attempt, done.tenant_id, u.outcome, u.message, u.started_at, u.finished_at, u.fuel, \
                    u.memory, u.host, u.log, u.dropped, u.http::jsonb \
             FROM u JOIN done ON done.id = u.id \
             RETURNING job_id \
             ) \
             SELECT done.id, done.state FROM done JOIN recorded ON recorded.job_id = done.id",
        )
        .bind(finishes.iter().map(|f| f.job_id).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.lease_token).collect::<Vec<_>>())
        .bind(column(|f| Some(f.transition.state().as_str().to_string())))
        .bind(column(|f| match &f.transition {
            Transition::Complete { result } => Some(result.clone()),
            _ => None,
        }))
        .bind(column(|f| match &f.transition {
            Transition::Retry { error, .. } | Transition::Dead { error } => Some(error.clone()),
            Transition::Cancel => Some("cancelled".into()),
            Transition::Complete { .. } => None,
        }))
        .bind(
            finishes
                .iter()
                .map(|f| match &f.transition {
                    Transition::Retry { run_at, .. } => Some(*run_at),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
        .bind(finishes.iter().map(|f| f.attempt.attempt as i32).collect::<Vec<_>>())
        .bind(column(|f| Some(f.attempt.outcome.as_str().to_string())))
        .bind(column(|f| f.attempt.message.clone()))
        .bind(finishes.iter().map(|f| f.attempt.started_at).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.attempt.finished_at).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| big(f.attempt.fuel_consumed)).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| big(f.attempt.peak_memory_bytes)).collect::<Vec<_>>())
        .bind(column(|f| Some(f.attempt.host_id.clone())))
        .bind(column(|f| Some(f.attempt.log.clone())))
        .bind(finishes.iter().map(|f| big(f.attempt.log_dropped_bytes)).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.progress.as_ref().map(|p| i16::from(p.percent))).collect::<Vec<_>>())
        .bind(column(|f| f.progress.as_ref().map(|p| p.message.clone())))
        .bind(column(|f| f.attempt.http.as_ref().and_then(|h| serde_json::to_string(h).ok())))
        .fetch_all(conn)
        .await?;
        rows.into_iter()
            .map(|(id, state)| Ok((id.0, super::rows::state(&state, JobState::parse)?)))
            .collect()
    }

    /// Record progress, fenced, and NOTIFY it in the same statement.
    async fn progress(&self, updates: &[ProgressUpdate]) -> Result<(), StoreError> {
        for chunk in updates.chunks(PROGRESS_IDS_PER_NOTIFY) {
            sqlx::query(
                "WITH u AS ( \
                    SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::smallint[], $4::text[]) \
                        AS u(id, token, percent, message) \
                 ), changed AS ( \
                    UPDATE jobs SET progress_percent = u.percent, progress_message = u.message FROM u \
                    WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.state = 'running' \
                      AND jobs.id IN (SELECT id FROM jobs WHERE id = ANY($1) FOR NO KEY UPDATE SKIP LOCKED) \
                    RETURNING jobs.id \
                 ) \
                 SELECT pg_notify($5, string_agg(id::text, E'\\n')) FROM changed HAVING count(*) > 0",
            )
            .bind(chunk.iter().map(|u| u.job_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.lease_token).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| i16::from(u.progress.percent)).collect::<Vec<_>>())
            .bind(chunk.iter().map(|u| u.progress.message.clone()).collect::<Vec<_>>())
            .bind(PROGRESS_CHANNEL)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn insert_jobs(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: &str,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError> {
        let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
        let inserted = sqlx::query_scalar::<_, Uuid>(
            "WITH input AS ( \
                SELECT * FROM UNNEST($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::int[], \
                                     $8::timestamptz[], $9::int[], $10::bigint[], $11::text[], $13::uuid[]) \
                    WITH ORDINALITY AS i(id, plugin, version, input, queue, priority, run_at, max_attempts, \
                                         timeout_ms, idempotency_key, replay_of, ord) \
             ), wanted AS ( \
                SELECT DISTINCT plugin, version FROM input \
             ), found AS ( \
                SELECT w.plugin, w.version, p.version AS pinned, p.digest, p.max_attempts \
                FROM wanted w LEFT JOIN LATERAL ( \
                    SELECT version, digest, max_attempts FROM plugins \
                    WHERE tenant_id = $1 AND name = w.plugin AND (w.version IS NULL OR version = w.version) \
                      AND deleted_at IS NULL \
                    ORDER BY version DESC LIMIT 1 FOR SHARE) p ON TRUE \
             ), resolved AS ( \
                SELECT i.*, f.pinned, f.digest, f.max_attempts AS plugin_max_attempts \
                FROM input i LEFT JOIN found f \
                  ON f.plugin = i.plugin AND f.version IS NOT DISTINCT FROM i.version \
             ) \
             INSERT INTO jobs (id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input, attempt, \
                               max_attempts, timeout_ms, run_at, created_at, idempotency_key, replay_of) \
             SELECT id, $1, plugin, pinned, digest, queue, priority, \
                    CASE WHEN run_at > $12 THEN 'scheduled' ELSE 'available' END, input::jsonb, 0, \
                    COALESCE(max_attempts, plugin_max_attempts), timeout_ms, run_at, $12, idempotency_key, replay_of \
             FROM resolved ORDER BY ord \
             ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
             RETURNING id",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(jobs.iter().map(|j| j.plugin.clone()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.version.map(|v| v as i32)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.input.clone()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.queue.clone()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.run_at.unwrap_or(now)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts.map(|n| n as i32)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.timeout_ms.map(big)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.idempotency_key.clone()).collect::<Vec<_>>())
        .bind(now)
        .bind(jobs.iter().map(|j| j.replay_of).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await;
        let created: std::collections::HashSet<Uuid> = match inserted {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) if is_not_null_violation(&e) => {
                return Err(self.unknown_plugin(tenant, jobs).await);
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::unknown_tenant(tenant));
            }
            Err(e) => return Err(e.into()),
        };
        // Jobs not created matched an idempotency key: answer with the first job.
        let mut existing = std::collections::HashMap::new();
        if created.len() < jobs.len() {
            let keys: Vec<String> = jobs
                .iter()
                .filter_map(|j| j.idempotency_key.clone())
                .collect();
            let rows = sqlx::query("SELECT idempotency_key, id FROM jobs WHERE tenant_id = $1 AND idempotency_key = ANY($2)")
                .bind(tenant)
                .bind(&keys)
                .fetch_all(&mut *conn)
                .await?;
            for row in rows {
                existing.insert(row.try_get::<String, _>(0)?, row.try_get::<Uuid, _>(1)?);
            }
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
}

impl PostgresStore {
    /// Name the plugin (and version) of a batch that does not exist.
    async fn unknown_plugin(&self, tenant: &str, jobs: &[NewJob]) -> StoreError {
        for job in jobs {
            match sql::store::plugin_version(self.reader(), tenant, &job.plugin, job.version).await
            {
                Ok(Some(_)) => continue,
                Ok(None) => return StoreError::unknown_plugin(&job.plugin, job.version),
                Err(e) => return e,
            }
        }
        StoreError::UnknownPlugin("a job names a plugin that does not exist".into())
    }
}

fn is_not_null_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23502"))
}
