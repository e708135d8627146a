//! Who is calling: `Authorization: Bearer <key>`. A tenant's key scopes
//! every lookup to that tenant; an admin key manages tenants and keys.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::keys;

/// The caller holds a tenant's key.
#[derive(Debug, Clone)]
pub struct TenantKey {
    pub tenant: String,
}

impl TenantKey {
    /// The quotas of the key's tenant.
    pub async fn quotas(&self, state: &AppState) -> Result<crate::model::Quotas, ApiError> {
        Ok(state
            .store
            .tenant_get(&self.tenant)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the key's tenant no longer exists".into()))?
            .quotas)
    }
}

/// The caller holds an admin key.
#[derive(Debug, Clone, Copy)]
pub struct AdminKey;

enum Principal {
    Tenant(String),
    Admin,
}

/// Who the request's key names. A client address with too many recent
/// failures is refused before its key is looked up (`auth_failures`).
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let now = std::time::Instant::now();
    if let Some(seconds) = peer.and_then(|ip| state.auth_failures.refused(ip, now)) {
        return Err(ApiError::TooManyRequests(
            "rate_limited",
            format!(
                "too many failed authentications from this address ({} in {} s); try again later",
                state.auth_failures.max(),
                super::auth_failures::AUTH_FAILURE_WINDOW.as_secs()
            ),
            seconds,
        ));
    }
    let outcome = check_key(parts, state).await;
    if let (Err(ApiError::Unauthorized(_)), Some(ip)) = (&outcome, peer) {
        state.auth_failures.failed(ip, now);
    }
    outcome
}

async fn check_key(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized("missing `Authorization: Bearer <api key>` header".into())
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <api key>`".into())
        })?;
    if let Some((id, secret)) = keys::parse(token) {
        let key = state.store.api_key_get(id).await?;
        if let Some(key) =
            key.filter(|k| k.revoked_at.is_none() && keys::verify(secret, &k.secret_hash))
        {
            match key.tenant_id {
                Some(tenant) => {
                    // The request's span (see request_span) declares the field.
                    tracing::Span::current().record("tenant", tenant.as_str());
                    return Ok(Principal::Tenant(tenant));
                }
                // With CORRAL_ADMIN_TOKEN set, that token is the one admin
                // credential: stored admin keys (the generated one
                // included) stop working.
                None if state.admin_token_hash.is_none() => return Ok(Principal::Admin),
                None => {}
            }
        }
    } else if let Some(admin) = &state.admin_token_hash
        && keys::verify(token, admin)
    {
        return Ok(Principal::Admin);
    }
    Err(ApiError::Unauthorized("unknown or revoked API key".into()))
}

impl FromRequestParts<AppState> for TenantKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Principal::Tenant(tenant) => Ok(TenantKey { tenant }),
            Principal::Admin => Err(ApiError::Forbidden(
                "an admin key manages tenants and keys; use a tenant's key for this route".into(),
            )),
        }
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Principal::Admin => Ok(AdminKey),
            Principal::Tenant(_) => {
                Err(ApiError::Forbidden("this route needs an admin key".into()))
            }
        }
    }
}
