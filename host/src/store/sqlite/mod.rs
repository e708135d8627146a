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
#[path = "../sql/mod.rs"]
mod sql;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection};
use tokio::sync::broadcast;
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

/// A listed job's columns without its input, result and context (see
/// [`JobFilter::bodies`]).
const LISTED_JOB_COLUMNS: &str = "id, tenant_id, plugin, plugin_version, digest, queue, priority, state, \
     '' AS input, NULL AS result, error, attempt, max_attempts, timeout_ms, run_at, created_at, started_at, \
     finished_at, cancel_requested, idempotency_key, replay_of, progress_percent, progress_message, \
     workflow_run_id, workflow_step";

fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

fn time(v: i64) -> Result<Timestamp, sqlx::Error> {
    Timestamp::from_timestamp_micros(v)
        .ok_or_else(|| sqlx::Error::Decode(format!("time out of range: {v}").into()))
}

fn opt_time(v: Option<i64>) -> Result<Option<Timestamp>, sqlx::Error> {
    v.map(time).transpose()
}

fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn job_from_row(row: &SqliteRow) -> Result<Job, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: uuid(row, "id")?,
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
        run_at: time(row.try_get("run_at")?)?,
        created_at: time(row.try_get("created_at")?)?,
        started_at: opt_time(row.try_get("started_at")?)?,
        finished_at: opt_time(row.try_get("finished_at")?)?,
        cancel_requested: row.try_get("cancel_requested")?,
        idempotency_key: row.try_get("idempotency_key")?,
        replay_of: row
            .try_get::<Option<String>, _>("replay_of")?
            .map(|id| Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e))))
            .transpose()?,
        progress: row
            .try_get::<Option<i64>, _>("progress_percent")?
            .map(|percent| -> Result<Progress, sqlx::Error> {
                Ok(Progress {
                    percent: u8::try_from(percent).unwrap_or(0),
                    message: row
                        .try_get::<Option<String>, _>("progress_message")?
                        .unwrap_or_default(),
                })
            })
            .transpose()?,
        workflow_run_id: opt_uuid(row, "workflow_run_id")?,
        workflow_step: row.try_get("workflow_step")?,
    })
}

fn opt_uuid(row: &SqliteRow, column: &str) -> Result<Option<Uuid>, sqlx::Error> {
    row.try_get::<Option<String>, _>(column)?
        .map(|id| Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

fn limits_from_row(row: &SqliteRow) -> Result<Limits, sqlx::Error> {
    Ok(Limits {
        fuel: to_u64(row.try_get("fuel")?),
        memory_bytes: to_u64(row.try_get("memory_bytes")?),
        timeout_ms: to_u64(row.try_get("plugin_timeout_ms")?),
        result_bytes: to_u64(row.try_get("result_bytes")?),
        log_bytes: to_u64(row.try_get("log_bytes")?),
    })
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant, sqlx::Error> {
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
        created_at: time(row.try_get("created_at")?)?,
    })
}

const PLUGIN_COLUMNS: &str = "p.tenant_id, p.name, p.version, p.digest, b.size, p.fuel, p.memory_bytes, \
     p.timeout_ms AS plugin_timeout_ms, p.result_bytes, p.log_bytes, p.max_attempts, p.config, p.http, p.created_at";

fn plugin_from_row(row: &SqliteRow) -> Result<PluginVersion, sqlx::Error> {
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
        created_at: time(row.try_get("created_at")?)?,
    })
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

/// A version of a plugin (the latest when `version` is none), on a
/// transaction or a pool.
async fn plugin_version<'e>(
    executor: impl sqlx::Executor<'e, Database = Sqlite>,
    tenant: &str,
    name: &str,
    version: Option<u32>,
) -> Result<Option<PluginVersion>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
         WHERE p.tenant_id = ?1 AND p.name = ?2 AND (?3 IS NULL OR p.version = ?3) AND p.deleted_at IS NULL \
         ORDER BY p.version DESC LIMIT 1"
    ))
    .bind(tenant)
    .bind(name)
    .bind(version.map(|v| v as i64))
    .fetch_optional(executor)
    .await?;
    Ok(row.as_ref().map(plugin_from_row).transpose()?)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.writer)
            .await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.reader)
                .await?;
        let known = sqlx::migrate!("../migrations/sqlite").iter().count() as i64;
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )
        .bind(&tenant.id)
        .bind(&tenant.name)
        .bind(q.max_concurrency as i64)
        .bind(to_i64(q.max_fuel_per_attempt))
        .bind(q.max_memory_mb as i64)
        .bind(to_i64(q.max_timeout_ms))
        .bind(to_i64(q.max_plugin_bytes))
        .bind(to_i64(q.max_queued_jobs))
        .bind(q.enqueue_per_minute as i64)
        .bind(micros(tenant.created_at))
        .bind(to_i64(q.max_stored_plugin_bytes))
        .bind(q.max_schedules as i32)
        .bind(q.max_workflows as i32)
        .bind(q.max_workflow_versions as i32)
        .bind(q.max_http_requests_per_attempt as i32)
        .bind(to_i64(q.max_http_response_bytes))
        .execute(&self.writer)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
                format!("tenant `{}` already exists", tenant.id),
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn tenant_get(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(tenant_from_row).transpose()?)
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&self.writer)
            .await?;
        Ok(rows.iter().map(tenant_from_row).collect::<Result<_, _>>()?)
    }

    async fn tenant_delete(&self, id: &str) -> Result<bool, StoreError> {
        loop {
            let deleted = sqlx::query(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE tenant_id = ?1 LIMIT ?2)",
            )
            .bind(id)
            .bind(i64::from(super::TENANT_DELETE_BATCH))
            .execute(&self.writer)
            .await?
            .rows_affected();
            if deleted < u64::from(super::TENANT_DELETE_BATCH) {
                break;
            }
        }
        let mut tx = self.writer.begin().await?;
        let digests: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT digest FROM plugins WHERE tenant_id = ?1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        // Runs first: their steps pin plugins, and PostgreSQL checks that
        // reference before a cascade two levels deep (tenant, workflow, run)
        // reaches them.
        sqlx::query("DELETE FROM workflow_runs WHERE tenant_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Everything else the tenant owns goes with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Bytes no other plugin uses (one writer: nothing can race this).
        sqlx::query(
            "DELETE FROM plugin_blobs WHERE digest IN (SELECT value FROM json_each(?1)) \
             AND NOT EXISTS (SELECT 1 FROM plugins p WHERE p.digest = plugin_blobs.digest)",
        )
        .bind(serde_json::to_string(&digests).map_err(|e| StoreError::Invalid(e.to_string()))?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted == 1)
    }

    async fn tenant_update_quotas(
        &self,
        id: &str,
        quotas: &Quotas,
    ) -> Result<Option<Tenant>, StoreError> {
        let q = quotas;
        let row = sqlx::query(
            "UPDATE tenants SET max_concurrency = ?2, max_fuel_per_attempt = ?3, max_memory_mb = ?4, \
             max_timeout_ms = ?5, max_plugin_bytes = ?6, max_queued_jobs = ?7, enqueue_per_minute = ?8, \
             max_stored_plugin_bytes = ?9, max_schedules = ?10, max_workflows = ?11, max_workflow_versions = ?12, \
             max_http_requests_per_attempt = ?13, max_http_response_bytes = ?14 \
             WHERE id = ?1 RETURNING *",
        )
        .bind(id)
        .bind(q.max_concurrency as i64)
        .bind(to_i64(q.max_fuel_per_attempt))
        .bind(q.max_memory_mb as i64)
        .bind(to_i64(q.max_timeout_ms))
        .bind(to_i64(q.max_plugin_bytes))
        .bind(to_i64(q.max_queued_jobs))
        .bind(q.enqueue_per_minute as i64)
        .bind(to_i64(q.max_stored_plugin_bytes))
        .bind(q.max_schedules as i32)
        .bind(q.max_workflows as i32)
        .bind(q.max_workflow_versions as i32)
        .bind(q.max_http_requests_per_attempt as i32)
        .bind(to_i64(q.max_http_response_bytes))
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.as_ref().map(tenant_from_row).transpose()?)
    }

    async fn api_key_insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        if let Some(tenant) = &key.tenant_id
            && self.tenant_get(tenant).await?.is_none()
        {
            return Err(StoreError::unknown_tenant(tenant));
        }
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, secret_hash, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.secret_hash)
        .bind(micros(key.created_at))
        .bind(key.revoked_at.map(micros))
        .execute(&self.writer)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("key `{}` exists", key.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn api_key_get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, secret_hash, created_at, revoked_at FROM api_keys WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|row| -> Result<ApiKey, sqlx::Error> {
            Ok(ApiKey {
                id: row.try_get(0)?,
                tenant_id: row.try_get(1)?,
                secret_hash: row.try_get(2)?,
                created_at: time(row.try_get(3)?)?,
                revoked_at: opt_time(row.try_get(4)?)?,
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
            "UPDATE api_keys SET revoked_at = ?3 WHERE tenant_id IS ?1 AND id = ?2 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(micros(now))
        .execute(&self.writer)
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
             WHERE tenant_id IS ?1 ORDER BY created_at, id LIMIT ?2",
        )
        .bind(tenant)
        .bind(i64::from(limit))
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKey {
                    id: row.try_get(0)?,
                    tenant_id: row.try_get(1)?,
                    secret_hash: row.try_get(2)?,
                    created_at: time(row.try_get(3)?)?,
                    revoked_at: opt_time(row.try_get(4)?)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn admin_key_exists(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id IS NULL AND revoked_at IS NULL)",
        )
        .fetch_one(&self.writer)
        .await?)
    }

    async fn plugin_insert(
        &self,
        plugin: &NewPlugin,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(PluginVersion, bool), StoreError> {
        let mut tx = self.writer.begin().await?;
        let tenant_exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = ?1")
            .bind(&plugin.tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        if tenant_exists.is_none() {
            return Err(StoreError::unknown_tenant(&plugin.tenant_id));
        }
        sqlx::query(
            // Restores bytes a delete collected (see plugin_delete).
            "INSERT INTO plugin_blobs (digest, bytes, size, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (digest) DO UPDATE SET bytes = excluded.bytes, size = excluded.size \
             WHERE plugin_blobs.size = 0",
        )
        .bind(&plugin.digest)
        .bind(bytes)
        .bind(bytes.len() as i64)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let latest = plugin_version(&mut *tx, &plugin.tenant_id, &plugin.name, None).await?;
        if let Some(latest) = latest.as_ref().filter(|p| p.digest == plugin.digest) {
            tx.commit().await?;
            return Ok((latest.clone(), false));
        }
        // Numbers of deleted versions are not reused.
        let newest: Option<i64> = sqlx::query_scalar(
            "SELECT max(version) FROM plugins WHERE tenant_id = ?1 AND name = ?2",
        )
        .bind(&plugin.tenant_id)
        .bind(&plugin.name)
        .fetch_one(&mut *tx)
        .await?;
        let version = newest.map(|v| to_u32(v as i32) + 1).unwrap_or(1);
        let l = &plugin.limits;
        sqlx::query(
            "INSERT INTO plugins (tenant_id, name, version, digest, fuel, memory_bytes, timeout_ms, result_bytes, \
             log_bytes, max_attempts, config, http, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             COALESCE((SELECT config FROM plugins WHERE tenant_id = ?1 AND name = ?2 ORDER BY version DESC LIMIT 1), '{}'), \
             COALESCE(?12, (SELECT http FROM plugins WHERE tenant_id = ?1 AND name = ?2 ORDER BY version DESC LIMIT 1), '{}'), \
             ?11)",
        )
        .bind(&plugin.tenant_id)
        .bind(&plugin.name)
        .bind(version as i64)
        .bind(&plugin.digest)
        .bind(to_i64(l.fuel))
        .bind(to_i64(l.memory_bytes))
        .bind(to_i64(l.timeout_ms))
        .bind(to_i64(l.result_bytes))
        .bind(to_i64(l.log_bytes))
        .bind(plugin.max_attempts as i64)
        .bind(micros(now))
        .bind(plugin.http.as_ref().map(json_text).transpose()?)
        .execute(&mut *tx)
        .await?;
        let stored = plugin_version(&mut *tx, &plugin.tenant_id, &plugin.name, Some(version))
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
        plugin_version(&self.reader, tenant, name, version).await
    }

    async fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
             WHERE p.tenant_id = ?1 AND p.version = (SELECT max(version) FROM plugins l \
                 WHERE l.tenant_id = p.tenant_id AND l.name = p.name AND l.deleted_at IS NULL) \
             ORDER BY p.name"
        ))
        .bind(tenant)
        .fetch_all(&self.reader)
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
             WHERE p.tenant_id = ?1 AND p.name = ?2 AND p.deleted_at IS NULL ORDER BY p.version DESC"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_all(&self.reader)
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
            "UPDATE plugins SET fuel = COALESCE(?3, fuel), memory_bytes = COALESCE(?4, memory_bytes), \
             timeout_ms = COALESCE(?5, timeout_ms), max_attempts = COALESCE(?6, max_attempts), \
             config = COALESCE(?7, config), http = COALESCE(?8, http) \
             WHERE tenant_id = ?1 AND name = ?2 AND deleted_at IS NULL",
        )
        .bind(tenant)
        .bind(name)
        .bind(l.map(|l| to_i64(l.fuel)))
        .bind(l.map(|l| to_i64(l.memory_bytes)))
        .bind(l.map(|l| to_i64(l.timeout_ms)))
        .bind(max_attempts.map(|n| n as i64))
        .bind(config)
        .bind(http)
        .execute(&self.writer)
        .await?;
        self.plugin_get(tenant, name, None).await
    }

    async fn plugin_blob_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM plugin_blobs WHERE digest = ?1 AND size > 0")
                .bind(digest)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn plugin_stored_bytes(&self, tenant: &str, except: &str) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(size), 0) FROM plugin_blobs WHERE digest <> ?2 AND digest IN \
                 (SELECT digest FROM plugins WHERE tenant_id = ?1 AND deleted_at IS NULL)",
        )
        .bind(tenant)
        .bind(except)
        .fetch_one(&self.writer)
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
        // One writer: the count and the delete are atomic against enqueues.
        let mut tx = self.writer.begin().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM plugins WHERE tenant_id = ?1 AND name = ?2 AND version = ?3 \
             AND deleted_at IS NULL",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i64)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(PluginDelete::NotFound);
        }
        let pinned: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM jobs WHERE tenant_id = ?1 AND plugin = ?2 AND plugin_version = ?3 \
                     AND state IN ('scheduled', 'available', 'running', 'retrying')) \
                  + (SELECT count(*) FROM workflow_steps WHERE tenant_id = ?1 AND plugin = ?2 \
                     AND plugin_version = ?3 AND state IN ('pending', 'running'))",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i64)
        .fetch_one(&mut *tx)
        .await?;
        if pinned > 0 {
            return Ok(PluginDelete::InUse(to_u64(pinned)));
        }
        sqlx::query(
            "UPDATE plugins SET deleted_at = ?4 WHERE tenant_id = ?1 AND name = ?2 AND version = ?3",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i64)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        // The bytes go once no live version of any tenant names them (the
        // tombstones keep the digest; an upload of the same bytes restores
        // them). One writer: no upload can come in between.
        sqlx::query(
            "UPDATE plugin_blobs SET bytes = x'', size = 0 WHERE digest = \
                 (SELECT digest FROM plugins WHERE tenant_id = ?1 AND name = ?2 AND version = ?3) \
             AND NOT EXISTS (SELECT 1 FROM plugins WHERE digest = plugin_blobs.digest AND deleted_at IS NULL)",
        )
        .bind(tenant)
        .bind(name)
        .bind(version as i64)
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
        if let Some(key) = key
            && let Some(stored) = sql::request_keys::find(&self.reader, tenant, key).await?
        {
            return Ok(request_keys::replayed_jobs(key.replay(stored)?));
        }
        let mut tx = self.writer.begin().await?;
        let inserted = insert_jobs(&mut tx, tenant, jobs, now).await?;
        if let Some(key) = key {
            let answer = request_keys::answer(inserted.iter().map(|i| i.id));
            if !sql::request_keys::put(&mut tx, tenant, key, &answer, now).await? {
                // Another request took the key since it was looked up.
                tx.rollback().await?;
                let stored = sql::request_keys::find(&self.reader, tenant, key)
                    .await?
                    .ok_or_else(|| StoreError::Conflict("an idempotency key vanished".into()))?;
                return Ok(request_keys::replayed_jobs(key.replay(stored)?));
            }
        }
        tx.commit().await?;
        self.announce(StoreEvent::JobsAvailable);
        Ok(inserted)
    }

    async fn job_list(
        &self,
        tenant: &str,
        filter: &JobFilter,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        // Ids are hyphenated lower-case UUIDv7 text: ordered as text by time.
        let columns = if filter.bodies {
            "*"
        } else {
            LISTED_JOB_COLUMNS
        };
        let query = format!(
            "SELECT {columns} FROM jobs WHERE tenant_id = ?1 AND (?2 IS NULL OR state = ?2) \
             AND (?3 IS NULL OR queue = ?3) AND (?4 IS NULL OR plugin = ?4) \
             AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6"
        );
        let rows = sqlx::query(&query)
            .bind(tenant)
            .bind(filter.state.map(|s| s.as_str()))
            .bind(&filter.queue)
            .bind(&filter.plugin)
            .bind(after.map(|id| id.to_string()))
            .bind(limit as i64)
            .fetch(&self.reader);
        let jobs = futures_util::StreamExt::map(rows, |row| row.and_then(|row| job_from_row(&row)));
        super::collect_page(jobs, filter.bodies).await
    }

    async fn job_get(&self, tenant: &str, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query("SELECT * FROM jobs WHERE tenant_id = ?1 AND id = ?2")
            .bind(tenant)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(job_from_row).transpose()?)
    }

    async fn job_claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = micros(request.now);
        let queues = request
            .queues
            .as_ref()
            .map(|q| serde_json::to_string(q).unwrap_or_else(|_| "[]".into()));
        let mut tx = self.writer.begin().await?;
        // Free capacity per tenant, from an exact count (the writer is the only writer).
        let capacity = sqlx::query(
            // INDEXED BY: without statistics SQLite would count through the
            // tenant's every job instead of the small partial index.
            "SELECT id, free, busy FROM (SELECT t.id, t.max_concurrency - r.n AS free, r.n AS busy FROM tenants t \
                 JOIN (SELECT t2.id AS tenant, (SELECT count(*) FROM jobs j INDEXED BY jobs_running \
                       WHERE j.tenant_id = t2.id AND j.state = 'running') AS n FROM tenants t2) r ON r.tenant = t.id) \
             WHERE free > 0",
        )
        .fetch_all(&mut *tx)
        .await?;
        // Per tenant, its best waiting jobs; then each tenant's first before anyone's second.
        let mut candidates: Vec<(i64, i64, i32, i64, String)> = Vec::new();
        for row in &capacity {
            let tenant: String = row.try_get(0)?;
            let free: i64 = row.try_get(1)?;
            let busy: i64 = row.try_get(2)?;
            let waiting = sqlx::query(
                "SELECT id, priority, run_at FROM jobs \
                 WHERE tenant_id = ?1 AND state IN ('scheduled', 'available', 'retrying') AND run_at <= ?2 \
                   AND (?3 IS NULL OR queue IN (SELECT value FROM json_each(?3))) \
                 ORDER BY priority DESC, run_at, id LIMIT ?4",
            )
            .bind(&tenant)
            .bind(now)
            .bind(&queues)
            .bind(free.min(request.limit as i64))
            .fetch_all(&mut *tx)
            .await?;
            for (rank, job) in waiting.iter().enumerate() {
                candidates.push((
                    rank as i64,
                    busy,
                    job.try_get(1)?,
                    job.try_get(2)?,
                    job.try_get(0)?,
                ));
            }
        }
        candidates.sort_by(|a, b| (a.0, a.1, -a.2, a.3, &a.4).cmp(&(b.0, b.1, -b.2, b.3, &b.4)));
        candidates.truncate(request.limit as usize);

        let order: HashMap<String, usize> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.4.clone(), i))
            .collect();
        let ids = serde_json::to_string(&candidates.iter().map(|c| &c.4).collect::<Vec<_>>())
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let lease_until = now + request.lease.as_micros() as i64;
        // Lease tokens are 32 random hex digits (a UUID in its simple form).
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = lower(hex(randomblob(16))), \
             lease_expires_at = ?2, leased_by = ?3, started_at = COALESCE(started_at, ?4), attempt_started_at = ?4 \
             WHERE id IN (SELECT value FROM json_each(?1)) \
             RETURNING id, tenant_id, plugin, plugin_version, digest, input, attempt, max_attempts, timeout_ms, \
             lease_token, run_at, context, workflow_run_id, (SELECT json_object('fuel', fuel, 'memory_bytes', memory_bytes, 'timeout_ms', timeout_ms, \
             'result_bytes', result_bytes, 'log_bytes', log_bytes, 'config', json(config), 'http', json(http), \
             'max_fuel', t.max_fuel_per_attempt, 'max_memory_mb', t.max_memory_mb, 'max_timeout_ms', t.max_timeout_ms, \
             'max_http_requests', t.max_http_requests_per_attempt, 'max_http_response_bytes', t.max_http_response_bytes) \
             FROM plugins p JOIN tenants t ON t.id = p.tenant_id \
             WHERE p.tenant_id = jobs.tenant_id AND p.name = jobs.plugin AND p.version = jobs.plugin_version) AS plugin",
        )
        .bind(ids)
        .bind(lease_until)
        .bind(&request.host_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let plugin: String = row.try_get("plugin")?;
            let plugin: PluginRow =
                serde_json::from_str(&plugin).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            claimed.push(ClaimedJob {
                id: uuid(row, "id")?,
                tenant_id: row.try_get("tenant_id")?,
                plugin: row.try_get(2)?,
                version: to_u32(row.try_get("plugin_version")?),
                digest: row.try_get("digest")?,
                input: row.try_get("input")?,
                attempt: to_u32(row.try_get("attempt")?),
                max_attempts: to_u32(row.try_get("max_attempts")?),
                limits: claimed_limits(
                    Limits {
                        fuel: plugin.fuel,
                        memory_bytes: plugin.memory_bytes,
                        timeout_ms: plugin.timeout_ms,
                        result_bytes: plugin.result_bytes,
                        log_bytes: plugin.log_bytes,
                    },
                    row.try_get("timeout_ms")?,
                    caps_from(plugin.max_fuel, plugin.max_memory_mb, plugin.max_timeout_ms),
                ),
                config: plugin.config,
                http: claimed_http(
                    serde_json::from_value(plugin.http).unwrap_or_default(),
                    plugin.max_http_requests,
                    plugin.max_http_response_bytes,
                ),
                lease_token: uuid(row, "lease_token")?,
                run_at: time(row.try_get("run_at")?)?,
                context: row.try_get("context")?,
                workflow_run_id: opt_uuid(row, "workflow_run_id")?,
            });
        }
        // RETURNING has no order: restore the fair order of the claim.
        claimed.sort_by_key(|job| {
            order
                .get(&job.id.to_string())
                .copied()
                .unwrap_or(usize::MAX)
        });
        tx.commit().await?;
        for job in &claimed {
            self.announce(StoreEvent::JobState(job.id, JobState::Running));
        }
        Ok(claimed)
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
        let rows: Vec<serde_json::Value> = leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "id": l.job_id.to_string(),
                    "token": l.lease_token.simple().to_string(),
                })
            })
            .collect();
        let rows = sqlx::query(
            "WITH u AS (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.token') AS token \
                        FROM json_each(?1)) \
             UPDATE jobs SET lease_expires_at = ?2 FROM u \
             WHERE jobs.id = u.id AND jobs.lease_token = u.token AND jobs.state = 'running' \
             RETURNING jobs.id, jobs.cancel_requested",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(micros(now) + lease.as_micros() as i64)
        .fetch_all(&self.writer)
        .await?;
        let mut beat = Heartbeat::default();
        for row in rows {
            let id = uuid(&row, "id")?;
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
                    "fuel": to_i64(a.fuel_consumed),
                    "memory": to_i64(a.peak_memory_bytes),
                    "host": a.host_id,
                    "log": a.log,
                    "dropped": to_i64(a.log_dropped_bytes),
                    "http": a.http.as_ref().and_then(|h| serde_json::to_string(h).ok()),
                    "percent": f.progress.as_ref().map(|p| p.percent),
                    "progress": f.progress.as_ref().map(|p| p.message.as_str()),
                })
            })
            .collect();
        let batch = serde_json::Value::Array(rows).to_string();
        let mut tx = sql::Tx::begin(self).await?;
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
        .fetch_all(tx.conn())
        .await?;
        let mut changed = Vec::with_capacity(updated.len());
        for row in &updated {
            let state: String = row.try_get(1)?;
            if let Some(state) = JobState::parse(&state) {
                changed.push((uuid(row, "id")?, state));
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
        .execute(tx.conn())
        .await?;
        let applied: std::collections::HashSet<JobId> = changed.iter().map(|(id, _)| *id).collect();
        for (id, state) in &changed {
            tx.announce(StoreEvent::JobState(*id, *state));
        }
        // Workflow steps: advance their runs in the same transaction.
        if finishes.iter().any(|f| f.workflow_run_id.is_some()) {
            let now = finishes
                .iter()
                .map(|f| f.attempt.finished_at)
                .max()
                .unwrap_or_else(chrono::Utc::now);
            let ids: Vec<Id> = changed.iter().map(|(id, _)| Id(*id)).collect();
            let done = sql::workflows::finished_step_jobs(tx.conn(), &ids).await?;
            sql::workflows::advance_runs(&mut tx, done, now).await?;
        }
        tx.commit().await?;
        Ok(finishes
            .iter()
            .map(|f| applied.contains(&f.job_id))
            .collect())
    }

    async fn job_progress(&self, updates: &[ProgressUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
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
            self.announce(StoreEvent::JobProgress(uuid(row, "id")?));
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
        let taken = sqlx::query(
            "INSERT INTO tenant_enqueue_rate AS r (tenant_id, window_start, jobs) \
             SELECT ?1, ?2, ?3 WHERE ?3 <= ?4 \
             ON CONFLICT (tenant_id) DO UPDATE SET window_start = excluded.window_start, \
                 jobs = CASE WHEN r.window_start = excluded.window_start THEN r.jobs + excluded.jobs \
                             ELSE excluded.jobs END \
             WHERE (CASE WHEN r.window_start = excluded.window_start THEN r.jobs + excluded.jobs \
                         ELSE excluded.jobs END) <= ?4",
        )
        .bind(tenant)
        .bind(micros(rate_window(now)))
        .bind(to_i64(jobs))
        .bind(to_i64(per_minute))
        .execute(&self.writer)
        .await;
        match taken {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::unknown_tenant(tenant))
            }
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
            "UPDATE tenant_enqueue_rate SET jobs = max(jobs - ?3, 0) \
             WHERE tenant_id = ?1 AND window_start = ?2",
        )
        .bind(tenant)
        .bind(micros(rate_window(now)))
        .bind(to_i64(jobs))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn job_waiting_count(&self, tenant: &str, cap: u64) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE tenant_id = ?1 \
                 AND state IN ('scheduled', 'available', 'retrying') LIMIT ?2)",
        )
        .bind(tenant)
        .bind(to_i64(cap))
        .fetch_one(&self.reader)
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
             leased_by = NULL, run_at = COALESCE(?3, run_at) WHERE id = ?1 AND lease_token = ?2 AND state = 'running'",
        )
        .bind(id.to_string())
        .bind(lease_token.simple().to_string())
        .bind(not_before.map(micros))
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1;
        if released {
            self.announce(StoreEvent::JobState(id, JobState::Available));
            self.announce(StoreEvent::JobsAvailable);
        }
        Ok(released)
    }

    async fn job_cancel(
        &self,
        tenant: &str,
        id: JobId,
        now: Timestamp,
    ) -> Result<CancelResult, StoreError> {
        let mut tx = sql::Tx::begin(self).await?;
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
                state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END, \
                cancel_requested = 1, \
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE ?3 END, \
                error = CASE WHEN state = 'running' THEN error ELSE 'cancelled' END \
             WHERE tenant_id = ?1 AND id = ?2 AND state NOT IN ('completed', 'dead', 'cancelled') \
             RETURNING state",
        )
        .bind(tenant)
        .bind(id.to_string())
        .bind(micros(now))
        .fetch_optional(tx.conn())
        .await?;
        match state.as_deref() {
            Some("running") => {
                tx.announce(StoreEvent::CancelRequested(id));
                tx.commit().await?;
                Ok(CancelResult::Requested)
            }
            Some(_) => {
                // A workflow step's job: its run goes on without it.
                tx.announce(StoreEvent::JobState(id, JobState::Cancelled));
                let done = sql::workflows::finished_step_jobs(tx.conn(), &[Id(id)]).await?;
                sql::workflows::advance_runs(&mut tx, done, now).await?;
                tx.commit().await?;
                Ok(CancelResult::Cancelled)
            }
            None => {
                tx.rollback().await?;
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM jobs WHERE tenant_id = ?1 AND id = ?2")
                        .bind(tenant)
                        .bind(id.to_string())
                        .fetch_optional(&self.writer)
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
             WHERE state = 'running' AND lease_expires_at < ?1 ORDER BY lease_expires_at LIMIT ?2",
        )
        .bind(micros(now))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiredLease {
                    job_id: uuid(row, "id")?,
                    lease_token: uuid(row, "lease_token")?,
                    attempt: to_u32(row.try_get("attempt")?),
                    max_attempts: to_u32(row.try_get("max_attempts")?),
                    leased_by: row.try_get("leased_by")?,
                    started_at: opt_time(row.try_get("attempt_started_at")?)?.unwrap_or(now),
                    workflow_run_id: opt_uuid(row, "workflow_run_id")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn job_prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs j WHERE finished_at < ?1 \
               AND (workflow_run_id IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM workflow_runs r WHERE r.id = j.workflow_run_id AND r.state = 'running')) \
             ORDER BY finished_at LIMIT ?2)",
        )
        .bind(micros(before))
        .bind(limit as i64)
        .execute(&self.writer)
        .await?
        .rows_affected()
            + sqlx::query(
                "DELETE FROM workflow_runs WHERE id IN ( \
                    SELECT id FROM workflow_runs WHERE finished_at < ?1 ORDER BY finished_at LIMIT ?2)",
            )
            .bind(micros(before))
            .bind(limit as i64)
            .execute(&self.writer)
            .await?
            .rows_affected()
            + sqlx::query(
                "DELETE FROM request_keys WHERE rowid IN ( \
                    SELECT rowid FROM request_keys WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)",
            )
            .bind(micros(before))
            .bind(limit as i64)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn attempt_list(&self, tenant: &str, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, outcome, message, started_at, finished_at, fuel_consumed, peak_memory_bytes, host_id, \
             log, log_dropped_bytes, http FROM attempts WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY attempt",
        )
        .bind(tenant)
        .bind(id.to_string())
        .fetch_all(&self.reader)
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
                    started_at: time(row.try_get("started_at")?)?,
                    finished_at: time(row.try_get("finished_at")?)?,
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
        let rows = sqlx::query(
            "SELECT state, count(*) FROM jobs WHERE ?1 IS NULL OR tenant_id = ?1 GROUP BY state",
        )
        .bind(tenant)
        .fetch_all(&self.reader)
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

    async fn job_live_counts(&self, now: Timestamp) -> Result<LiveJobCounts, StoreError> {
        // INDEXED BY: read only the partial indexes of waiting and running
        // jobs, never the finished ones (SQLite fails the statement rather
        // than scan the table if the index cannot serve it).
        let rows = sqlx::query(
            "SELECT state, count(*) FROM jobs INDEXED BY jobs_waiting \
             WHERE state IN ('scheduled', 'available', 'retrying') GROUP BY state \
             UNION ALL SELECT 'running', count(*) FROM jobs INDEXED BY jobs_running WHERE state = 'running'",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut counts = LiveJobCounts::default();
        for row in rows {
            let state: String = row.try_get(0)?;
            if let Some(state) = JobState::parse(&state) {
                counts.by_state.insert(state, to_u64(row.try_get(1)?));
            }
        }
        let rows = sqlx::query(
            "SELECT queue, count(*) AS n FROM jobs INDEXED BY jobs_waiting \
             WHERE state IN ('scheduled', 'available', 'retrying') AND run_at <= ?1 \
             GROUP BY queue ORDER BY n DESC, queue LIMIT ?2",
        )
        .bind(micros(now))
        .bind(i64::from(MAX_QUEUES_REPORTED))
        .fetch_all(&self.reader)
        .await?;
        for row in rows {
            counts
                .due_by_queue
                .insert(row.try_get(0)?, to_u64(row.try_get(1)?));
        }
        Ok(counts)
    }
}

/// A claimed job's plugin settings, read as one JSON object.
#[derive(serde::Deserialize)]
struct PluginRow {
    fuel: u64,
    memory_bytes: u64,
    timeout_ms: u64,
    result_bytes: u64,
    log_bytes: u64,
    config: std::collections::BTreeMap<String, String>,
    /// Settings that no longer parse deny every request (see `parse_http`).
    #[serde(default)]
    http: serde_json::Value,
    /// The tenant's quotas on one attempt.
    max_fuel: i64,
    max_memory_mb: i64,
    max_timeout_ms: i64,
    max_http_requests: i64,
    max_http_response_bytes: i64,
}

/// Insert checked jobs in one statement on `conn`, pinning each to a plugin version.
async fn insert_jobs(
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
            let found = plugin_version(&mut *conn, tenant, &job.plugin, job.version)
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
                "timeout_ms": job.timeout_ms.map(to_i64),
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
        let existing: String =
            sqlx::query_scalar("SELECT id FROM jobs WHERE tenant_id = ?1 AND idempotency_key = ?2")
                .bind(tenant)
                .bind(&job.idempotency_key)
                .fetch_one(&mut *conn)
                .await?;
        let id = Uuid::parse_str(&existing).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        out.push(Inserted { id, created: false });
    }
    Ok(out)
}
