//! The [`Store`] trait written once; the claim is in `claim.rs`, the
//! batched writes of jobs in `batches.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::super::{Db, Here, dialect};
use super::{Tx, batches, request_keys, workflows};
use crate::model::{
    ApiKey, Attempt, ClaimedJob, Finish, Job, JobId, JobState, Limits, NewJob, PluginVersion,
    ProgressUpdate, Quotas, Tenant, Timestamp,
};
use crate::store::codec::{At, Id, Json, List, Nat, Token, big};
use crate::store::request_keys::{self as keys, RequestKey};
use crate::store::rows::{
    AttemptRow, JOB_COLUMNS, JobRow, KeyLookupRow, KeyRow, PLUGIN_COLUMNS, PluginRow, QuotasRow,
    TenantRow,
};
use crate::store::{
    Backend, CancelResult, ClaimRequest, DeadGroup, ExpiredLease, Heartbeat, HostSeen, Inserted,
    JobCount, JobFilter, JobOverview, JobPage, KeyLookup, Lease, LiveJobCounts, NewPlugin,
    PluginDelete, RateLimit, Store, StoreError, StoreEvent, TENANT_DELETE_BATCH, json_text,
};
use sqlx::FromRow;

/// A tenant's quota columns, as [`crate::store::rows::QuotasRow`] reads
/// them and in the order [`bind_quotas`] binds them.
macro_rules! quota_columns {
    () => {
        "max_concurrency, max_fuel_per_attempt, max_memory_mb, max_timeout_ms, max_plugin_bytes, \
         max_queued_jobs, enqueue_per_minute, max_stored_plugin_bytes, max_schedules, max_workflows, \
         max_workflow_versions, max_http_requests_per_attempt, max_http_response_bytes"
    };
}

const TENANT_COLUMNS: &str = concat!("id, name, ", quota_columns!(), ", created_at");

const KEY_COLUMNS: &str = "id, tenant_id, secret_hash, created_at, revoked_at";

/// A version of a plugin (the latest when `version` is none).
pub(crate) async fn plugin_version<'e>(
    executor: impl sqlx::Executor<'e, Database = super::super::Db>,
    tenant: &str,
    name: &str,
    version: Option<u32>,
) -> Result<Option<PluginVersion>, StoreError> {
    let row: Option<PluginRow> = sqlx::query_as(&format!(
        "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
         WHERE p.tenant_id = $1 AND p.name = $2 AND ($3 IS NULL OR p.version = $3) \
           AND p.deleted_at IS NULL \
         ORDER BY p.version DESC LIMIT 1"
    ))
    .bind(tenant)
    .bind(name)
    .bind(version.map(i64::from))
    .fetch_optional(executor)
    .await?;
    Ok(row.map(PluginVersion::from))
}

/// Bind a tenant's quotas, in the order of [`TENANT_COLUMNS`].
fn bind_quotas<'q>(
    query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
    q: &Quotas,
) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
    query
        .bind(i64::from(q.max_concurrency))
        .bind(big(q.max_fuel_per_attempt))
        .bind(i64::from(q.max_memory_mb))
        .bind(big(q.max_timeout_ms))
        .bind(big(q.max_plugin_bytes))
        .bind(big(q.max_queued_jobs))
        .bind(i64::from(q.enqueue_per_minute))
        .bind(big(q.max_stored_plugin_bytes))
        .bind(i64::from(q.max_schedules))
        .bind(i64::from(q.max_workflows))
        .bind(i64::from(q.max_workflow_versions))
        .bind(i64::from(q.max_http_requests_per_attempt))
        .bind(big(q.max_http_response_bytes))
}

/// The same counts per state, for one tenant or all.
pub(super) fn counts(rows: Vec<(String, Nat<u64>)>) -> BTreeMap<JobState, u64> {
    rows.into_iter()
        .filter_map(|(s, n)| Some((JobState::parse(&s)?, n.0)))
        .collect()
}

#[async_trait]
impl Store for Here {
    fn backend(&self) -> Backend {
        dialect::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.writer().acquire().await?;
        dialect::migrator().run_direct(&mut *conn).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(self.reader())
                .await?;
        let known = dialect::migrator().iter().count() as i64;
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
        let insert = format!(
            "INSERT INTO tenants ({TENANT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        let inserted = bind_quotas(sqlx::query(&insert).bind(&tenant.id).bind(&tenant.name), q)
            .bind(At(tenant.created_at))
            .execute(self.writer())
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
        let row: Option<TenantRow> = sqlx::query_as(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(Tenant::from))
    }

    async fn tenant_list(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows: Vec<TenantRow> =
            sqlx::query_as(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
                .fetch_all(self.reader())
                .await?;
        Ok(rows.into_iter().map(Tenant::from).collect())
    }

    async fn tenant_delete(&self, id: &str) -> Result<bool, StoreError> {
        loop {
            let deleted = sqlx::query(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE tenant_id = $1 LIMIT $2)",
            )
            .bind(id)
            .bind(i64::from(TENANT_DELETE_BATCH))
            .execute(self.writer())
            .await?
            .rows_affected();
            if deleted < u64::from(TENANT_DELETE_BATCH) {
                break;
            }
        }
        let mut tx = Tx::begin(self).await?;
        let digests: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT digest FROM plugins WHERE tenant_id = $1")
                .bind(id)
                .fetch_all(tx.conn())
                .await?;
        // Runs first: their steps pin plugins, and PostgreSQL checks that
        // reference before a cascade two levels deep (tenant, workflow, run)
        // reaches them.
        sqlx::query("DELETE FROM workflow_runs WHERE tenant_id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
        // Everything else the tenant owns goes with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        // Bytes no other plugin uses; after the commit, so a concurrent
        // upload of the same bytes by another tenant cannot fail the delete.
        if let Err(e) = sqlx::query(&format!(
            "DELETE FROM plugin_blobs WHERE {} \
             AND NOT EXISTS (SELECT 1 FROM plugins p WHERE p.digest = plugin_blobs.digest)",
            dialect::any("digest", 1)
        ))
        .bind(List(&digests))
        .execute(self.writer())
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
        let update = format!(
            "UPDATE tenants SET max_concurrency = $2, max_fuel_per_attempt = $3, max_memory_mb = $4, \
             max_timeout_ms = $5, max_plugin_bytes = $6, max_queued_jobs = $7, enqueue_per_minute = $8, \
             max_stored_plugin_bytes = $9, max_schedules = $10, max_workflows = $11, max_workflow_versions = $12, \
             max_http_requests_per_attempt = $13, max_http_response_bytes = $14 \
             WHERE id = $1 RETURNING {TENANT_COLUMNS}"
        );
        let row = bind_quotas(sqlx::query(&update).bind(id), q)
            .fetch_optional(self.writer())
            .await?;
        let row = row.as_ref().map(TenantRow::from_row).transpose()?;
        Ok(row.map(Tenant::from))
    }

    async fn api_key_insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.secret_hash)
        .bind(At(key.created_at))
        .bind(key.revoked_at.map(At))
        .execute(self.writer())
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Err(
                StoreError::unknown_tenant(key.tenant_id.as_deref().unwrap_or_default()),
            ),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(format!("key `{}` exists", key.id)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn api_key_get(&self, id: &str) -> Result<Option<KeyLookup>, StoreError> {
        // The key and its tenant's quotas in one read: every tenant request
        // that enqueues or uploads needs both, and a second read was a
        // second round trip to the database on its way.
        let row = sqlx::query(&format!(
            "SELECT k.id, k.tenant_id, k.secret_hash, k.created_at, k.revoked_at, \
                    t.id IS NOT NULL AS has_tenant, {quotas} \
             FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id WHERE k.id = $1",
            quotas = quota_columns!()
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let lookup = KeyLookupRow::from_row(&row)?;
        let quotas = if lookup.has_tenant {
            Some(QuotasRow::from_row(&row)?.into())
        } else {
            None
        };
        Ok(Some(KeyLookup {
            key: lookup.key.into(),
            quotas,
        }))
    }

    async fn api_key_revoke(
        &self,
        tenant: Option<&str>,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE tenant_id IS NOT DISTINCT FROM $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .bind(At(now))
        .execute(self.writer())
        .await?;
        Ok(revoked.rows_affected() == 1)
    }

    async fn api_key_list(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys \
             WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY created_at, id LIMIT $2"
        ))
        .bind(tenant)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    async fn admin_key_exists(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id IS NULL AND revoked_at IS NULL)",
        )
        .fetch_one(self.reader())
        .await?)
    }

    async fn plugin_insert(
        &self,
        plugin: &NewPlugin,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(PluginVersion, bool), StoreError> {
        let mut tx = Tx::begin(self).await?;
        let tenant_exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1")
                .bind(&plugin.tenant_id)
                .fetch_optional(tx.conn())
                .await?;
        if tenant_exists.is_none() {
            return Err(StoreError::unknown_tenant(&plugin.tenant_id));
        }
        sqlx::query(
            // Always an update on conflict: on PostgreSQL it locks the row
            // until this version is committed (so a delete cannot collect
            // the bytes in between); it restores bytes a delete collected.
            "INSERT INTO plugin_blobs (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (digest) DO UPDATE SET bytes = CASE WHEN plugin_blobs.size = 0 \
                 THEN EXCLUDED.bytes ELSE plugin_blobs.bytes END, size = EXCLUDED.size",
        )
        .bind(&plugin.digest)
        .bind(bytes)
        .bind(bytes.len() as i64)
        .bind(At(now))
        .execute(tx.conn())
        .await?;
        // Versions of one name are numbered one at a time.
        dialect::lock_name(tx.conn(), &format!("{}/{}", plugin.tenant_id, plugin.name)).await?;
        let latest = plugin_version(tx.conn(), &plugin.tenant_id, &plugin.name, None).await?;
        if let Some(latest) = latest.filter(|p| p.digest == plugin.digest) {
            tx.commit().await?;
            return Ok((latest, false));
        }
        // Numbers of deleted versions are not reused.
        let newest: Option<Nat<u32>> = sqlx::query_scalar(
            "SELECT max(version) FROM plugins WHERE tenant_id = $1 AND name = $2",
        )
        .bind(&plugin.tenant_id)
        .bind(&plugin.name)
        .fetch_one(tx.conn())
        .await?;
        let version = newest.map_or(1, |v| v.0 + 1);
        let l = &plugin.limits;
        sqlx::query(
            "INSERT INTO plugins (tenant_id, name, version, digest, fuel, memory_bytes, timeout_ms, result_bytes, \
             log_bytes, max_attempts, config, http, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             COALESCE((SELECT config FROM plugins WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1), '{}'), \
             COALESCE($12, (SELECT http FROM plugins WHERE tenant_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1), '{}'), \
             $11)",
        )
        .bind(&plugin.tenant_id)
        .bind(&plugin.name)
        .bind(i64::from(version))
        .bind(&plugin.digest)
        .bind(big(l.fuel))
        .bind(big(l.memory_bytes))
        .bind(big(l.timeout_ms))
        .bind(big(l.result_bytes))
        .bind(big(l.log_bytes))
        .bind(i64::from(plugin.max_attempts))
        .bind(At(now))
        .bind(plugin.http.as_ref().map(json_text).transpose()?.map(Json))
        .execute(tx.conn())
        .await?;
        let stored = plugin_version(tx.conn(), &plugin.tenant_id, &plugin.name, Some(version))
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
        plugin_version(self.reader(), tenant, name, version).await
    }

    async fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginVersion>, StoreError> {
        let rows: Vec<PluginRow> = sqlx::query_as(&format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
             WHERE p.tenant_id = $1 AND p.version = (SELECT max(version) FROM plugins l \
                 WHERE l.tenant_id = p.tenant_id AND l.name = p.name AND l.deleted_at IS NULL) \
             ORDER BY p.name"
        ))
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(PluginVersion::from).collect())
    }

    async fn plugin_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<PluginVersion>, StoreError> {
        let rows: Vec<PluginRow> = sqlx::query_as(&format!(
            "SELECT {PLUGIN_COLUMNS} FROM plugins p JOIN plugin_blobs b ON b.digest = p.digest \
             WHERE p.tenant_id = $1 AND p.name = $2 AND p.deleted_at IS NULL ORDER BY p.version DESC"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(PluginVersion::from).collect())
    }

    async fn plugin_update(
        &self,
        tenant: &str,
        name: &str,
        limits: Option<(Limits, u32)>,
        config: Option<&BTreeMap<String, String>>,
        http: Option<&crate::runtime::outbound::HttpSettings>,
    ) -> Result<Option<PluginVersion>, StoreError> {
        let config = config.map(json_text).transpose()?.map(Json);
        let http = http.map(json_text).transpose()?.map(Json);
        let (l, max_attempts) = match limits {
            Some((l, n)) => (Some(l), Some(n)),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE plugins SET fuel = COALESCE($3, fuel), memory_bytes = COALESCE($4, memory_bytes), \
             timeout_ms = COALESCE($5, timeout_ms), max_attempts = COALESCE($6, max_attempts), \
             config = COALESCE($7, config), http = COALESCE($8, http) \
             WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL",
        )
        .bind(tenant)
        .bind(name)
        .bind(l.map(|l| big(l.fuel)))
        .bind(l.map(|l| big(l.memory_bytes)))
        .bind(l.map(|l| big(l.timeout_ms)))
        .bind(max_attempts.map(i64::from))
        .bind(config)
        .bind(http)
        .execute(self.writer())
        .await?;
        plugin_version(self.writer(), tenant, name, None).await
    }

    async fn plugin_blob_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT bytes FROM plugin_blobs WHERE digest = $1 AND size > 0")
                .bind(digest)
                .fetch_optional(self.reader())
                .await?,
        )
    }

    async fn plugin_stored_bytes(&self, tenant: &str, except: &str) -> Result<u64, StoreError> {
        let bytes: Nat<u64> = sqlx::query_scalar(
            "SELECT CAST(COALESCE(sum(size), 0) AS BIGINT) FROM plugin_blobs WHERE digest <> $2 \
             AND digest IN (SELECT digest FROM plugins WHERE tenant_id = $1 AND deleted_at IS NULL)",
        )
        .bind(tenant)
        .bind(except)
        .fetch_one(self.writer())
        .await?;
        Ok(bytes.0)
    }

    async fn plugin_delete(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
        now: Timestamp,
    ) -> Result<PluginDelete, StoreError> {
        let version = i64::from(version);
        let mut tx = Tx::begin(self).await?;
        // FOR UPDATE (not the weaker NO KEY UPDATE) also waits for enqueues
        // holding the row FOR SHARE, so their jobs are counted below
        // (SQLite: the one writer makes the count and the delete atomic).
        let found: Option<Nat<u32>> = sqlx::query_scalar(&format!(
            "SELECT version FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3 \
             AND deleted_at IS NULL {}",
            dialect::FOR_UPDATE
        ))
        .bind(tenant)
        .bind(name)
        .bind(version)
        .fetch_optional(tx.conn())
        .await?;
        if found.is_none() {
            return Ok(PluginDelete::NotFound);
        }
        let pinned: Nat<u64> = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM jobs WHERE tenant_id = $1 AND plugin = $2 AND plugin_version = $3 \
                     AND state IN ('scheduled', 'available', 'running', 'retrying')) \
                  + (SELECT count(*) FROM workflow_steps WHERE tenant_id = $1 AND plugin = $2 \
                     AND plugin_version = $3 AND state IN ('pending', 'running'))",
        )
        .bind(tenant)
        .bind(name)
        .bind(version)
        .fetch_one(tx.conn())
        .await?;
        if pinned.0 > 0 {
            return Ok(PluginDelete::InUse(pinned.0));
        }
        sqlx::query(
            "UPDATE plugins SET deleted_at = $4 WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(version)
        .bind(At(now))
        .execute(tx.conn())
        .await?;
        // The bytes go once no live version of any tenant names them (the
        // tombstones keep the digest; an upload of the same bytes restores
        // them). The blob row is locked first, so an upload in flight is
        // either seen by the count (a statement after the lock) or finds
        // the bytes already gone and restores them.
        sqlx::query(&format!(
            "SELECT 1 FROM plugin_blobs WHERE digest = \
                 (SELECT digest FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3) {}",
            dialect::FOR_UPDATE
        ))
        .bind(tenant)
        .bind(name)
        .bind(version)
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "UPDATE plugin_blobs SET bytes = $4, size = 0 WHERE digest = \
                 (SELECT digest FROM plugins WHERE tenant_id = $1 AND name = $2 AND version = $3) \
             AND NOT EXISTS (SELECT 1 FROM plugins WHERE digest = plugin_blobs.digest AND deleted_at IS NULL)",
        )
        .bind(tenant)
        .bind(name)
        .bind(version)
        .bind(Vec::<u8>::new())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(PluginDelete::Deleted)
    }

    async fn job_insert_keyed(
        &self,
        tenant: &str,
        jobs: &[NewJob],
        key: Option<&RequestKey>,
        rate: Option<RateLimit>,
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError> {
        if let Some(why) = NewJob::batch_refusal(jobs) {
            return Err(StoreError::Invalid(why));
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(key) = key
            && let Some(stored) = request_keys::find(self.reader(), tenant, key).await?
        {
            return Ok(keys::replayed_jobs(key.replay(stored)?));
        }
        // PostgreSQL counts the rate first, in a statement of its own that
        // does not wait for the disk and holds the tenant's rate row for
        // microseconds (in the insert's transaction it would hold it through
        // the commit, and one tenant's enqueues would queue behind each
        // other's), then gives back what was not created. SQLite counts it
        // in the insert's transaction: its one writer serializes the two
        // anyway, and one transaction waits for the writer once, not twice.
        let (first, within) = match rate {
            Some(rate) if dialect::RATE_IN_INSERT_TRANSACTION => (None, Some(rate)),
            rate => (rate, None),
        };
        if let Some(rate) = first
            && !self
                .enqueue_rate_take(tenant, jobs.len() as u64, rate.per_minute, now)
                .await?
        {
            return Err(StoreError::RateLimited {
                per_minute: rate.per_minute,
                at: now,
            });
        }
        let inserted = insert(self, tenant, jobs, key, within, now).await;
        if first.is_some() {
            let created = inserted
                .as_ref()
                .map_or(0, |all| all.iter().filter(|i| i.created).count());
            let unused = (jobs.len() - created) as u64;
            if unused > 0
                && let Err(e) = self.enqueue_rate_return(tenant, unused, now).await
            {
                tracing::warn!(%tenant, error = %e, "could not give back an enqueue-rate share");
            }
        }
        inserted
    }

    async fn job_list(
        &self,
        tenant: &str,
        filter: &JobFilter,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<JobPage, StoreError> {
        super::listings::job_list(self, tenant, filter, after, limit).await
    }

    async fn job_count(&self, tenant: &str, filter: &JobFilter) -> Result<JobCount, StoreError> {
        super::listings::job_count(self, tenant, filter).await
    }

    async fn job_dead_groups(&self, tenant: &str) -> Result<Vec<DeadGroup>, StoreError> {
        super::listings::job_dead_groups(self, tenant).await
    }

    async fn job_overview(&self, tenant: &str, now: Timestamp) -> Result<JobOverview, StoreError> {
        super::listings::job_overview(self, tenant, now).await
    }

    async fn job_get(&self, tenant: &str, id: JobId) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(Id(id))
        .fetch_optional(self.reader())
        .await?;
        row.map(Job::try_from).transpose()
    }

    async fn job_claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        super::claim::claim(self, request).await
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
        let mut beat = Heartbeat::default();
        for (id, cancel_requested) in batches::heartbeat(self, leases, now, lease).await? {
            beat.held.push(id.0);
            if cancel_requested {
                beat.cancel_requested.push(id.0);
            }
        }
        Ok(beat)
    }

    async fn job_finish(&self, finishes: &[Finish]) -> Result<Vec<bool>, StoreError> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        let runs: Vec<Uuid> = finishes.iter().filter_map(|f| f.workflow_run_id).collect();
        let applied = |changed: &[(JobId, JobState)]| {
            let applied: std::collections::HashSet<JobId> =
                changed.iter().map(|(id, _)| *id).collect();
            finishes
                .iter()
                .map(|f| applied.contains(&f.job_id))
                .collect()
        };
        if runs.is_empty() && dialect::WRITES_IN_WITH {
            // One statement is atomic by itself: no transaction, so no
            // BEGIN and COMMIT round trips on the hottest path.
            let mut conn = self.writer().acquire().await?;
            let changed = batches::record(&mut conn, finishes).await?;
            let events = changed
                .iter()
                .map(|&(id, state)| StoreEvent::JobState(id, state))
                .collect();
            super::announce_now(self, &mut conn, events).await?;
            return Ok(applied(&changed));
        }
        let mut tx = Tx::begin(self).await?;
        // Workflow steps: lock their runs first (the order every writer of
        // runs follows), record the outcomes, and advance the runs in the
        // same transaction, so a finished step's dependents exist exactly
        // when its outcome does.
        workflows::lock_runs(&mut tx, &runs).await?;
        let changed = batches::record(tx.conn(), finishes).await?;
        for &(id, state) in &changed {
            tx.announce(StoreEvent::JobState(id, state));
        }
        if !runs.is_empty() {
            let now = finishes
                .iter()
                .map(|f| f.attempt.finished_at)
                .max()
                .unwrap_or_else(chrono::Utc::now);
            let ids: Vec<Id> = changed.iter().map(|(id, _)| Id(*id)).collect();
            let done = workflows::finished_step_jobs(tx.conn(), &ids).await?;
            workflows::advance_runs(&mut tx, done, now).await?;
        }
        tx.commit().await?;
        Ok(applied(&changed))
    }

    async fn job_progress(&self, updates: &[ProgressUpdate]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        batches::progress(self, updates).await
    }

    async fn enqueue_rate_take(
        &self,
        tenant: &str,
        jobs: u64,
        per_minute: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer().acquire().await?;
        super::quotas::rate_take(&mut conn, tenant, jobs, per_minute, now).await
    }

    async fn enqueue_rate_return(
        &self,
        tenant: &str,
        jobs: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().acquire().await?;
        super::quotas::rate_return(&mut conn, tenant, jobs, now).await
    }

    async fn job_waiting_count(&self, tenant: &str, cap: u64) -> Result<u64, StoreError> {
        let count: Nat<u64> = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE tenant_id = $1 \
                 AND state IN ('scheduled', 'available', 'retrying') LIMIT $2) w",
        )
        .bind(tenant)
        .bind(big(cap))
        .fetch_one(self.reader())
        .await?;
        Ok(count.0)
    }

    async fn job_release(
        &self,
        id: JobId,
        lease_token: Uuid,
        not_before: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let mut tx = Tx::begin(self).await?;
        // The token alone says the job runs (only running jobs hold one):
        // with `state = 'running'` PostgreSQL may walk the index of every
        // running job instead of the primary key (see `sql/batches.rs`).
        let released = sqlx::query(
            "UPDATE jobs SET state = 'available', attempt = attempt - 1, lease_token = NULL, \
             lease_expires_at = NULL, leased_by = NULL, run_at = COALESCE($3, run_at) \
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(Id(id))
        .bind(Token(lease_token))
        .bind(not_before.map(At))
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        if released {
            tx.announce(StoreEvent::JobState(id, JobState::Available));
            tx.announce(StoreEvent::JobsAvailable(None));
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn job_cancel(
        &self,
        tenant: &str,
        id: JobId,
        now: Timestamp,
    ) -> Result<CancelResult, StoreError> {
        let results = self.job_cancel_many(tenant, &[id], now).await?;
        Ok(results.into_iter().next().unwrap_or(CancelResult::NotFound))
    }

    async fn job_cancel_many(
        &self,
        tenant: &str,
        ids: &[JobId],
        now: Timestamp,
    ) -> Result<Vec<CancelResult>, StoreError> {
        let ids: Vec<Id> = ids.iter().copied().map(Id).collect();
        // Workflow steps' jobs: lock their runs first (in id order, as every
        // writer of runs does), and advance the runs of the jobs cancelled
        // now (waiting ones).
        let runs: Vec<Id> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT workflow_run_id FROM jobs \
             WHERE tenant_id = $1 AND {} AND workflow_run_id IS NOT NULL",
            dialect::any("id", 2)
        ))
        .bind(tenant)
        .bind(List(&ids))
        .fetch_all(self.reader())
        .await?;
        let mut tx = Tx::begin(self).await?;
        let runs: Vec<_> = runs.into_iter().map(|run| run.0).collect();
        workflows::lock_runs(&mut tx, &runs).await?;
        // Row locks in id order, as outcomes take them, so that a cancel and
        // a batch of outcomes sharing jobs cannot deadlock (SQLite's one
        // writer needs no row locks). One row has no order to keep: its
        // UPDATE locks it.
        if ids.len() > 1 && !dialect::FOR_NO_KEY_UPDATE.is_empty() {
            sqlx::query(&format!(
                "SELECT id FROM jobs WHERE tenant_id = $1 AND {} \
                   AND state NOT IN ('completed', 'dead', 'cancelled') ORDER BY id {}",
                dialect::any("id", 2),
                dialect::FOR_NO_KEY_UPDATE
            ))
            .bind(tenant)
            .bind(List(&ids))
            .execute(tx.conn())
            .await?;
        }
        let changed: Vec<(Id, String)> = sqlx::query_as(&format!(
            "UPDATE jobs SET \
                state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END, \
                cancel_requested = TRUE, \
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE $3 END, \
                error = CASE WHEN state = 'running' THEN error ELSE 'cancelled' END \
             WHERE tenant_id = $1 AND {} AND state NOT IN ('completed', 'dead', 'cancelled') \
             RETURNING id, state",
            dialect::any("id", 2)
        ))
        .bind(tenant)
        .bind(List(&ids))
        .bind(At(now))
        .fetch_all(tx.conn())
        .await?;
        let mut results: std::collections::HashMap<JobId, CancelResult> = Default::default();
        let mut cancelled = Vec::new();
        for (id, state) in changed {
            if state == "running" {
                tx.announce(StoreEvent::CancelRequested(id.0));
                results.insert(id.0, CancelResult::Requested);
            } else {
                tx.announce(StoreEvent::JobState(id.0, JobState::Cancelled));
                results.insert(id.0, CancelResult::Cancelled);
                cancelled.push(id);
            }
        }
        let done = workflows::finished_step_jobs(tx.conn(), &cancelled).await?;
        workflows::advance_runs(&mut tx, done, now).await?;
        tx.commit().await?;
        // The rest were finished already, or are no job of the tenant's.
        if results.len() < ids.len() {
            let found: Vec<Id> = sqlx::query_scalar(&format!(
                "SELECT id FROM jobs WHERE tenant_id = $1 AND {}",
                dialect::any("id", 2)
            ))
            .bind(tenant)
            .bind(List(&ids))
            .fetch_all(self.reader())
            .await?;
            for id in found {
                results.entry(id.0).or_insert(CancelResult::AlreadyFinished);
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                results
                    .get(&id.0)
                    .copied()
                    .unwrap_or(CancelResult::NotFound)
            })
            .collect())
    }

    async fn job_expired_leases(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ExpiredLease>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Expired {
            id: Id,
            lease_token: Token,
            attempt: Nat<u32>,
            max_attempts: Nat<u32>,
            leased_by: String,
            attempt_started_at: Option<At>,
            workflow_run_id: Option<Id>,
        }
        let rows: Vec<Expired> = sqlx::query_as(
            "SELECT id, lease_token, attempt, max_attempts, leased_by, attempt_started_at, workflow_run_id \
             FROM jobs WHERE state = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2",
        )
        .bind(At(now))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ExpiredLease {
                job_id: row.id.0,
                lease_token: row.lease_token.0,
                attempt: row.attempt.0,
                max_attempts: row.max_attempts.0,
                leased_by: row.leased_by,
                started_at: row.attempt_started_at.map_or(now, |at| at.0),
                workflow_run_id: row.workflow_run_id.map(|id| id.0),
            })
            .collect())
    }

    async fn job_prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for statement in [
            // Tenant by tenant, on the index of each tenant's finished jobs
            // by time (`jobs_finished`); in no particular order: all of them go.
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs j {finished} \
               WHERE tenant_id IN (SELECT id FROM tenants) AND finished_at < $1 \
               AND (workflow_run_id IS NULL OR NOT EXISTS ( \
                   SELECT 1 FROM workflow_runs r WHERE r.id = j.workflow_run_id AND r.state = 'running')) \
             LIMIT $2 {})",
            "DELETE FROM workflow_runs WHERE id IN ( \
                SELECT id FROM workflow_runs WHERE finished_at < $1 ORDER BY finished_at LIMIT $2 {})",
            "DELETE FROM request_keys WHERE (tenant_id, key) IN ( \
                SELECT tenant_id, key FROM request_keys WHERE created_at < $1 ORDER BY created_at \
                LIMIT $2 {})",
        ] {
            // Rows another pruner holds are skipped, not waited on.
            let statement = statement
                .replace("{finished}", &dialect::indexed_by("jobs_finished"))
                .replace("{}", dialect::SKIP_LOCKED);
            pruned += sqlx::query(&statement)
                .bind(At(before))
                .bind(i64::from(limit))
                .execute(self.writer())
                .await?
                .rows_affected();
        }
        Ok(pruned)
    }

    async fn attempt_list(&self, tenant: &str, id: JobId) -> Result<Vec<Attempt>, StoreError> {
        let rows: Vec<AttemptRow> = sqlx::query_as(
            "SELECT attempt, outcome, message, started_at, finished_at, fuel_consumed, peak_memory_bytes, \
             host_id, log, log_dropped_bytes, http FROM attempts WHERE tenant_id = $1 AND job_id = $2 \
             ORDER BY attempt",
        )
        .bind(tenant)
        .bind(Id(id))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(Attempt::try_from).collect()
    }

    async fn job_counts(
        &self,
        tenant: Option<&str>,
    ) -> Result<BTreeMap<JobState, u64>, StoreError> {
        let rows: Vec<(String, Nat<u64>)> = sqlx::query_as(
            "SELECT state, count(*) FROM jobs WHERE $1 IS NULL OR tenant_id = $1 GROUP BY state",
        )
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        Ok(counts(rows))
    }

    async fn job_live_counts(&self, now: Timestamp) -> Result<LiveJobCounts, StoreError> {
        // Each branch reads one partial index (jobs_waiting, jobs_running),
        // never the finished jobs; SQLite is told so (`INDEXED BY`), as it
        // would rather scan without statistics.
        let (waiting, running) = (
            dialect::indexed_by("jobs_waiting"),
            dialect::indexed_by("jobs_running"),
        );
        let rows: Vec<(String, Nat<u64>)> = sqlx::query_as(&format!(
            "SELECT state, count(*) FROM jobs {waiting} \
             WHERE state IN ('scheduled', 'available', 'retrying') GROUP BY state \
             UNION ALL SELECT 'running', count(*) FROM jobs {running} WHERE state = 'running'"
        ))
        .fetch_all(self.reader())
        .await?;
        let due: Vec<(String, Nat<u64>)> = sqlx::query_as(&format!(
            "SELECT queue, count(*) AS n FROM jobs {waiting} \
             WHERE state IN ('scheduled', 'available', 'retrying') AND run_at <= $1 \
             GROUP BY queue ORDER BY n DESC, queue LIMIT $2"
        ))
        .bind(At(now))
        .bind(i64::from(crate::store::MAX_QUEUES_REPORTED))
        .fetch_all(self.reader())
        .await?;
        Ok(LiveJobCounts {
            by_state: counts(rows),
            due_by_queue: due.into_iter().map(|(q, n)| (q, n.0)).collect(),
        })
    }

    async fn host_beat(&self, host: &HostSeen) -> Result<(), StoreError> {
        super::hosts::beat(self, host).await
    }

    async fn host_leave(&self, host_id: &str) -> Result<(), StoreError> {
        super::hosts::leave(self, host_id).await
    }

    async fn host_list(&self, since: Timestamp) -> Result<Vec<HostSeen>, StoreError> {
        super::hosts::list(self, since).await
    }

    async fn host_prune(&self, before: Timestamp) -> Result<u64, StoreError> {
        super::hosts::prune(self, before).await
    }
}

/// Insert checked `jobs` that no key answered: one statement committed on
/// its own when nothing else is written with them (no BEGIN or COMMIT round
/// trips, each of which waits for the host and the database to be
/// scheduled on a busy machine; PostgreSQL's trigger announces the jobs,
/// migration 0018), else one transaction that also writes the key and
/// counts the batch against `rate` (whole, as asked: it must fit; what was
/// not created, answered by a job's idempotency key, is given back).
async fn insert(
    store: &Here,
    tenant: &str,
    jobs: &[NewJob],
    key: Option<&RequestKey>,
    rate: Option<RateLimit>,
    now: Timestamp,
) -> Result<Vec<Inserted>, StoreError> {
    if key.is_none() && rate.is_none() {
        let mut conn = store.writer().acquire().await?;
        let inserted = batches::insert_jobs(store, &mut conn, tenant, jobs, now).await?;
        super::announce_now(
            store,
            &mut conn,
            vec![StoreEvent::JobsAvailable(Some(tenant.to_string()))],
        )
        .await?;
        return Ok(inserted);
    }
    let mut tx = Tx::begin(store).await?;
    if let Some(rate) = rate
        && !super::quotas::rate_take(tx.conn(), tenant, jobs.len() as u64, rate.per_minute, now)
            .await?
    {
        tx.rollback().await?;
        return Err(StoreError::RateLimited {
            per_minute: rate.per_minute,
            at: now,
        });
    }
    let inserted = batches::insert_jobs(store, tx.conn(), tenant, jobs, now).await?;
    let unused = jobs.len() - inserted.iter().filter(|i| i.created).count();
    if rate.is_some() && unused > 0 {
        super::quotas::rate_return(tx.conn(), tenant, unused as u64, now).await?;
    }
    // The key is written in the jobs' transaction: a concurrent request
    // under it waits on the key's row and then finds it taken.
    if let Some(key) = key {
        let answer = keys::answer(inserted.iter().map(|i| i.id));
        if !request_keys::put(tx.conn(), tenant, key, &answer, now).await? {
            // Another request took the key since it was looked up.
            tx.rollback().await?;
            let stored = request_keys::find(store.reader(), tenant, key)
                .await?
                .ok_or_else(|| StoreError::Conflict("an idempotency key vanished".into()))?;
            return Ok(keys::replayed_jobs(key.replay(stored)?));
        }
    }
    tx.announce(StoreEvent::JobsAvailable(Some(tenant.to_string())));
    tx.commit().await?;
    Ok(inserted)
}
