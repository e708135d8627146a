//! The PostgreSQL store: any number of hosts share one database.
//!
//! Transactions, locks and round trips, operation by operation:
//! - **enqueue**: one `INSERT … SELECT FROM UNNEST(…)` for the whole batch
//!   (one round trip, atomic). The plugin version is resolved in the same
//!   statement, once per distinct plugin (and locked `FOR SHARE` once per
//!   plugin, not once per job); an unknown plugin leaves `digest` NULL, which the NOT NULL
//!   constraint turns into an error for the whole batch. A statement-level
//!   trigger NOTIFYs `corral_jobs`.
//! - **claim**: one transaction: `pg_advisory_xact_lock(CLAIM_LOCK)` then one
//!   statement. The lock serializes claimers across hosts, so the count of
//!   running jobs per tenant that the statement reads is exact and
//!   `max_concurrency` holds across hosts (completions only lower the count,
//!   so a stale count can only under-claim). The statement takes, per tenant
//!   with free capacity, its best waiting jobs (`FOR UPDATE SKIP LOCKED`, so
//!   rows a cancel is touching are skipped, not waited on), then interleaves
//!   tenants round-robin (each tenant's first job before anyone's second,
//!   tenants with fewer running jobs first) and leases the batch.
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
#[path = "../sql/mod.rs"]
mod sql;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::codec::Id;
use super::request_keys::RequestKey;
use super::{
    Backend, CancelResult, ClaimRequest, ExpiredLease, Heartbeat, Inserted, JobFilter, Lease,
    LiveJobCounts, MAX_QUEUES_REPORTED, NewPlugin, PluginDelete, Store, StoreError, StoreEvent,
    caps_from, claimed_http, claimed_limits, json_text, parse_calls, parse_config, parse_http,
    rate_window, request_keys, to_i64, to_u32, to_u64, validate_jobs,
};
use crate::model::{
    ApiKey, Attempt, ClaimedJob, Finish, Job, JobId, JobState, Limits, NewJob, OutcomeKind,
    PluginVersion, Progress, ProgressUpdate, Quotas, Tenant, Timestamp, Transition,
};

/// Connections per host. Workers use a few (claim, finish, heartbeat,
/// listener); the API the rest.
const MAX_CONNECTIONS: u32 = 16;
/// How long a caller waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The advisory lock that serializes claims (any constant unique to Corral).
const CLAIM_LOCK: i64 = 0x636f_7272_616c; // "corral"
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

fn job_from_row(row: &PgRow) -> Result<Job, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        plugin: row.try_get("plugin")?,
        version: to_u32(row.try_get("plugin_version")?),
        digest: row.try_get("digest")?,
        queue: row.try_get("queue")?,
        priority: row.try_get("priority")?,
        state: JobState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job state {state}").into()))?,
        input: row.try_get("input")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        attempt: to_u32(row.try_get("attempt")?),
        max_attempts: to_u32(row.try_get("max_attempts")?),
        timeout_ms: row.try_get::<Option<i64>, _>("timeout_ms")?.map(to_u64),
        run_at: row.try_get("run_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        cancel_requested: row.try_get("cancel_requested")?,
        idempotency_key: row.try_get("idempotency_key")?,
        replay_of: row.try_get("replay_of")?,
        progress: progress_from_row(row)?,
        workflow_run_id: row.try_get("workflow_run_id")?,
        workflow_step: row.try_get("workflow_step")?,
    })
}

fn progress_from_row(row: &PgRow) -> Result<Option<Progress>, sqlx::Error> {
    let percent: Option<i16> = row.try_get("progress_percent")?;
    Ok(percent.map(|percent| Progress {
        percent: u8::try_from(percent).unwrap_or(0),
        message: row
            .try_get::<Option<String>, _>("progress_message")
            .ok()
            .flatten()
            .unwrap_or_default(),
    }))
}

const JOB_COLUMNS: &str = "id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input::text AS input, \
     result::text AS result, error, attempt, max_attempts, timeout_ms, run_at, created_at, started_at, finished_at, \
     cancel_requested, idempotency_key, replay_of, progress_percent, progress_message, workflow_run_id, workflow_step";

fn limits_from_row(row: &PgRow) -> Result<Limits, sqlx::Error> {
    Ok(Limits {
        fuel: to_u64(row.try_get("fuel")?),
        memory_bytes: to_u64(row.try_get("memory_bytes")?),
        timeout_ms: to_u64(row.try_get("plugin_timeout_ms")?),
        result_bytes: to_u64(row.try_get("result_bytes")?),
        log_bytes: to_u64(row.try_get("log_bytes")?),
    })
}

fn plugin_from_row(row: &PgRow) -> Result<PluginVersion, sqlx::Error> {
    let config: String = row.try_get("config")?;
    Ok(PluginVersion {
        tenant_id: row.try_get("tenant_id")?,
        name: row.try_get("name")?,
        version: to_u32(row.try_get("version")?),
        digest: row.try_get("digest")?,
        size: to_u64(row.try_get("size")?),
        limits: limits_from_row(row)?,
        max_attempts: to_u32(row.try_get("max_attempts")?),
        config: parse_config(&config),
        http: parse_http(&row.try_get::<String, _>("http")?),
        created_at: row.try_get("created_at")?,
    })
}

const PLUGIN_COLUMNS: &str = "p.tenant_id, p.name, p.version, p.digest, b.size, p.fuel, p.memory_bytes, \
     p.timeout_ms AS plugin_timeout_ms, p.result_bytes, p.log_bytes, p.max_attempts, p.config::text AS config, p.http::text AS http, p.created_at";

fn tenant_from_row(row: &PgRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        quotas: Quotas {
            max_concurrency: to_u32(row.try_get("max_concurrency")?),
            max_fuel_per_attempt: to_u64(row.try_get("max_fuel_per_attempt")?),
            max_memory_mb: to_u32(row.try_get("max_memory_mb")?),
            max_timeout_ms: to_u64(row.try_get("max_timeout_ms")?),
            max_plugin_bytes: to_u64(row.try_get("max_plugin_bytes")?),
            max_queued_jobs: to_u64(row.try_get("max_queued_jobs")?),
            enqueue_per_minute: to_u32(row.try_get("enqueue_per_minute")?),
            max_stored_plugin_bytes: to_u64(row.try_get("max_stored_plugin_bytes")?),
            max_schedules: to_u32(row.try_get("max_schedules")?),
            max_workflows: to_u32(row.try_get("max_workflows")?),
            max_workflow_versions: to_u32(row.try_get("max_workflow_versions")?),
            max_http_requests_per_attempt: to_u32(row.try_get("max_http_requests_per_attempt")?),
            max_http_response_bytes: to_u64(row.try_get("max_http_response_bytes")?),
        },
        created_at: row.try_get("created_at")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(super) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

fn is_not_null_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23502"))
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        let known = sqlx::migrate!("../migrations/postgres").iter().count() as i64;
        if applied < known {
            return Err(StoreError::Conflict(format!(
                "{applied} of {known} migrations applied; run `corral migrate`"
            )));
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn tenant_insert(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let q = &tenant.quotas;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, name, max_concurrency, max_fuel_per_attempt, max_memory_mb, max_timeout_ms, \
             max_plugin_bytes, max_queued_jobs, enqueue_per_minute, created_at, max_stored_plugin_bytes, \
             max_schedules, max_workflows, max_workflow_versions, max_http_requests_per_attempt, \
             max_http_response_bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(q.max_concurrency as i32)
        .bind(to_i64(q.max_fuel_per_attempt))
        .bind(q.max_memory_mb as i32)
        .bind(to_i64(q.max_timeout_ms))
        .bind(to_i64(q.max_plugin_bytes))
        .bind(to_i64(q.max_queued_jobs))
        .bind(q.enqueue_per_minute as i32)
        .bind(tenant.created_at)
        .bind(to_i64(q.max_stored_plugin_bytes))
        .bind(q.max_schedules as i32)
        .bind(q.max_workflows as i32)
        .bind(q.max_workflow_versions as i32)
        .bind(q.max_http_requests_per_attempt as i32)
        .bind(to_i64(q.max_http_response_bytes))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "tenant `{}` already exists",
                tenant.id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn tenant_get(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(tenant_from_row).transpose()?)
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(tenant_from_row).collect::<Result<_, _>>()?)
    }

    async fn tenant_delete(&self, id: &str) -> Result<bool, StoreError> {
        loop {
            let deleted = sqlx::query(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE tenant_id = $1 LIMIT $2)",
            )
            .bind(id)
            .bind(i64::from(super::TENANT_DELETE_BATCH))
            .execute(&self.pool)
            .await?
            .rows_affected();
            if deleted < u64::from(super::TENANT_DELETE_BATCH) {
                break;
            }
        }
        let mut tx = self.pool.begin().await?;
        let digests: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT digest FROM plugins WHERE tenant_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        // Runs first: their steps pin plugins, and PostgreSQL checks that
        // reference before a cascade two levels deep (tenant, workflow, run)
        // reaches them.
        sqlx::query("DELETE FROM workflow_runs WHERE tenant_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Everything else the tenant owns goes with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        // Bytes no other plugin uses; after the commit, so a concurrent
        // upload of the same bytes by another tenant cannot fail the delete.
        if let Err(e) = sqlx::query(
            "DELETE FROM plugin_blobs b WHERE digest = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM plugins p WHERE p.digest = b.digest)",
        )
        .bind(&digests)
        .execute(&self.pool)
        .await
        {
            tracing::warn!(tenant = id, error = %e, "could not delete a deleted tenant's plugin bytes");
        }
        Ok(deleted == 1)
    }

    async fn tenant_update_quotas(
        &self,
        id: &str,
        quotas: &Quotas,
    ) -> Result<Option<Tenant>, StoreError> {
        let q = quotas;
        let row = sqlx::query(
            "UPDATE tenants SET max_concurrency = $2, max_fuel_per_attempt = $3, max_memory_mb = $4, \
             max_timeout_ms = $5, max_plugin_bytes = $6, max_queued_jobs = $7, enqueue_per_minute = $8, \
             max_stored_plugin_bytes = $9, max_schedules = $10, max_workflows = $11, max_workflow_versions = $12, \
             max_http_requests_per_attempt = $13, max_http_response_bytes = $14 \
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(q.max_concurrency as i32)
        .bind(to_i64(q.max_fuel_per_attempt))
        .bind(q.max_memory_mb as i32)
        .bind(to_i64(q.max_timeout_ms))
        .bind(to_i64(q.max_plugin_bytes))
        .bind(to_i64(q.max_queued_jobs))
        .bind(q.enqueue_per_minute as i32)
        .bind(to_i64(q.max_stored_plugin_bytes))
        .bind(q.max_schedules as i32)
        .bind(q.max_workflows as i32)
        .bind(q.max_workflow_versions as i32)
        .bind(q.max_http_requests_per_attempt as i32)
        .bind(to_i64(q.max_http_response_bytes))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(tenant_from_row).transpose()?)
    }

    async fn api_key_insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, secret_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.secret_hash)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::unknown_tenant(
                key.tenant_id.as_deref().unwrap_or_default(),
            )),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!("key `{}` exists", key.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn api_key_get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, secret_hash, created_at, revoked_at FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<ApiKey, sqlx::Error> {
            Ok(ApiKey {
                id: row.try_get(0)?,
                tenant_id: row.try_get(1)?,
                secret_hash: row.try_get(2)?,
                created_at: row.try_get(3)?,
                revoked_at: row.try_get(4)?,
            })
        })
        .transpose()
        .map_err(StoreError::from)
    }

    async fn api_key_revoke(
        &self,
        tenant: Option<&str>,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE tenant_id IS NOT DISTINCT FROM $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    async fn api_key_list(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, secret_hash, created_at, revoked_at FROM api_keys \
             WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at, id LIMIT $2",
        )
        .bind(tenant)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKey {
                    id: row.try_get(0)?,
                    tenant_id: row.try_get(1)?,
                    secret_hash: row.try_get(2)?,
                    created_at: row.try_get(3)?,
                    revoked_at: row.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn admin_key_exists(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id IS NULL AND revoked_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn plugin_insert(
        &self,
        plugin: &NewPlugin,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(PluginVersion, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            // Always an update on conflict: it locks the row until this
            // version is committed (so a delete cannot collect the bytes
            // in between), and restores bytes a delete collected.
            "INSERT INTO plugin_blobs (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (digest) DO UPDATE SET bytes = CASE WHEN plugin_blobs.size = 0 \
                 THEN EXCLUDED.bytes ELSE plugin_blobs.bytes END, size = EXCLUDED.size",
        )
        .bind(&plugin.digest)
        .bind(bytes)
        .bind(bytes.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Versions of one name are numbered one at a time.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
            .bind(&plugin.tenant_id)
            .bind(&plugin.name)
            .execute(&mut *tx)
            .await?;
        let latest = plugin_latest(&mut tx, &plugin.tenant_id, &plugin.name).await?;
        if let Some(latest) = &latest
            && latest.digest == plugin.digest
        {
            tx.commit().await?;
            return Ok((latest.clone(), false));
        }
        // Numbers of deleted versions are not reused.
        let newest: Option<i32> = sqlx::query_scalar(
            "SELECT max(version) FROM plugins WHERE tenant_id = $1 AND name = $2",
        )
        .bind(&plugin.tenant_id)
        .bind(&plugin.name)
        .fetch_one(&mut *tx)
        .await?;
        let version = newest.map(|v| to_u32(v) + 1).unwrap_or(1);
        let l = &plugin.limits;
        let inserted = sqlx::query(
            "INSERT INTO plugins (tenant_id, name, version, digest, fuel, memory_bytes, timeout_ms, result_bytes, \
             log_bytes, max_attempts, config, http, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             COALESCE((SELECT config FROM plugins WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1), '{}'), \
             COALESCE($12::jsonb, (SELECT http FROM plugins WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1), '{}'), \
             $11)",
        )
        .bind(&plugin.tenant_id)
        .bind(&plugin.name)
        .bind(version as i32)
        .bind(&plugin.digest)
        .bind(to_i64(l.fuel))
        .bind(to_i64(l.memory_bytes))
        .bind(to_i64(l.timeout_ms))
        .bind(to_i64(l.result_bytes))
        .bind(to_i64(l.log_bytes))
        .bind(plugin.max_attempts as i32)
        .bind(now)
        .bind(plugin.http.as_ref().map(json_text).transpose()?)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::unknown_tenant(&plugin.tenant_id));
            }
            Err(e) => return Err(e.into()),
        }
        let stored = plugin_latest(&mut tx, &plugin.tenant_id, &plugin.name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("plugin `{}`", plugin.name)))?;
        tx.commit().await?;
        Ok((stored, true))
    }

    async fn plugin_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<PluginVersion>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
             WHERE p.tenant_id = $1 AND p.name = $2 AND ($3::int IS NULL OR p.version = $3) AND p.deleted_at IS NULL \
             ORDER BY p.version DESC LIMIT 1"
        ))
        .bind(tenant)
        .bind(name)
        .bind(version.map(|v| v as i32))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(plugin_from_row).transpose()?)
    }

    async fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
             WHERE p.tenant_id = $1 AND p.version = (SELECT max(version) FROM plugins l \
                 WHERE l.tenant_id = p.tenant_id AND l.name = p.name AND l.deleted_at IS NULL) \
             ORDER BY p.name"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(plugin_from_row).collect::<Result<_, _>>()?)
    }

    async fn plugin_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<PluginVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
             WHERE p.tenant_id = $1 AND p.name = $2 AND p.deleted_at IS NULL ORDER BY p.version DESC"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(plugin_from_row).collect::<Result<_, _>>()?)
    }

    async fn plugin_update(
        &self,
        tenant: &str,
        name: &str,
        limits: Option<(Limits, u32)>,
        config: Option<&std::collections::BTreeMap<String, String>>,
        http: Option<&crate::runtime::outbound::HttpSettings>,
    ) -> Result<Option<PluginVersion>, StoreError> {
        let config = config.map(json_text).transpose()?;
        let http = http.map(json_text).transpose()?;
        let (l, max_attempts) = match limits {
            Some((l, n)) => (Some(l), Some(n)),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE plugins SET fuel = COALESCE($3, fuel), memory_bytes = COALESCE($4, memory_bytes), \
             timeout_ms = COALESCE($5, timeout_ms), max_attempts = COALESCE($6, max_attempts), \
             config = COALESCE($7::jsonb, config), http = COALESCE($8::jsonb, http) \
             WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL",
        )
        .bind(tenant)
        .bind(name)
        .bind(l.map(|l| to_i64(l.fuel)))
        .bind(l.map(|l| to_i64(l.memory_bytes)))
        .bind(l.map(|l| to_i64(l.timeout_ms)))
        .bind(max_attempts.map(|n| n as i64))
        .bind(config)
        .bind(http)
        .execute(&self.pool)
        .await?;
        self.plugin_get(tenant, name, None).await
    }

    async fn plugin_blob_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM plugin_blobs WHERE digest = $1 AND size > 0")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn plugin_stored_bytes(&self, tenant: &str, except: &str) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(size), 0)::bigint FROM plugin_blobs WHERE digest <> $2 AND digest IN \
                 (SELECT digest FROM plugins WHERE tenant_id = $1 AND deleted_at IS NULL)",
        )
        .bind(tenant)
        .bind(except)
        .fetch_one(&self.pool)
        .await?;
        Ok(to_u64(bytes))
    }

    async fn plugin_delete(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
        now: Timestamp,
    ) -> Result<PluginDelete, StoreError> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE (not the weaker NO KEY UPDATE) also waits for enqueues
        // holding the row FOR SHARE, so their jobs are counted below.
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT version FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3 \
             AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i32)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(PluginDelete::NotFound);
        }
        let pinned: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM jobs WHERE tenant_id = $1 AND plugin = $2 AND plugin_version = $3 \
                     AND state IN ('scheduled', 'available', 'running', 'retrying')) \
                  + (SELECT count(*) FROM workflow_steps WHERE tenant_id = $1 AND plugin = $2 \
                     AND plugin_version = $3 AND state IN ('pending', 'running'))",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i32)
        .fetch_one(&mut *tx)
        .await?;
        if pinned > 0 {
            return Ok(PluginDelete::InUse(to_u64(pinned)));
        }
        sqlx::query(
            "UPDATE plugins SET deleted_at = $4 WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i32)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The bytes go once no live version of any tenant names them (the
        // tombstones keep the digest; an upload of the same bytes restores
        // them). The blob row is locked first, so an upload in flight is
        // either seen by the count (a statement after the lock) or finds
        // the bytes already gone and restores them.
        sqlx::query(
            "SELECT 1 FROM plugin_blobs WHERE digest = \
                 (SELECT digest FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3) FOR UPDATE",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i32)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE plugin_blobs SET bytes = ''::bytea, size = 0 WHERE digest = \
                 (SELECT digest FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3) \
             AND NOT EXISTS (SELECT 1 FROM plugins WHERE digest = plugin_blobs.digest AND deleted_at IS NULL)",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i32)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PluginDelete::Deleted)
    }

    async fn job_insert_keyed(
        &self,
        tenant: &str,
        jobs: &[NewJob],
        key: Option<&RequestKey>,
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError> {
        validate_jobs(jobs)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let Some(key) = key else {
            return self
                .insert_jobs(&mut *self.pool.acquire().await?, tenant, jobs, now)
                .await;
        };
        if let Some(stored) = sql::request_keys::find(&self.pool, tenant, key).await? {
            return Ok(request_keys::replayed_jobs(key.replay(stored)?));
        }
        // The key is written in the jobs' transaction: a concurrent request
        // under it waits on the key's row and then finds it taken.
        let mut tx = self.pool.begin().await?;
        let inserted = self.insert_jobs(&mut tx, tenant, jobs, now).await?;
        let answer = request_keys::answer(inserted.iter().map(|i| i.id));
        if !sql::request_keys::put(&mut tx, tenant, key, &answer, now).await? {
            tx.rollback().await?;
            let stored = sql::request_keys::find(&self.pool, tenant, key)
                .await?
                .ok_or_else(|| StoreError::Conflict("an idempotency key vanished".into()))?;
            return Ok(request_keys::replayed_jobs(key.replay(stored)?));
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn job_list(
        &self,
        tenant: &str,
        filter: &JobFilter,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let columns = if filter.bodies {
            JOB_COLUMNS.to_string()
        } else {
            JOB_COLUMNS
                .replace("input::text AS input", "'' AS input")
                .replace("result::text AS result", "NULL::text AS result")
        };
        let query = format!(
            "SELECT {columns} FROM jobs WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2) \
             AND ($3::text IS NULL OR queue = $3) AND ($4::text IS NULL OR plugin = $4) \
             AND ($5::uuid IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
        );
        let rows = sqlx::query(&query)
            .bind(tenant)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(&filter.queue)
            .bind(&filter.plugin)
            .bind(after)
            .bind(limit as i64)
            .fetch(&self.pool);
        let jobs = futures_util::StreamExt::map(rows, |row| row.and_then(|row| job_from_row(&row)));
        super::collect_page(jobs, filter.bodies).await
    }

    async fn job_get(&self, tenant: &str, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    async fn job_claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "WITH running AS ( \
                SELECT tenant_id, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY tenant_id \
             ), capacity AS ( \
                SELECT t.id, t.max_concurrency - COALESCE(r.n, 0) AS free, COALESCE(r.n, 0) AS busy \
                FROM tenants t LEFT JOIN running r ON r.tenant_id = t.id \
                WHERE t.max_concurrency > COALESCE(r.n, 0) \
             ), candidates AS ( \
                SELECT j.id, c.busy, j.priority, j.run_at, \
                       row_number() OVER (PARTITION BY c.id ORDER BY j.priority DESC, j.run_at, j.id) AS rank \
                FROM capacity c CROSS JOIN LATERAL ( \
                    SELECT id, priority, run_at FROM jobs \
                    WHERE tenant_id = c.id AND state IN ('scheduled', 'available', 'retrying') AND run_at <= $1 \
                      AND ($4::text[] IS NULL OR queue = ANY($4)) \
                    ORDER BY priority DESC, run_at, id \
                    LIMIT LEAST(c.free, $2) \
                    FOR UPDATE SKIP LOCKED) j \
             ), picked AS ( \
                SELECT id FROM candidates ORDER BY rank, busy, priority DESC, run_at, id LIMIT $2 \
             ) \
             UPDATE jobs SET state = 'running', attempt = jobs.attempt + 1, lease_token = gen_random_uuid(), \
                    lease_expires_at = $1 + $3 * interval '1 millisecond', leased_by = $5, \
                    started_at = COALESCE(jobs.started_at, $1), attempt_started_at = $1 \
             FROM picked, plugins p, tenants t \
             WHERE jobs.id = picked.id AND p.tenant_id = jobs.tenant_id AND p.name = jobs.plugin \
               AND p.version = jobs.plugin_version AND t.id = jobs.tenant_id \
             RETURNING jobs.id, jobs.tenant_id, jobs.plugin, jobs.plugin_version, jobs.digest, \
                       jobs.input::text AS input, jobs.attempt, jobs.max_attempts, jobs.timeout_ms, jobs.lease_token, \
                       jobs.run_at, jobs.context::text AS context, jobs.workflow_run_id, \
                       p.fuel, p.memory_bytes, p.timeout_ms AS plugin_timeout_ms, p.result_bytes, p.log_bytes, \
                       p.config::text AS config, p.http::text AS http, t.max_fuel_per_attempt, t.max_memory_mb::bigint AS max_memory_mb, \
                       t.max_timeout_ms, t.max_http_requests_per_attempt::bigint AS max_http_requests, \
                       t.max_http_response_bytes",
        )
        .bind(request.now)
        .bind(request.limit as i64)
        .bind(request.lease.as_millis() as f64)
        .bind(&request.queues)
        .bind(&request.host_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let config: String = row.try_get("config")?;
                Ok(ClaimedJob {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    plugin: row.try_get("plugin")?,
                    version: to_u32(row.try_get("plugin_version")?),
                    digest: row.try_get("digest")?,
                    input: row.try_get("input")?,
                    attempt: to_u32(row.try_get("attempt")?),
                    max_attempts: to_u32(row.try_get("max_attempts")?),
                    limits: claimed_limits(
                        limits_from_row(row)?,
                        row.try_get("timeout_ms")?,
                        caps_from(
                            row.try_get("max_fuel_per_attempt")?,
                            row.try_get("max_memory_mb")?,
                            row.try_get("max_timeout_ms")?,
                        ),
                    ),
                    config: parse_config(&config),
                    http: claimed_http(
                        parse_http(&row.try_get::<String, _>("http")?),
                        row.try_get("max_http_requests")?,
                        row.try_get("max_http_response_bytes")?,
                    ),
                    lease_token: row.try_get("lease_token")?,
                    run_at: row.try_get("run_at")?,
                    context: row.try_get("context")?,
                    workflow_run_id: row.try_get("workflow_run_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn job_heartbeat(
        &self,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        if leases.is_empty() {
            return Ok(Heartbeat::default());
        }
        // `mine` reads without locking; `extended` skips rows other
        // transactions hold, so this statement never waits for a lock.
        let rows = sqlx::query(
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
        .await?;
        let mut beat = Heartbeat::default();
        for row in rows {
            let id: Uuid = row.try_get(0)?;
            beat.held.push(id);
            if row.try_get::<bool, _>(1)? {
                beat.cancel_requested.push(id);
            }
        }
        Ok(beat)
    }

    async fn job_finish(&self, finishes: &[Finish]) -> Result<Vec<bool>, StoreError> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        let column = |f: fn(&Finish) -> Option<String>| finishes.iter().map(f).collect::<Vec<_>>();
        let statement = sqlx::query_scalar::<_, Uuid>(
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
                RETURNING jobs.id, jobs.tenant_id \
             ) \
             INSERT INTO attempts (job_id, attempt, tenant_id, outcome, message, started_at, finished_at, \
                                   fuel_consumed, peak_memory_bytes, host_id, log, log_dropped_bytes, http) \
             SELECT u.id, u.attempt, done.tenant_id, u.outcome, u.message, u.started_at, u.finished_at, u.fuel, \
                    u.memory, u.host, u.log, u.dropped, u.http::jsonb \
             FROM u JOIN done ON done.id = u.id \
             RETURNING job_id",
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
        .bind(finishes.iter().map(|f| to_i64(f.attempt.fuel_consumed)).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| to_i64(f.attempt.peak_memory_bytes)).collect::<Vec<_>>())
        .bind(column(|f| Some(f.attempt.host_id.clone())))
        .bind(column(|f| Some(f.attempt.log.clone())))
        .bind(finishes.iter().map(|f| to_i64(f.attempt.log_dropped_bytes)).collect::<Vec<_>>())
        .bind(finishes.iter().map(|f| f.progress.as_ref().map(|p| i16::from(p.percent))).collect::<Vec<_>>())
        .bind(column(|f| f.progress.as_ref().map(|p| p.message.clone())))
        .bind(column(|f| f.attempt.http.as_ref().and_then(|h| serde_json::to_string(h).ok())));
        let runs: Vec<Uuid> = finishes.iter().filter_map(|f| f.workflow_run_id).collect();
        let applied: Vec<Uuid> = if runs.is_empty() {
            statement.fetch_all(&self.pool).await?
        } else {
            // Workflow steps: lock their runs first (the order every writer
            // of runs follows), record the outcomes, and advance the runs in
            // the same transaction, so a finished step's dependents exist
            // exactly when its outcome does.
            let now = finishes
                .iter()
                .map(|f| f.attempt.finished_at)
                .max()
                .unwrap_or_else(chrono::Utc::now);
            let mut tx = sql::Tx::begin(self).await?;
            sql::workflows::lock_runs(&mut tx, &runs).await?;
            let applied = statement.fetch_all(tx.conn()).await?;
            let ids: Vec<Id> = applied.iter().copied().map(Id).collect();
            let done = sql::workflows::finished_step_jobs(tx.conn(), &ids).await?;
            sql::workflows::advance_runs(&mut tx, done, now).await?;
            tx.commit().await?;
            applied
        };
        let applied: std::collections::HashSet<Uuid> = applied.into_iter().collect();
        Ok(finishes
            .iter()
            .map(|f| applied.contains(&f.job_id))
            .collect())
    }

    async fn job_progress(&self, updates: &[ProgressUpdate]) -> Result<(), StoreError> {
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

    async fn enqueue_rate_take(
        &self,
        tenant: &str,
        jobs: u64,
        per_minute: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // A lost count after a crash is harmless, so this commit does not
        // wait for the disk (`synchronous_commit` off for this statement's
        // own transaction): the row lock it takes is held for microseconds,
        // and one tenant's enqueues do not queue behind each other's fsyncs.
        // One statement, one round trip.
        let taken = sqlx::query(
            "INSERT INTO tenant_enqueue_rate AS r (tenant_id, window_start, jobs) \
             SELECT $1, $2, $3 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick \
             WHERE $3 <= $4 \
             ON CONFLICT (tenant_id) DO UPDATE SET window_start = EXCLUDED.window_start, \
                 jobs = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.jobs + EXCLUDED.jobs \
                             ELSE EXCLUDED.jobs END \
             WHERE (CASE WHEN r.window_start = EXCLUDED.window_start THEN r.jobs + EXCLUDED.jobs \
                         ELSE EXCLUDED.jobs END) <= $4",
        )
        .bind(tenant)
        .bind(rate_window(now))
        .bind(to_i64(jobs))
        .bind(to_i64(per_minute))
        .execute(&self.pool)
        .await;
        match taken {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::unknown_tenant(tenant)),
            Err(e) => Err(e.into()),
        }
    }

    async fn enqueue_rate_return(
        &self,
        tenant: &str,
        jobs: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tenant_enqueue_rate SET jobs = GREATEST(jobs - $3, 0) \
             WHERE tenant_id = $1 AND window_start = $2",
        )
        .bind(tenant)
        .bind(rate_window(now))
        .bind(to_i64(jobs))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn job_waiting_count(&self, tenant: &str, cap: u64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE tenant_id = $1 \
                 AND state IN ('scheduled', 'available', 'retrying') LIMIT $2) w",
        )
        .bind(tenant)
        .bind(to_i64(cap))
        .fetch_one(&self.pool)
        .await?;
        Ok(to_u64(count))
    }

    async fn job_release(
        &self,
        id: JobId,
        lease_token: Uuid,
        not_before: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let released = sqlx::query(
            "UPDATE jobs SET state = 'available', attempt = attempt - 1, lease_token = NULL, lease_expires_at = NULL, \
             leased_by = NULL, run_at = COALESCE($3, run_at) WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(lease_token)
        .bind(not_before)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        if released {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(JOBS_CHANNEL)
                .execute(&self.pool)
                .await?;
        }
        Ok(released)
    }

    async fn job_cancel(
        &self,
        tenant: &str,
        id: JobId,
        now: Timestamp,
    ) -> Result<CancelResult, StoreError> {
        // A workflow step's job: lock its run first, and advance the run if
        // the job is cancelled now (a waiting job).
        let run: Option<Option<Uuid>> =
            sqlx::query_scalar("SELECT workflow_run_id FROM jobs WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let mut tx = sql::Tx::begin(self).await?;
        if let Some(Some(run)) = run {
            sql::workflows::lock_runs(&mut tx, &[run]).await?;
        }
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
                state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END, \
                cancel_requested = TRUE, \
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE $3 END, \
                error = CASE WHEN state = 'running' THEN error ELSE 'cancelled' END \
             WHERE tenant_id = $1 AND id = $2 AND state NOT IN ('completed', 'dead', 'cancelled') \
             RETURNING state",
        )
        .bind(tenant)
        .bind(id)
        .bind(now)
        .fetch_optional(tx.conn())
        .await?;
        match state.as_deref() {
            Some("running") => {
                tx.announce(StoreEvent::CancelRequested(id));
                tx.commit().await?;
                Ok(CancelResult::Requested)
            }
            Some(_) => {
                if matches!(run, Some(Some(_))) {
                    let done = sql::workflows::finished_step_jobs(tx.conn(), &[Id(id)]).await?;
                    sql::workflows::advance_runs(&mut tx, done, now).await?;
                }
                tx.commit().await?;
                Ok(CancelResult::Cancelled)
            }
            None => {
                tx.rollback().await?;
                let exists: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM jobs WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(if exists.is_some() {
                    CancelResult::AlreadyFinished
                } else {
                    CancelResult::NotFound
                })
            }
        }
    }

    async fn job_expired_leases(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ExpiredLease>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, lease_token, attempt, max_attempts, leased_by, attempt_started_at, workflow_run_id FROM jobs \
             WHERE state = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredLease {
                    job_id: row.try_get(0)?,
                    lease_token: row.try_get(1)?,
                    attempt: to_u32(row.try_get(2)?),
                    max_attempts: to_u32(row.try_get(3)?),
                    leased_by: row.try_get(4)?,
                    started_at: row.try_get::<Option<Timestamp>, _>(5)?.unwrap_or(now),
                    workflow_run_id: row.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn job_prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM jobs WHERE id IN ( \
                SELECT id FROM jobs j WHERE finished_at < $1 \
                  AND (workflow_run_id IS NULL OR NOT EXISTS ( \
                      SELECT 1 FROM workflow_runs r WHERE r.id = j.workflow_run_id AND r.state = 'running')) \
                ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(before)
        .bind(limit as i64)
        .execute(&self.pool)
        .await?
        .rows_affected()
            + sqlx::query(
                "DELETE FROM workflow_runs WHERE id IN ( \
                    SELECT id FROM workflow_runs WHERE finished_at < $1 ORDER BY finished_at LIMIT $2 \
                    FOR UPDATE SKIP LOCKED)",
            )
            .bind(before)
            .bind(limit as i64)
            .execute(&self.pool)
            .await?
            .rows_affected()
            + sqlx::query(
                "DELETE FROM request_keys WHERE (tenant_id, key) IN ( \
                    SELECT tenant_id, key FROM request_keys WHERE created_at < $1 ORDER BY created_at \
                    LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(before)
            .bind(limit as i64)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn attempt_list(&self, tenant: &str, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, outcome, message, started_at, finished_at, fuel_consumed, peak_memory_bytes, host_id, \
             log, log_dropped_bytes, http::text AS http FROM attempts WHERE tenant_id = $1 AND job_id = $2 ORDER BY attempt",
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let outcome: String = row.try_get("outcome")?;
                Ok(Attempt {
                    attempt: to_u32(row.try_get("attempt")?),
                    outcome: OutcomeKind::parse(&outcome).ok_or_else(|| {
                        sqlx::Error::Decode(format!("unknown outcome {outcome}").into())
                    })?,
                    message: row.try_get("message")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                    fuel_consumed: to_u64(row.try_get("fuel_consumed")?),
                    peak_memory_bytes: to_u64(row.try_get("peak_memory_bytes")?),
                    host_id: row.try_get("host_id")?,
                    log: row.try_get("log")?,
                    log_dropped_bytes: to_u64(row.try_get("log_dropped_bytes")?),
                    http: parse_calls(row.try_get("http")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn job_counts(
        &self,
        tenant: Option<&str>,
    ) -> Result<std::collections::BTreeMap<JobState, u64>, StoreError> {
        self.counts(tenant).await
    }

    async fn job_live_counts(&self, now: Timestamp) -> Result<LiveJobCounts, StoreError> {
        // Each branch's WHERE matches one partial index (jobs_waiting,
        // jobs_running), so finished jobs are never read.
        let rows = sqlx::query(
            "SELECT state, count(*) FROM jobs WHERE state IN ('scheduled', 'available', 'retrying') GROUP BY state \
             UNION ALL SELECT 'running', count(*) FROM jobs WHERE state = 'running'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = LiveJobCounts::default();
        for row in rows {
            let state: String = row.try_get(0)?;
            if let Some(state) = JobState::parse(&state) {
                counts.by_state.insert(state, to_u64(row.try_get(1)?));
            }
        }
        let rows = sqlx::query(
            "SELECT queue, count(*) AS n FROM jobs \
             WHERE state IN ('scheduled', 'available', 'retrying') AND run_at <= $1 \
             GROUP BY queue ORDER BY n DESC, queue LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(MAX_QUEUES_REPORTED))
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            counts
                .due_by_queue
                .insert(row.try_get(0)?, to_u64(row.try_get(1)?));
        }
        Ok(counts)
    }
}

impl PostgresStore {
    async fn counts(
        &self,
        tenant: Option<&str>,
    ) -> Result<std::collections::BTreeMap<JobState, u64>, StoreError> {
        let rows = sqlx::query("SELECT state, count(*) FROM jobs WHERE $1::text IS NULL OR tenant_id = $1 GROUP BY state")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        let mut counts = std::collections::BTreeMap::new();
        for row in rows {
            let state: String = row.try_get(0)?;
            if let Some(state) = JobState::parse(&state) {
                counts.insert(state, to_u64(row.try_get(1)?));
            }
        }
        Ok(counts)
    }

    /// Insert checked jobs in one statement on `conn`.
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
        .bind(jobs.iter().map(|j| j.timeout_ms.map(to_i64)).collect::<Vec<_>>())
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
            Err(e) if is_foreign_key_violation(&e) => {
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

    /// Name the plugin (and version) of a batch that does not exist.
    async fn unknown_plugin(&self, tenant: &str, jobs: &[NewJob]) -> StoreError {
        for job in jobs {
            match self.plugin_get(tenant, &job.plugin, job.version).await {
                Ok(Some(_)) => continue,
                Ok(None) => return StoreError::unknown_plugin(&job.plugin, job.version),
                Err(e) => return e,
            }
        }
        StoreError::UnknownPlugin("a job names a plugin that does not exist".into())
    }
}

async fn plugin_latest(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    name: &str,
) -> Result<Option<PluginVersion>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
         WHERE p.tenant_id = $1 AND p.name = $2 AND p.deleted_at IS NULL ORDER BY p.version DESC LIMIT 1"
    ))
    .bind(tenant)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.as_ref().map(plugin_from_row).transpose()?)
}
