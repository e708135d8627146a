//! Admin keys: list, create, revoke. The key generated on a first start is
//! one of them, so it can be replaced and revoked like any other. With
//! `CORRAL_ADMIN_TOKEN` set, that token is the one admin credential and
//! stored admin keys are not accepted (see `auth`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::auth::AdminKey;
use super::openapi::Refusals;
use super::tenants::CreatedKey;
use super::{ApiError, AppState};
use corral_client::api::{AdminKeyList, AdminKeyView};

/// Keys listed at most (admin keys, or one tenant's): each is created by
/// an admin, so this only bounds one answer.
const MAX_LISTED_KEYS: u32 = 1000;

/// `GET /v1/admin-keys`.
#[utoipa::path(get, path = "/v1/admin-keys", operation_id = "list_admin_keys", tag = "tenants",
    responses((status = 200, description = "The admin keys, oldest first", body = AdminKeyList), Refusals))]
pub async fn list(
    State(state): State<AppState>,
    _: AdminKey,
) -> Result<Json<AdminKeyList>, ApiError> {
    key_list(&state, None).await.map(Json)
}

/// The keys of `tenant` (the admin keys when none), oldest first: ids and
/// times, never a secret.
pub(super) async fn key_list(
    state: &AppState,
    tenant: Option<&str>,
) -> Result<AdminKeyList, ApiError> {
    let keys = state.store.api_key_list(tenant, MAX_LISTED_KEYS).await?;
    Ok(AdminKeyList {
        keys: keys
            .into_iter()
            .map(|k| AdminKeyView {
                key_id: k.id,
                created_at: k.created_at,
                revoked_at: k.revoked_at,
            })
            .collect(),
    })
}

/// `POST /v1/admin-keys`: 201, the key shown once.
#[utoipa::path(post, path = "/v1/admin-keys", operation_id = "create_admin_key", tag = "tenants",
    responses((status = 201, description = "The key, shown once", body = CreatedKey), Refusals))]
pub async fn create(
    State(state): State<AppState>,
    _: AdminKey,
) -> Result<super::Saved<CreatedKey>, ApiError> {
    super::tenants::issue_key(&state, None).await
}

/// `DELETE /v1/admin-keys/{key_id}`: 204; the key stops working at once
/// (the one making the request too). With every admin key revoked, only
/// `CORRAL_ADMIN_TOKEN` reaches the admin routes.
#[utoipa::path(delete, path = "/v1/admin-keys/{key_id}", operation_id = "revoke_admin_key", tag = "tenants",
    params(("key_id" = String, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"), Refusals))]
pub async fn revoke(
    State(state): State<AppState>,
    _: AdminKey,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .api_key_revoke(None, &key_id, chrono::Utc::now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no active admin key `{key_id}`"
        )))
    }
}
