//! The dashboard (docs/dashboard.md): one page and its script and style,
//! compiled into the binary (nothing is fetched from elsewhere, so it works
//! offline), and the session that signs it in.
//!
//! The page is a client of the API: every view reads the same `/v1` routes
//! with the same authorization (the key rides in an `HttpOnly` cookie
//! instead of a header; `auth` checks the CSRF token of every change). The
//! script never writes HTML: every text from a tenant or a plugin goes into
//! the page through `textContent`, and the Content-Security-Policy allows
//! no inline script at all.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::auth::{self, Principal, SESSION_COOKIE, TENANT_COOKIE};
use super::{ApiError, AppState, JsonBody};

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/app.css");

/// No inline script or style, nothing from another origin, no framing: a
/// text a plugin wrote that slipped into the page as markup still could
/// not run.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
        .route("/ui/session", get(session).post(sign_in).delete(sign_out))
}

/// An asset with the dashboard's security headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(headers);
    response
}

fn secure(headers: &mut HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // The assets are part of the binary; a new binary must not be shown
    // with an old script.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Who the dashboard is signed in as.
#[derive(Debug, Serialize, Deserialize)]
pub struct Session {
    /// `tenant` or `admin`.
    pub kind: &'static str,
    /// A tenant key's tenant; for an admin, the tenant chosen (if any).
    pub tenant: Option<String>,
    /// Send as `X-Corral-CSRF` with every change.
    pub csrf: String,
}

fn session_of(principal: Principal, key: &str, headers: &HeaderMap) -> Session {
    let (kind, tenant) = match principal {
        Principal::Tenant(tenant, _) => ("tenant", Some(tenant)),
        Principal::Admin => (
            "admin",
            auth::cookie(headers, TENANT_COOKIE).map(str::to_string),
        ),
    };
    Session {
        kind,
        tenant,
        csrf: auth::csrf_token(key),
    }
}

/// `GET /ui/session`: who the session cookie signs in, or 401.
async fn session(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Session>, ApiError> {
    let (parts, _) = request.into_parts();
    let key = auth::cookie(&parts.headers, SESSION_COOKIE)
        .ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
    let principal = auth::sign_in(&state, auth::peer(&parts), key).await?;
    Ok(Json(session_of(principal, key, &parts.headers)))
}

/// Sign in with a key, or with the one-time code of `corral serve --open`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// A cookie of the session: `HttpOnly` (no script reads it), `SameSite=Strict`
/// (no other site's page sends it), `Secure` behind TLS.
fn cookie(
    name: &str,
    value: &str,
    http_only: bool,
    tls: bool,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; SameSite=Strict");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if tls {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A byte a cookie's value may hold (RFC 6265, `cookie-octet`).
fn cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Behind a TLS-terminating proxy that says so.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// Longest key accepted at sign-in: keys are 86 characters; this bounds
/// what a caller can make the host hash.
const MAX_KEY_CHARS: usize = 512;

/// `POST /ui/session` `{"key": …}` or `{"code": …}`: sign in (the same
/// checks and failed-attempt limits as the API), answered with the session
/// and its cookie.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    let peer = connect.map(|c| c.0.0.ip());
    let redeemed;
    let key = match (&body.key, &body.code) {
        (Some(key), None) => key.trim(),
        (None, Some(code)) => {
            auth::limited(&state, peer)?;
            redeemed = (code.len() <= MAX_KEY_CHARS)
                .then(|| state.launch.redeem(code, std::time::Instant::now()))
                .flatten();
            match &redeemed {
                Some(key) => key.as_str(),
                None => {
                    return Err(auth::failed(
                        &state,
                        peer,
                        "unknown, used or expired sign-in code",
                    ));
                }
            }
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "invalid_body",
                "send one of `key` (an API key) or `code` (the code of `corral serve --open`)"
                    .into(),
            ));
        }
    };
    if key.is_empty() || key.len() > MAX_KEY_CHARS {
        return Err(ApiError::Unauthorized("unknown or revoked API key".into()));
    }
    // Generated keys always fit; a `CORRAL_ADMIN_TOKEN` might not.
    if !key.bytes().all(cookie_octet) {
        return Err(ApiError::Unprocessable(
            "invalid_body",
            "this key holds characters a cookie cannot carry (space, `\"`, `,`, `;` or `\\`); \
             sign in with another key, or use the API with the Authorization header"
                .into(),
        ));
    }
    let principal = auth::sign_in(&state, peer, key).await?;
    // A new sign-in forgets the tenant an earlier admin session chose.
    let session = session_of(principal, key, &HeaderMap::new());
    let tls = over_tls(&headers);
    let mut response = Json(session).into_response();
    let out = response.headers_mut();
    out.append(SET_COOKIE, cookie(SESSION_COOKIE, key, true, tls, None));
    out.append(SET_COOKIE, cookie(TENANT_COOKIE, "", false, tls, Some(0)));
    Ok(response)
}

/// `DELETE /ui/session`: sign out (clears both cookies).
async fn sign_out(headers: HeaderMap) -> Response {
    let tls = over_tls(&headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.append(SET_COOKIE, cookie(SESSION_COOKIE, "", true, tls, Some(0)));
    out.append(SET_COOKIE, cookie(TENANT_COOKIE, "", false, tls, Some(0)));
    response
}
