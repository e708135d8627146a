//! The HTTP API driven in process: the router with `oneshot` (no socket),
//! requests and the error shape, a tenant with a key, plugin uploads.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use corral::http::{AppState, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::db::TestDb;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn app(db: &TestDb) -> axum::Router {
    let mut state = AppState::new(
        db.store.clone(),
        Arc::clone(crate::runtime_arc()),
        Some(Arc::from(corral::keys::hash(ADMIN_TOKEN))),
        Arc::new(corral::metrics::Metrics::new()),
    );
    state.secret_key = Some(crate::secret_key());
    router(state)
}

pub async fn call(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_with(app, method, uri, key, body, &[]).await
}

pub async fn call_with(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let (status, _, value) = exchange(app, method, uri, key, body, headers).await;
    (status, value)
}

/// [`call_with`], with the answer's headers.
pub async fn exchange(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let answer_headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    // JSON, or the text of a body that is not JSON (a diagram).
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, answer_headers, value)
}

/// A request whose JSON body is sent as given (text serde_json would not
/// build as a value: nested too deep, duplicate keys).
pub async fn call_raw(
    app: &axum::Router,
    method: Method,
    uri: &str,
    key: &str,
    body: &str,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub fn assert_error(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(response.1["error"]["code"], code, "{}", response.1);
    assert!(
        response.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

pub async fn upload(
    app: &axum::Router,
    key: &str,
    path: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", content_type)
        .body(Body::from(bytes))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A tenant (with `quotas`) and one of its keys.
pub async fn tenant_with_key(app: &axum::Router, id: &str, quotas: Value) -> String {
    call(
        app,
        Method::POST,
        "/v1/tenants",
        Some(ADMIN_TOKEN),
        Some(json!({"id": id, "quotas": quotas})),
    )
    .await;
    let (_, key) = call(
        app,
        Method::POST,
        &format!("/v1/tenants/{id}/keys"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    key["key"].as_str().unwrap().to_string()
}

/// Upload the test plugin `name` under its own name: 201.
pub async fn push(app: &axum::Router, key: &str, name: &str) {
    let (status, body) = upload(
        app,
        key,
        &format!("/v1/plugins/{name}"),
        crate::plugin_bytes(name),
        "application/wasm",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
