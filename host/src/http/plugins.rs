//! Plugins: upload (streamed, capped, validated and compiled before anything
//! is stored), versions, listing.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantKey;
use super::openapi::{ErrorBody, Refusals};
use super::{ApiError, AppState};
use crate::model::QuotaCaps;
use crate::model::{Limits, PluginVersion};
use crate::runtime::RuntimeError;
use crate::runtime::compile::MAX_COMPONENT_BYTES;
use crate::runtime::outbound::HttpRules;
use crate::runtime::outbound::HttpSettings;
use crate::store::NewPlugin;
use corral_client::api::{PluginList, PluginVersions, PluginView};

/// Limits set at upload (query parameters); absent ones take the defaults,
/// lowered to the tenant's quotas.
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadLimits {
    fuel: Option<u64>,
    memory_mb: Option<u64>,
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    /// Outbound HTTP settings as JSON (`{"allow": [...]}`, docs/http.md);
    /// a new version inherits the latest's when absent. Upload only.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    #[schema(value_type = Option<String>)]
    http: Option<String>,
}

impl From<PluginVersion> for PluginView {
    fn from(p: PluginVersion) -> PluginView {
        PluginView {
            name: p.name,
            version: p.version,
            digest: p.digest,
            size: p.size,
            limits: p.limits,
            max_attempts: p.max_attempts,
            config_keys: p.config.into_keys().collect(),
            http: p.http,
            created_at: p.created_at,
        }
    }
}

/// What a 503 for busy compilers tells the client to wait, in seconds.
const COMPILE_RETRY_AFTER_SECS: u64 = 10;

/// `POST /v1/plugins/{name}`: 201 with the new version; 200 with the latest
/// version when its bytes are the same.
#[utoipa::path(post, path = "/v1/plugins/{name}", operation_id = "upload_plugin", tag = "plugins",
    description = "Upload a WebAssembly component as the next version of a plugin. It is validated \
                   against the `corral:plugin/job-handler` world and compiled before anything is stored.",
    params(("name" = String, Path, description = "The plugin's name"), UploadLimits),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, description = "A new version", body = PluginView),
              (status = 200, description = "The bytes are the latest version's", body = PluginView),
              (status = 413, description = "Over the tenant's max_plugin_bytes", body = ErrorBody),
              (status = 415, description = "Not `application/wasm`", body = ErrorBody),
              Refusals))]
pub async fn upload(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    super::QueryParams(query): super::QueryParams<UploadLimits>,
    headers: HeaderMap,
    body: Body,
) -> Result<super::Saved<PluginView>, ApiError> {
    if let Err(e) = crate::model::Name::parse("plugin name", &name) {
        return Err(ApiError::Unprocessable(
            "invalid_plugin_name",
            e.to_string(),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(
        content_type,
        "application/wasm" | "application/octet-stream"
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "send the component with `Content-Type: application/wasm`".into(),
        ));
    }
    let quotas = key.quotas;

    // Limits first: a refusal should not cost an upload. A limit not asked
    // for is the default, lowered to the tenant's quota where that is smaller;
    // one asked for above the quota is refused.
    let defaults = Limits::default();
    let limits = Limits {
        fuel: query
            .fuel
            .unwrap_or(defaults.fuel.min(quotas.max_fuel_per_attempt)),
        memory_bytes: query
            .memory_mb
            .map(|mb| mb.saturating_mul(1 << 20))
            .unwrap_or(
                defaults
                    .memory_bytes
                    .min(u64::from(quotas.max_memory_mb) << 20),
            ),
        timeout_ms: query
            .timeout_ms
            .unwrap_or(defaults.timeout_ms.min(quotas.max_timeout_ms)),
        ..defaults
    };
    let max_attempts = query
        .max_attempts
        .unwrap_or(crate::model::DEFAULT_MAX_ATTEMPTS);
    check_limits(&limits, max_attempts, &quotas)?;
    let http = query
        .http
        .as_deref()
        .map(|text| {
            let settings: HttpSettings = serde_json::from_str(text).map_err(|e| {
                ApiError::Unprocessable("invalid_http", format!("http is not valid settings: {e}"))
            })?;
            check_http(&settings, &state.outbound_hosts, &quotas)?;
            Ok::<_, ApiError>(settings)
        })
        .transpose()?;

    // The body, streamed, refused as soon as it passes the cap.
    let cap = quotas.max_plugin_bytes.min(MAX_COMPONENT_BYTES as u64);
    let too_large =
        || ApiError::PayloadTooLarge(format!("the component is over the limit of {cap} bytes"));
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > cap
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest("invalid_body", format!("reading the upload: {e}"))
        })?;
        if (bytes.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }

    // The tenant's stored components, this one included (once, whatever
    // the number of versions naming it), within its quota.
    let bytes = bytes::Bytes::from(bytes);
    let digest = {
        let bytes = bytes.clone();
        // Hashing tens of megabytes is kept off the async threads, and done
        // once: the runtime is handed the digest.
        tokio::task::spawn_blocking(move || crate::model::Digest::of(&bytes))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let stored = state
        .store
        .plugin_stored_bytes(&key.tenant, &digest.to_string())
        .await?;
    if stored.saturating_add(bytes.len() as u64) > quotas.max_stored_plugin_bytes {
        return Err(ApiError::Unprocessable(
            "over_quota",
            format!(
                "the tenant's live versions name {stored} bytes of components; with these {} bytes that is over its max_stored_plugin_bytes of {} (delete versions it no longer needs)",
                bytes.len(),
                quotas.max_stored_plugin_bytes
            ),
        ));
    }

    // Validated and compiled (bounded) before anything is stored.
    let loaded = state
        .runtime
        .load_digested(&bytes, digest)
        .await
        .map_err(|e| match e {
            RuntimeError::TooLarge { .. } => ApiError::PayloadTooLarge(e.to_string()),
            RuntimeError::Busy(_) => ApiError::Busy(e.to_string(), COMPILE_RETRY_AFTER_SECS),
            RuntimeError::Cache(_) | RuntimeError::Engine(_) => ApiError::Internal(e.to_string()),
            _ => ApiError::Unprocessable("invalid_component", e.to_string()),
        })?;
    let (plugin, created) = state
        .store
        .plugin_insert(
            &NewPlugin {
                tenant_id: key.tenant,
                name,
                digest: loaded.digest().to_string(),
                limits,
                max_attempts,
                http,
            },
            &bytes,
            chrono::Utc::now(),
        )
        .await?;
    let location = super::path_of(&["v1", "plugins", &plugin.name, &plugin.version.to_string()]);
    Ok(super::Saved {
        created,
        location,
        body: plugin.into(),
    })
}

/// `GET /v1/plugins`: the latest version of each plugin.
#[utoipa::path(get, path = "/v1/plugins", operation_id = "list_plugins", tag = "plugins",
    responses((status = 200, description = "The latest version of each plugin", body = PluginList),
              Refusals))]
pub async fn list(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<PluginList>, ApiError> {
    let plugins: Vec<PluginView> = state
        .store
        .plugin_list(&key.tenant)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(PluginList { plugins }))
}

/// `GET /v1/plugins/{name}`: every version, newest first.
#[utoipa::path(get, path = "/v1/plugins/{name}", operation_id = "list_plugin_versions", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "Every version, newest first", body = PluginVersions),
              Refusals))]
pub async fn versions(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
) -> Result<Json<PluginVersions>, ApiError> {
    let versions: Vec<PluginView> = state
        .store
        .plugin_versions(&key.tenant, &name)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("no plugin `{name}`")));
    }
    Ok(Json(PluginVersions { name, versions }))
}

/// `GET /v1/plugins/{name}/{version}`.
#[utoipa::path(get, path = "/v1/plugins/{name}/{version}", operation_id = "get_plugin_version", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name"),
           ("version" = u32, Path, description = "The version number")),
    responses((status = 200, description = "The version", body = PluginView), Refusals))]
pub async fn get(
    State(state): State<AppState>,
    key: TenantKey,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<PluginView>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no version `{version}` of plugin `{name}`"));
    let number: u32 = version.parse().map_err(|_| not_found())?;
    let plugin = state
        .store
        .plugin_get(&key.tenant, &name, Some(number))
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(plugin.into()))
}

/// `DELETE /v1/plugins/{name}/{version}`: 204; 409 while unfinished jobs are
/// pinned to the version. Finished jobs keep naming it (a tombstone stays);
/// its number is never given to another upload.
#[utoipa::path(delete, path = "/v1/plugins/{name}/{version}", operation_id = "delete_plugin_version", tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name"),
           ("version" = u32, Path, description = "The version number")),
    responses((status = 204, description = "Deleted"),
              (status = 409, description = "Unfinished jobs are pinned to this version", body = ErrorBody),
              Refusals))]
pub async fn delete(
    State(state): State<AppState>,
    key: TenantKey,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    use crate::store::PluginDelete;
    let not_found = || ApiError::NotFound(format!("no version `{version}` of plugin `{name}`"));
    let number: u32 = version.parse().map_err(|_| not_found())?;
    let digest = state
        .store
        .plugin_get(&key.tenant, &name, Some(number))
        .await?
        .and_then(|p| crate::model::Digest::parse(&p.digest));
    match state
        .store
        .plugin_delete(&key.tenant, &name, number, chrono::Utc::now())
        .await?
    {
        PluginDelete::Deleted => {
            // Freed here at once (other hosts' caches let it age out);
            // were it still named, it loads again from the disk cache.
            if let Some(digest) = digest {
                state.runtime.forget(digest);
            }
            Ok(StatusCode::NO_CONTENT)
        }
        PluginDelete::NotFound => Err(not_found()),
        PluginDelete::InUse(jobs) => Err(ApiError::Conflict(format!(
            "version {number} of plugin `{name}` is pinned by {jobs} unfinished job(s) or \
             workflow step(s); cancel them or let them finish first"
        ))),
    }
}

/// Most bytes of one plugin's config (keys and values together): it is
/// loaded with every claimed job.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlugin {
    limits: Option<UploadLimits>,
    /// Replaces the whole config; values are write-only.
    config: Option<std::collections::BTreeMap<String, String>>,
    /// Replaces the outbound HTTP settings (allow-list and limits).
    http: Option<HttpSettings>,
}

/// `PATCH /v1/plugins/{name}`: change the limits and/or the config of every
/// version of a plugin (jobs already waiting use the new settings).
#[utoipa::path(patch, path = "/v1/plugins/{name}", operation_id = "update_plugin", tag = "plugins", request_body = UpdatePlugin,
    params(("name" = String, Path, description = "The plugin's name")),
    responses((status = 200, description = "The latest version", body = PluginView), Refusals))]
pub async fn update(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    super::JsonBody(body): super::JsonBody<UpdatePlugin>,
) -> Result<Json<PluginView>, ApiError> {
    let latest = state
        .store
        .plugin_get(&key.tenant, &name, None)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no plugin `{name}`")))?;
    let quotas = key.quotas;
    let limits = match body.limits {
        None => None,
        Some(asked) => {
            let limits = Limits {
                fuel: asked.fuel.unwrap_or(latest.limits.fuel),
                memory_bytes: asked
                    .memory_mb
                    .map(|mb| mb.saturating_mul(1 << 20))
                    .unwrap_or(latest.limits.memory_bytes),
                timeout_ms: asked.timeout_ms.unwrap_or(latest.limits.timeout_ms),
                ..latest.limits
            };
            let max_attempts = asked.max_attempts.unwrap_or(latest.max_attempts);
            check_limits(&limits, max_attempts, &quotas)?;
            Some((limits, max_attempts))
        }
    };
    if let Some(config) = &body.config {
        let size: usize = config.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_CONFIG_BYTES {
            return Err(ApiError::Unprocessable(
                "invalid_config",
                format!("config is {size} bytes; the limit is {MAX_CONFIG_BYTES}"),
            ));
        }
        if let Some(long) = config
            .keys()
            .find(|k| k.is_empty() || k.len() > crate::runtime::sandbox::MAX_CONFIG_KEY_BYTES)
        {
            return Err(ApiError::Unprocessable(
                "invalid_config",
                format!(
                    "config key `{long}` must be 1 to {} bytes",
                    crate::runtime::sandbox::MAX_CONFIG_KEY_BYTES
                ),
            ));
        }
        if config
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::Unprocessable(
                "invalid_config",
                "config holds a NUL character".into(),
            ));
        }
    }
    if let Some(http) = &body.http {
        check_http(http, &state.outbound_hosts, &quotas)?;
    }
    let updated = state
        .store
        .plugin_update(
            &key.tenant,
            &name,
            limits,
            body.config.as_ref(),
            body.http.as_ref(),
        )
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no plugin `{name}`")))?;
    Ok(Json(updated.into()))
}

/// Outbound HTTP settings: 422 naming the first bad entry or limit, the
/// first entry whose host the operator does not permit, or the first limit
/// over the tenant's quotas.
fn check_http(
    settings: &HttpSettings,
    hosts: &crate::runtime::outbound::HostLimit,
    quotas: &crate::model::Quotas,
) -> Result<(), ApiError> {
    settings
        .validate()
        .and_then(|allow| allow.check_hosts(hosts))
        .map_err(|why| ApiError::Unprocessable("invalid_http", why))?;
    match quotas.http_caps().refusal(settings) {
        Some(why) => Err(ApiError::Unprocessable("over_limit", why)),
        None => Ok(()),
    }
}

/// Limits against the tenant's quotas: 422 naming the first one over.
fn check_limits(
    limits: &Limits,
    max_attempts: u32,
    quotas: &crate::model::Quotas,
) -> Result<(), ApiError> {
    if limits.fuel == 0 || limits.memory_bytes == 0 || limits.timeout_ms == 0 {
        return Err(ApiError::Unprocessable(
            "invalid",
            "fuel, memory_mb and timeout_ms must be positive".into(),
        ));
    }
    if let Some(why) = quotas.attempt_caps().refusal(
        Some(limits.fuel),
        Some(limits.memory_bytes),
        Some(limits.timeout_ms),
    ) {
        return Err(ApiError::Unprocessable("over_limit", why));
    }
    if !(1..=crate::model::MAX_ATTEMPTS_PER_JOB).contains(&max_attempts) {
        return Err(ApiError::Unprocessable(
            "invalid",
            format!(
                "max_attempts must be between 1 and {}",
                crate::model::MAX_ATTEMPTS_PER_JOB
            ),
        ));
    }
    Ok(())
}
