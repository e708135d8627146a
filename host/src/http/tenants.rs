//! Tenants and their keys (admin routes).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::AdminKey;
use super::openapi::{ErrorBody, Refusals};
use super::{ApiError, AppState, JsonBody};
use crate::model::{ApiKey, Quotas, Tenant};
pub use corral_client::api::{CreatedKey, TenantList};

/// Quotas to set; absent ones keep their value (or the default, on creation).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaPatch {
    max_concurrency: Option<u32>,
    max_fuel_per_attempt: Option<u64>,
    max_memory_mb: Option<u32>,
    max_timeout_ms: Option<u64>,
    max_plugin_bytes: Option<u64>,
    max_queued_jobs: Option<u64>,
    enqueue_per_minute: Option<u32>,
    max_stored_plugin_bytes: Option<u64>,
    max_schedules: Option<u32>,
    max_workflows: Option<u32>,
    max_workflow_versions: Option<u32>,
    max_http_requests_per_attempt: Option<u32>,
    max_http_response_bytes: Option<u64>,
}

impl QuotaPatch {
    fn apply(&self, base: Quotas) -> Result<Quotas, ApiError> {
        let positive = |name: &'static str, value: u64| {
            if value == 0 || value > i64::MAX as u64 {
                Err(ApiError::Unprocessable(
                    "invalid_quota",
                    format!("quota `{name}` must be between 1 and {}", i64::MAX),
                ))
            } else {
                Ok(value)
            }
        };
        let small = |name: &'static str, value: u32| {
            if value == 0 || value > i32::MAX as u32 {
                Err(ApiError::Unprocessable(
                    "invalid_quota",
                    format!("quota `{name}` must be between 1 and {}", i32::MAX),
                ))
            } else {
                Ok(value)
            }
        };
        Ok(Quotas {
            max_concurrency: small(
                "max_concurrency",
                self.max_concurrency.unwrap_or(base.max_concurrency),
            )?,
            max_fuel_per_attempt: positive(
                "max_fuel_per_attempt",
                self.max_fuel_per_attempt
                    .unwrap_or(base.max_fuel_per_attempt),
            )?,
            max_memory_mb: small(
                "max_memory_mb",
                self.max_memory_mb.unwrap_or(base.max_memory_mb),
            )?,
            max_timeout_ms: positive(
                "max_timeout_ms",
                self.max_timeout_ms.unwrap_or(base.max_timeout_ms),
            )?,
            max_plugin_bytes: positive(
                "max_plugin_bytes",
                self.max_plugin_bytes.unwrap_or(base.max_plugin_bytes),
            )?,
            max_queued_jobs: positive(
                "max_queued_jobs",
                self.max_queued_jobs.unwrap_or(base.max_queued_jobs),
            )?,
            enqueue_per_minute: small(
                "enqueue_per_minute",
                self.enqueue_per_minute.unwrap_or(base.enqueue_per_minute),
            )?,
            max_stored_plugin_bytes: positive(
                "max_stored_plugin_bytes",
                self.max_stored_plugin_bytes
                    .unwrap_or(base.max_stored_plugin_bytes),
            )?,
            max_schedules: small(
                "max_schedules",
                self.max_schedules.unwrap_or(base.max_schedules),
            )?,
            max_workflows: small(
                "max_workflows",
                self.max_workflows.unwrap_or(base.max_workflows),
            )?,
            max_workflow_versions: small(
                "max_workflow_versions",
                self.max_workflow_versions
                    .unwrap_or(base.max_workflow_versions),
            )?,
            max_http_requests_per_attempt: small(
                "max_http_requests_per_attempt",
                self.max_http_requests_per_attempt
                    .unwrap_or(base.max_http_requests_per_attempt),
            )?,
            max_http_response_bytes: positive(
                "max_http_response_bytes",
                self.max_http_response_bytes
                    .unwrap_or(base.max_http_response_bytes),
            )?,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-63 characters of a-z, 0-9, `_` and `-`, starting with a letter or digit.
    id: String,
    /// Defaults to the id.
    name: Option<String>,
    #[serde(default)]
    quotas: QuotaPatch,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    quotas: QuotaPatch,
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", operation_id = "create_tenant", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, description = "The tenant", body = Tenant),
              (status = 409, description = "A tenant with this id exists", body = ErrorBody),
              Refusals))]
pub async fn create(
    State(state): State<AppState>,
    _: AdminKey,
    JsonBody(body): JsonBody<CreateTenant>,
) -> Result<super::Saved<Tenant>, ApiError> {
    if let Err(e) = crate::model::Name::parse("tenant id", &body.id) {
        return Err(ApiError::Unprocessable("invalid_tenant_id", e.to_string()));
    }
    let tenant = Tenant {
        name: body.name.unwrap_or_else(|| body.id.clone()),
        quotas: body.quotas.apply(Quotas::default())?,
        id: body.id,
        created_at: chrono::Utc::now(),
    };
    state.store.tenant_insert(&tenant).await?;
    Ok(super::Saved::created(
        super::path_of(&["v1", "tenants", &tenant.id]),
        tenant,
    ))
}

/// Every tenant.
#[utoipa::path(get, path = "/v1/tenants", operation_id = "list_tenants", tag = "tenants",
    responses((status = 200, description = "The tenants", body = TenantList), Refusals))]
pub async fn list(
    State(state): State<AppState>,
    _: AdminKey,
) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList {
        tenants: state.store.tenant_list().await?,
    }))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{id}", operation_id = "get_tenant", tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant", body = Tenant), Refusals))]
pub async fn get(
    State(state): State<AppState>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let tenant = state.store.tenant_get(&id).await?;
    tenant
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no tenant `{id}`")))
}

/// Change a tenant's quotas (absent ones keep their value).
#[utoipa::path(patch, path = "/v1/tenants/{id}", operation_id = "update_tenant", tag = "tenants", request_body = UpdateTenant,
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant", body = Tenant), Refusals))]
pub async fn update(
    State(state): State<AppState>,
    _: AdminKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateTenant>,
) -> Result<Json<Tenant>, ApiError> {
    let current = state
        .store
        .tenant_get(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant `{id}`")))?;
    let quotas = body.quotas.apply(current.quotas)?;
    let updated = state.store.tenant_update_quotas(&id, &quotas).await?;
    updated
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no tenant `{id}`")))
}

/// Create an API key for a tenant.
#[utoipa::path(post, path = "/v1/tenants/{id}/keys", operation_id = "create_key", tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 201, description = "The key, shown once", body = CreatedKey), Refusals))]
pub async fn create_key(
    State(state): State<AppState>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<super::Saved<CreatedKey>, ApiError> {
    if state.store.tenant_get(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no tenant `{id}`")));
    }
    issue_key(&state, Some(id)).await
}

/// A tenant's keys (ids and times; never a secret), oldest first.
#[utoipa::path(get, path = "/v1/tenants/{id}/keys", operation_id = "list_keys", tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant's keys, oldest first", body = corral_client::api::AdminKeyList), Refusals))]
pub async fn list_keys(
    State(state): State<AppState>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<Json<corral_client::api::AdminKeyList>, ApiError> {
    if state.store.tenant_get(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no tenant `{id}`")));
    }
    super::admin_keys::key_list(&state, Some(&id))
        .await
        .map(Json)
}

/// Make a key for `tenant` (an admin key when none) and store its hash:
/// 201 with the key, shown this once.
pub(super) async fn issue_key(
    state: &AppState,
    tenant: Option<String>,
) -> Result<super::Saved<CreatedKey>, ApiError> {
    let key = crate::keys::generate().map_err(|e| ApiError::Internal(e.to_string()))?;
    state
        .store
        .api_key_insert(&ApiKey {
            id: key.id.clone(),
            tenant_id: tenant.clone(),
            secret_hash: key.secret_hash,
            created_at: chrono::Utc::now(),
            revoked_at: None,
        })
        .await?;
    let location = match &tenant {
        Some(tenant) => super::path_of(&["v1", "tenants", tenant, "keys", &key.id]),
        None => super::path_of(&["v1", "admin-keys", &key.id]),
    };
    Ok(super::Saved::created(
        location,
        CreatedKey {
            key_id: key.id,
            key: key.token,
        },
    ))
}

/// Delete a tenant and everything it owns: its keys stop working at once,
/// its jobs (running ones are fenced out: their hosts find them gone and
/// stop them), plugins, workflows and runs, schedules, secrets and
/// idempotency keys are deleted. Not undone.
#[utoipa::path(delete, path = "/v1/tenants/{id}", operation_id = "delete_tenant", tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 204, description = "Deleted, with everything it owned"), Refusals))]
pub async fn delete(
    State(state): State<AppState>,
    _: AdminKey,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.tenant_delete(&id).await? {
        tracing::info!(tenant = %id, "tenant deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no tenant `{id}`")))
    }
}

/// Revoke a tenant's key.
#[utoipa::path(delete, path = "/v1/tenants/{id}/keys/{key_id}", operation_id = "revoke_key", tag = "tenants",
    params(("id" = String, Path, description = "The tenant's id"),
           ("key_id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"), Refusals))]
pub async fn revoke_key(
    State(state): State<AppState>,
    _: AdminKey,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .api_key_revoke(Some(&id), &key_id, chrono::Utc::now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "tenant `{id}` has no active key `{key_id}`"
        )))
    }
}
