//! Tenant secrets (docs/http.md, "Secrets"): write-only values that a
//! plugin's requests may carry toward the destinations its allow-list
//! binds them to. Listing shows names and times only; no route, log line
//! or error ever holds a value.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::TenantKey;
use super::openapi::Refusals;
use super::{ApiError, AppState};
use crate::secrets::MAX_SECRET_BYTES;
use crate::store::secrets::SecretInfo;
use corral_client::api::SecretList;

/// The body of `PUT /v1/secrets/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    /// The value (at most 8 KiB of text). Never returned.
    value: String,
}

// Never the value, even in a debug print.
impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

fn key_of(state: &AppState) -> Result<&crate::secrets::SecretKey, ApiError> {
    state.secret_key.as_deref().ok_or_else(|| {
        ApiError::Unavailable(
            "tenant secrets are off on this host: it has no secret key (CORRAL_SECRET_KEY or --secret-key-file)"
                .into(),
        )
    })
}

/// `PUT /v1/secrets/{name}`: create (201) or replace (200) a secret.
#[utoipa::path(put, path = "/v1/secrets/{name}", operation_id = "put_secret", tag = "secrets",
    request_body = SecretValue,
    params(("name" = String, Path, description = "1 to 64 of A-Z, 0-9 and _, starting with a letter")),
    responses((status = 201, description = "Created", body = SecretInfo),
              (status = 200, description = "Replaced", body = SecretInfo),
              Refusals))]
pub async fn put(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
    super::JsonBody(body): super::JsonBody<SecretValue>,
) -> Result<super::Saved<SecretInfo>, ApiError> {
    if !crate::model::is_secret_name(&name) {
        return Err(ApiError::Unprocessable(
            "invalid_secret_name",
            format!(
                "`{name}` is not a secret name ({})",
                crate::model::SECRET_NAME_RULE
            ),
        ));
    }
    if body.value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::Unprocessable(
            "invalid_secret",
            format!(
                "the value is {} bytes; the limit is {MAX_SECRET_BYTES}",
                body.value.len()
            ),
        ));
    }
    if body.value.is_empty() || body.value.contains(['\0', '\r', '\n']) {
        // It goes into header values: no line breaks, no NUL.
        return Err(ApiError::Unprocessable(
            "invalid_secret",
            "the value must be non-empty, without NUL or line breaks".into(),
        ));
    }
    let sealed = key_of(&state)?
        .seal(&key.tenant, &name, &body.value)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (info, created) = state
        .store
        .secret_put(&key.tenant, &name, &sealed, chrono::Utc::now())
        .await?;
    Ok(super::Saved {
        created,
        location: super::path_of(&["v1", "secrets", &name]),
        body: info,
    })
}

/// `GET /v1/secrets`: the tenant's secrets' names and times.
#[utoipa::path(get, path = "/v1/secrets", operation_id = "list_secrets", tag = "secrets",
    responses((status = 200, description = "The secrets (no values)", body = SecretList), Refusals))]
pub async fn list(
    State(state): State<AppState>,
    key: TenantKey,
) -> Result<Json<SecretList>, ApiError> {
    Ok(Json(SecretList {
        secrets: state.store.secret_list(&key.tenant).await?,
    }))
}

/// `DELETE /v1/secrets/{name}`: 204.
#[utoipa::path(delete, path = "/v1/secrets/{name}", operation_id = "delete_secret", tag = "secrets",
    params(("name" = String, Path, description = "The secret's name")),
    responses((status = 204, description = "Deleted"), Refusals))]
pub async fn delete(
    State(state): State<AppState>,
    key: TenantKey,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.secret_delete(&key.tenant, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no secret `{name}`")))
    }
}
