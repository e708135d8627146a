//! Rows as both databases return them, decoded once with `sqlx::FromRow`
//! through the newtypes of [`super::codec`], and turned into the model's
//! types. A stored value out of its type's range, or a state that is not
//! one of the model's, is a decode error ([`StoreError::Failed`]): never
//! clamped, never guessed.

use super::codec::Token;
use super::codec::{At, Id, Json, Nat};
use super::{StoreError, parse_calls, parse_config, parse_http};
use crate::model::{
    ApiKey, Attempt, AttemptCaps, ClaimedJob, Job, JobState, Limits, OutcomeKind, PluginVersion,
    Progress, Quotas, Tenant,
};
use crate::runtime::outbound::{HttpCaps, HttpRules};

/// A state (or outcome) read back: one of `parse`'s, or the stored value
/// is corrupt.
pub(crate) fn state<T>(text: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| StoreError::corrupt(format!("unexpected stored value: {text}")))
}

pub(crate) fn time(at: Option<At>) -> Option<crate::model::Timestamp> {
    at.map(|at| at.0)
}

/// A job's columns, in the order [`JobRow`] reads them.
pub(crate) const JOB_COLUMNS: &str = "id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input, \
     result, error, attempt, max_attempts, timeout_ms, run_at, created_at, started_at, finished_at, \
     cancel_requested, idempotency_key, replay_of, progress_percent, progress_message, workflow_run_id, \
     workflow_step";

/// [`JOB_COLUMNS`] without input and result (see [`super::JobFilter::bodies`]).
pub(crate) const LISTED_JOB_COLUMNS: &str = "id, tenant_id, plugin, plugin_version, digest, queue, priority, state, \
     '' AS input, NULL AS result, error, attempt, max_attempts, timeout_ms, run_at, created_at, started_at, \
     finished_at, cancel_requested, idempotency_key, replay_of, progress_percent, progress_message, \
     workflow_run_id, workflow_step";

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: Id,
    tenant_id: String,
    plugin: String,
    plugin_version: Nat<u32>,
    digest: String,
    queue: String,
    priority: i32,
    state: String,
    input: Json,
    result: Option<Json>,
    error: Option<String>,
    attempt: Nat<u32>,
    max_attempts: Nat<u32>,
    timeout_ms: Option<Nat<u64>>,
    run_at: At,
    created_at: At,
    started_at: Option<At>,
    finished_at: Option<At>,
    cancel_requested: bool,
    idempotency_key: Option<String>,
    replay_of: Option<Id>,
    progress_percent: Option<Nat<u8>>,
    progress_message: Option<String>,
    workflow_run_id: Option<Id>,
    workflow_step: Option<String>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(row: JobRow) -> Result<Job, StoreError> {
        Ok(Job {
            id: row.id.0,
            tenant_id: row.tenant_id,
            plugin: row.plugin,
            version: row.plugin_version.0,
            digest: row.digest,
            queue: row.queue,
            priority: row.priority,
            state: state(&row.state, JobState::parse)?,
            input: row.input.0,
            result: row.result.map(|r| r.0),
            error: row.error,
            attempt: row.attempt.0,
            max_attempts: row.max_attempts.0,
            timeout_ms: row.timeout_ms.map(|n| n.0),
            run_at: row.run_at.0,
            created_at: row.created_at.0,
            started_at: time(row.started_at),
            finished_at: time(row.finished_at),
            cancel_requested: row.cancel_requested,
            idempotency_key: row.idempotency_key,
            replay_of: row.replay_of.map(|id| id.0),
            progress: row.progress_percent.map(|percent| Progress {
                percent: percent.0,
                message: row.progress_message.unwrap_or_default(),
            }),
            workflow_run_id: row.workflow_run_id.map(|id| id.0),
            workflow_step: row.workflow_step,
        })
    }
}

/// A tenant's quotas, as the columns of `tenants` name them (read with
/// the tenant, or with a key of it: [`KeyLookupRow`]).
#[derive(sqlx::FromRow)]
pub(crate) struct QuotasRow {
    max_concurrency: Nat<u32>,
    max_fuel_per_attempt: Nat<u64>,
    max_memory_mb: Nat<u32>,
    max_timeout_ms: Nat<u64>,
    max_plugin_bytes: Nat<u64>,
    max_queued_jobs: Nat<u64>,
    enqueue_per_minute: Nat<u32>,
    max_stored_plugin_bytes: Nat<u64>,
    max_schedules: Nat<u32>,
    max_workflows: Nat<u32>,
    max_workflow_versions: Nat<u32>,
    max_http_requests_per_attempt: Nat<u32>,
    max_http_response_bytes: Nat<u64>,
}

impl From<QuotasRow> for Quotas {
    fn from(row: QuotasRow) -> Quotas {
        Quotas {
            max_concurrency: row.max_concurrency.0,
            max_fuel_per_attempt: row.max_fuel_per_attempt.0,
            max_memory_mb: row.max_memory_mb.0,
            max_timeout_ms: row.max_timeout_ms.0,
            max_plugin_bytes: row.max_plugin_bytes.0,
            max_queued_jobs: row.max_queued_jobs.0,
            enqueue_per_minute: row.enqueue_per_minute.0,
            max_stored_plugin_bytes: row.max_stored_plugin_bytes.0,
            max_schedules: row.max_schedules.0,
            max_workflows: row.max_workflows.0,
            max_workflow_versions: row.max_workflow_versions.0,
            max_http_requests_per_attempt: row.max_http_requests_per_attempt.0,
            max_http_response_bytes: row.max_http_response_bytes.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct TenantRow {
    id: String,
    name: String,
    #[sqlx(flatten)]
    quotas: QuotasRow,
    created_at: At,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Tenant {
        Tenant {
            id: row.id,
            name: row.name,
            quotas: row.quotas.into(),
            created_at: row.created_at.0,
        }
    }
}

/// A plugin version's columns (`plugins p` joined with `plugin_blobs b`).
pub(crate) const PLUGIN_COLUMNS: &str = "p.tenant_id, p.name, p.version, p.digest, b.size, p.fuel, p.memory_bytes, \
     p.timeout_ms AS plugin_timeout_ms, p.result_bytes, p.log_bytes, p.max_attempts, p.config, p.http, p.created_at";

/// A plugin's limits, as [`PLUGIN_COLUMNS`] and the claims name them.
#[derive(sqlx::FromRow)]
pub(crate) struct LimitsRow {
    fuel: Nat<u64>,
    memory_bytes: Nat<u64>,
    plugin_timeout_ms: Nat<u64>,
    result_bytes: Nat<u64>,
    log_bytes: Nat<u64>,
}

impl From<LimitsRow> for Limits {
    fn from(row: LimitsRow) -> Limits {
        Limits {
            fuel: row.fuel.0,
            memory_bytes: row.memory_bytes.0,
            timeout_ms: row.plugin_timeout_ms.0,
            result_bytes: row.result_bytes.0,
            log_bytes: row.log_bytes.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PluginRow {
    tenant_id: String,
    name: String,
    version: Nat<u32>,
    digest: String,
    size: Nat<u64>,
    #[sqlx(flatten)]
    limits: LimitsRow,
    max_attempts: Nat<u32>,
    config: Json,
    http: Json,
    created_at: At,
}

impl From<PluginRow> for PluginVersion {
    fn from(row: PluginRow) -> PluginVersion {
        PluginVersion {
            tenant_id: row.tenant_id,
            name: row.name,
            version: row.version.0,
            digest: row.digest,
            size: row.size.0,
            limits: row.limits.into(),
            max_attempts: row.max_attempts.0,
            config: parse_config(&row.config.0),
            http: parse_http(&row.http.0),
            created_at: row.created_at.0,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id: String,
    tenant_id: Option<String>,
    secret_hash: String,
    created_at: At,
    revoked_at: Option<At>,
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> ApiKey {
        ApiKey {
            id: row.id,
            tenant_id: row.tenant_id,
            secret_hash: row.secret_hash,
            created_at: row.created_at.0,
            revoked_at: time(row.revoked_at),
        }
    }
}

/// A key joined with its tenant's row, if it has one: [`KeyRow`]'s
/// columns, `has_tenant`, and then [`QuotasRow`]'s, NULL without a tenant.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyLookupRow {
    #[sqlx(flatten)]
    pub(crate) key: KeyRow,
    pub(crate) has_tenant: bool,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    attempt: Nat<u32>,
    outcome: String,
    message: Option<String>,
    started_at: At,
    finished_at: At,
    fuel_consumed: Nat<u64>,
    peak_memory_bytes: Nat<u64>,
    host_id: String,
    log: String,
    log_dropped_bytes: Nat<u64>,
    http: Option<Json>,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = StoreError;
    fn try_from(row: AttemptRow) -> Result<Attempt, StoreError> {
        Ok(Attempt {
            attempt: row.attempt.0,
            outcome: state(&row.outcome, OutcomeKind::parse)?,
            message: row.message,
            started_at: row.started_at.0,
            finished_at: row.finished_at.0,
            fuel_consumed: row.fuel_consumed.0,
            peak_memory_bytes: row.peak_memory_bytes.0,
            host_id: row.host_id,
            log: row.log,
            log_dropped_bytes: row.log_dropped_bytes.0,
            http: parse_calls(row.http.map(|h| h.0)),
        })
    }
}

/// What a claim returns of each job (`jobs` joined with its plugin version
/// `p` and its tenant `t`), in the order [`ClaimRow`] reads it.
pub(crate) const CLAIM_COLUMNS: &str = "jobs.id, jobs.tenant_id, jobs.plugin, jobs.plugin_version, jobs.digest, \
     jobs.input, jobs.attempt, jobs.max_attempts, jobs.timeout_ms, jobs.lease_token, jobs.run_at, jobs.context, \
     jobs.workflow_run_id, p.fuel, p.memory_bytes, p.timeout_ms AS plugin_timeout_ms, p.result_bytes, \
     p.log_bytes, p.config, p.http, t.max_fuel_per_attempt, t.max_memory_mb, t.max_timeout_ms, \
     t.max_http_requests_per_attempt, t.max_http_response_bytes";

#[derive(sqlx::FromRow)]
pub(crate) struct ClaimRow {
    pub(crate) id: Id,
    pub(crate) tenant_id: String,
    plugin: String,
    plugin_version: Nat<u32>,
    digest: String,
    input: Json,
    attempt: Nat<u32>,
    max_attempts: Nat<u32>,
    timeout_ms: Option<Nat<u64>>,
    lease_token: Token,
    run_at: At,
    context: Option<Json>,
    workflow_run_id: Option<Id>,
    #[sqlx(flatten)]
    limits: LimitsRow,
    config: Json,
    http: Json,
    max_fuel_per_attempt: Nat<u64>,
    max_memory_mb: Nat<u32>,
    max_timeout_ms: Nat<u64>,
    max_http_requests_per_attempt: Nat<u32>,
    max_http_response_bytes: Nat<u64>,
}

impl From<ClaimRow> for ClaimedJob {
    /// The job with its plugin's limits (the job's own timeout first)
    /// lowered to its tenant's quotas as they are at the claim, and its HTTP
    /// settings lowered to the tenant's HTTP quotas, whatever was stored
    /// before they were lowered (see [`AttemptCaps`], [`HttpCaps`]).
    fn from(row: ClaimRow) -> ClaimedJob {
        let plugin = Limits::from(row.limits);
        let caps = AttemptCaps {
            fuel: row.max_fuel_per_attempt.0,
            memory_mb: row.max_memory_mb.0,
            timeout_ms: row.max_timeout_ms.0,
        };
        let limits = caps.apply(Limits {
            timeout_ms: row.timeout_ms.map_or(plugin.timeout_ms, |t| t.0),
            ..plugin
        });
        let mut http = parse_http(&row.http.0);
        let http_caps = HttpCaps {
            requests: row.max_http_requests_per_attempt.0,
            response_bytes: row.max_http_response_bytes.0,
        };
        let http_limits = http_caps.apply(http.limits());
        http.max_requests = Some(http_limits.requests);
        http.max_response_bytes = Some(http_limits.response_bytes);
        ClaimedJob {
            id: row.id.0,
            tenant_id: row.tenant_id,
            plugin: row.plugin,
            version: row.plugin_version.0,
            digest: row.digest,
            input: row.input.0,
            attempt: row.attempt.0,
            max_attempts: row.max_attempts.0,
            limits,
            config: parse_config(&row.config.0),
            http,
            lease_token: row.lease_token.0,
            run_at: row.run_at.0,
            context: row.context.map(|c| c.0),
            workflow_run_id: row.workflow_run_id.map(|id| id.0),
        }
    }
}
