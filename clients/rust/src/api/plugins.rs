//! Plugins: a version as the API shows it, with its limits and outbound
//! HTTP settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Timestamp;

// The limits a plugin gets when its upload names none. The server applies
// them; they are here so that clients read the same numbers.

/// Fuel for one attempt when the plugin sets none: roughly a second of compute.
/// Protects against guests that never stop computing.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Linear memory (all memories of the component together) for one attempt.
/// Protects the host's RAM from a guest that allocates without end.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Wall-clock time for one attempt. Protects worker slots from guests that
/// block (in a WASI clock wait) or run slowly within their fuel.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the JSON result. Protects the database and the API's clients.
pub const DEFAULT_RESULT_BYTES: u64 = 1024 * 1024;
/// Size of the captured log (stdout, stderr and `host.log` together).
/// Protects the database from guests that print without end.
pub const DEFAULT_LOG_BYTES: u64 = 64 * 1024;
/// Attempts a job may use in all.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The limits of one attempt of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Fuel units (roughly one per wasm instruction).
    pub fuel: u64,
    /// Bytes of linear memory, summed over every memory of the component.
    pub memory_bytes: u64,
    /// Wall-clock milliseconds.
    pub timeout_ms: u64,
    /// Bytes of the JSON result.
    pub result_bytes: u64,
    /// Bytes of captured log.
    pub log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            result_bytes: DEFAULT_RESULT_BYTES,
            log_bytes: DEFAULT_LOG_BYTES,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// A plugin's outbound settings, stored with it (`http` in the API).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Destinations its requests may reach; empty denies every request.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// Requests per attempt (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Requests in flight at once (default 4, at most 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Bytes of a request body (default 1 MiB, at most 16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    /// Bytes of a response body (default 8 MiB, at most 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Connect (DNS, TCP and TLS) timeout, ms (default 10 s, at most 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Wait for the first byte of a response, ms (default 30 s, at most 120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
}

/// One entry as its owner wrote it (and as it is stored and shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum AllowEntry {
    /// `https://api.example.com`: any method, no secret.
    Url(String),
    Rule {
        url: String,
        /// Methods allowed (upper case); all when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        methods: Vec<String>,
        /// Tenant secrets this destination may receive, by name.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: Vec<String>,
    },
}

impl AllowEntry {
    /// The URL the entry allows.
    pub fn url(&self) -> &str {
        match self {
            AllowEntry::Url(url) | AllowEntry::Rule { url, .. } => url,
        }
    }
}

/// A plugin version in responses. Its config is write-only and never shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginView {
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub limits: Limits,
    pub max_attempts: u32,
    /// The names of its config settings; their values are never returned.
    pub config_keys: Vec<String>,
    /// Its outbound HTTP settings: allow-list and limits (docs/http.md).
    pub http: HttpSettings,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginVersions {
    pub name: String,
    /// Newest first.
    pub versions: Vec<PluginView>,
}
