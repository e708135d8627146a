//! Who is calling: `Authorization: Bearer <key>`, or the dashboard's
//! session cookie (`ui`), which holds the same key. A tenant's key scopes
//! every lookup to that tenant; an admin key manages tenants and keys, and
//! acts as one tenant on tenant routes when it names one (`Corral-Tenant`
//! header, or the dashboard's tenant cookie).
//!
//! A request authenticated by cookie must prove it comes from the
//! dashboard's own scripts on every method that changes something: its
//! `X-Corral-CSRF` header holds [`csrf_token`] of the key, which only a
//! script of this origin can read (`GET /ui/session`). The cookie is also
//! `SameSite=Strict`; the header is the second lock.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::keys;

/// The caller holds a tenant's key (or an admin key acting as the tenant).
#[derive(Debug, Clone)]
pub struct TenantKey {
    pub tenant: String,
    /// The tenant's quotas, read with the key.
    pub quotas: crate::model::Quotas,
}

/// The caller holds an admin key.
#[derive(Debug, Clone, Copy)]
pub struct AdminKey;

pub(super) enum Principal {
    /// A tenant's key: the tenant and its quotas, read with the key.
    Tenant(String, crate::model::Quotas),
    Admin,
}

/// The dashboard's session cookie: the API key, `HttpOnly`, `SameSite=Strict`.
pub const SESSION_COOKIE: &str = "corral_session";
/// The tenant an admin's dashboard acts as (not secret: a tenant id).
pub const TENANT_COOKIE: &str = "corral_tenant";
/// The tenant an admin key acts as on a tenant route.
pub const TENANT_HEADER: &str = "corral-tenant";
/// Proof that a cookie-authenticated change comes from the dashboard.
pub const CSRF_HEADER: &str = "x-corral-csrf";

/// The CSRF token of a session's key: derived from it, so the server keeps
/// no session state, and unguessable without it.
pub fn csrf_token(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("corral-csrf:{key}")))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The key a request carries: its bearer token, else its session cookie
/// (checked for its CSRF token when the method changes something).
fn credential(parts: &Parts) -> Result<&str, ApiError> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        return header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <api key>`".into())
            });
    }
    let key = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| {
        ApiError::Unauthorized("missing `Authorization: Bearer <api key>` header".into())
    })?;
    if !parts.method.is_safe() {
        let given = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let expected = csrf_token(key);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        )) {
            return Err(ApiError::Forbidden(format!(
                "a change made with the dashboard's session cookie needs its `{CSRF_HEADER}` header"
            )));
        }
    }
    Ok(key)
}

/// Who the request's key names. A client address with too many recent
/// failures is refused before its key is looked up (`auth_failures`).
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let peer = peer(parts);
    limited(state, peer)?;
    let outcome = match credential(parts) {
        Ok(token) => check_key(state, token).await,
        Err(e) => Err(e),
    };
    counted(state, peer, outcome)
}

/// The client's address, when the server recorded it.
pub(super) fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Refuse an address with too many recent failed authentications.
pub(super) fn limited(state: &AppState, peer: Option<std::net::IpAddr>) -> Result<(), ApiError> {
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
    Ok(())
}

/// Who `token` names, counting a failure against `peer` (the API's
/// requests and the dashboard's sign-in alike).
pub(super) async fn sign_in(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    token: &str,
) -> Result<Principal, ApiError> {
    limited(state, peer)?;
    counted(state, peer, check_key(state, token).await)
}

/// A failed authentication other than a key's (a wrong sign-in code),
/// counted against `peer` like a wrong key.
pub(super) fn failed(state: &AppState, peer: Option<std::net::IpAddr>, why: &str) -> ApiError {
    match counted(state, peer, Err(ApiError::Unauthorized(why.into()))) {
        Err(e) => e,
        Ok(_) => ApiError::Unauthorized(why.into()),
    }
}

/// `outcome`, counted against `peer` when it is a failed authentication.
fn counted(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    outcome: Result<Principal, ApiError>,
) -> Result<Principal, ApiError> {
    if let (Err(ApiError::Unauthorized(_)), Some(ip)) = (&outcome, peer) {
        state.auth_failures.failed(ip, std::time::Instant::now());
    }
    outcome
}

async fn check_key(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    if let Some((id, secret)) = keys::parse(token) {
        let found = state.store.api_key_get(id).await?;
        if let Some(found) = found.filter(|found| {
            found.key.revoked_at.is_none() && keys::verify(secret, &found.key.secret_hash)
        }) {
            match (found.key.tenant_id, found.quotas) {
                (Some(tenant), Some(quotas)) => {
                    // The request's span (see request_span) declares the field.
                    tracing::Span::current().record("tenant", tenant.as_str());
                    return Ok(Principal::Tenant(tenant, quotas));
                }
                (Some(_), None) => {
                    return Err(ApiError::Unauthorized(
                        "the key's tenant no longer exists".into(),
                    ));
                }
                // With CORRAL_ADMIN_TOKEN set, that token is the one admin
                // credential: stored admin keys (the generated one
                // included) stop working.
                (None, _) if state.admin_token_hash.is_none() => return Ok(Principal::Admin),
                (None, _) => {}
            }
        }
    } else if let Some(admin) = &state.admin_token_hash
        && keys::verify(token, admin)
    {
        return Ok(Principal::Admin);
    }
    Err(ApiError::Unauthorized("unknown or revoked API key".into()))
}

/// The tenant an admin key names for a tenant route: the `Corral-Tenant`
/// header, else (the dashboard) its tenant cookie.
fn acting_tenant(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(TENANT_HEADER)
        .and_then(|h| h.to_str().ok())
        .or_else(|| cookie(&parts.headers, TENANT_COOKIE))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for TenantKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Principal::Tenant(tenant, quotas) => Ok(TenantKey { tenant, quotas }),
            Principal::Admin => match acting_tenant(parts) {
                Some(tenant) => match state.store.tenant_get(tenant).await? {
                    Some(found) => {
                        tracing::Span::current().record("tenant", tenant);
                        Ok(TenantKey {
                            tenant: found.id,
                            quotas: found.quotas,
                        })
                    }
                    None => Err(ApiError::NotFound(format!("no tenant `{tenant}`"))),
                },
                None => Err(ApiError::Forbidden(format!(
                    "an admin key manages tenants and keys; use a tenant's key for this route, \
                     or name the tenant to act as in the `{TENANT_HEADER}` header"
                ))),
            },
        }
    }
}

impl FromRequestParts<AppState> for AdminKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(parts, state).await? {
            Principal::Admin => Ok(AdminKey),
            Principal::Tenant(..) => {
                Err(ApiError::Forbidden("this route needs an admin key".into()))
            }
        }
    }
}
