//! Tenants, their quotas and keys, admin keys, and secrets as listed.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// A tenant's quotas (docs/api.md, "Tenants and keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quotas {
    /// Attempts of the tenant running at once, across all hosts.
    pub max_concurrency: u32,
    pub max_fuel_per_attempt: u64,
    pub max_memory_mb: u32,
    pub max_timeout_ms: u64,
    pub max_plugin_bytes: u64,
    pub max_queued_jobs: u64,
    pub enqueue_per_minute: u32,
    /// Bytes of components the tenant's live versions name (each distinct
    /// component once): what its uploads may make the database keep.
    pub max_stored_plugin_bytes: u64,
    /// Schedules the tenant may define.
    pub max_schedules: u32,
    /// Workflows (by name) the tenant may define.
    pub max_workflows: u32,
    /// Versions one workflow may have (each holds a whole definition).
    pub max_workflow_versions: u32,
    /// Outbound HTTP requests one attempt may make (its plugin's
    /// `http.max_requests` is capped by it).
    pub max_http_requests_per_attempt: u32,
    /// Bytes of one outbound response body (caps `http.max_response_bytes`).
    pub max_http_response_bytes: u64,
}

/// The quotas of a tenant created without any (`DEFAULT_QUOTAS` on the
/// server; the outbound caps equal its `MAX_REQUESTS_PER_ATTEMPT` and
/// `MAX_RESPONSE_BODY_BYTES`, checked when it compiles).
pub const DEFAULT_QUOTAS: Quotas = Quotas {
    max_concurrency: 16,
    max_fuel_per_attempt: 20 * super::DEFAULT_FUEL,
    max_memory_mb: 512,
    max_timeout_ms: 15 * 60 * 1000,
    max_plugin_bytes: 64 * 1024 * 1024,
    max_queued_jobs: 1_000_000,
    enqueue_per_minute: 600_000,
    max_stored_plugin_bytes: 1 << 30,
    max_schedules: 100,
    max_workflows: 100,
    max_workflow_versions: 100,
    max_http_requests_per_attempt: 1000,
    max_http_response_bytes: 64 * 1024 * 1024,
};

impl Default for Quotas {
    fn default() -> Self {
        DEFAULT_QUOTAS
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub quotas: Quotas,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

/// A new key. `key` is shown this once; only its hash is stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    pub key_id: String,
    pub key: String,
}

/// An admin key as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminKeyView {
    pub key_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminKeyList {
    /// Oldest first, revoked ones included.
    pub keys: Vec<AdminKeyView>,
}

/// A secret as listed: its name and times, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretInfo {
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretList {
    /// By name.
    pub secrets: Vec<SecretInfo>,
}
