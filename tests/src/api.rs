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

/// A request to the router, built step by step:
/// `call(&app, Method::POST, "/v1/jobs").key(&key).json(body).send().await`.
#[must_use = "a request does nothing until it is sent"]
pub struct Call<'a> {
    app: &'a axum::Router,
    request: axum::http::request::Builder,
    body: Body,
}

/// Start a request of `method` to `uri`.
pub fn call<'a>(app: &'a axum::Router, method: Method, uri: &str) -> Call<'a> {
    Call {
        app,
        request: Request::builder().method(method).uri(uri),
        body: Body::empty(),
    }
}

impl Call<'_> {
    /// Authenticate with this API key.
    pub fn key(self, key: &str) -> Self {
        self.header("authorization", &format!("Bearer {key}"))
    }

    /// Authenticate when a key is given.
    pub fn key_opt(self, key: Option<&str>) -> Self {
        match key {
            Some(key) => self.key(key),
            None => self,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |call, (name, value)| call.header(name, value))
    }

    /// A JSON body.
    pub fn json(self, body: Value) -> Self {
        self.raw(&body.to_string())
    }

    /// A JSON body when one is given.
    pub fn json_opt(self, body: Option<Value>) -> Self {
        match body {
            Some(body) => self.json(body),
            None => self,
        }
    }

    /// A JSON body sent as given (text serde_json would not build as a
    /// value: nested too deep, duplicate keys).
    pub fn raw(self, body: &str) -> Self {
        self.bytes("application/json", body.as_bytes().to_vec())
    }

    /// A body of any type.
    pub fn bytes(mut self, content_type: &str, bytes: Vec<u8>) -> Self {
        self.request = self.request.header("content-type", content_type);
        self.body = Body::from(bytes);
        self
    }

    /// The answer's status and body: JSON, or the text of a body that is
    /// not JSON (a diagram), or null when empty.
    pub async fn send(self) -> (StatusCode, Value) {
        let (status, _, value) = self.exchange().await;
        (status, value)
    }

    /// [`Call::send`], with the answer's headers.
    pub async fn exchange(self) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = self
            .app
            .clone()
            .oneshot(self.request.body(self.body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }
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
    call(app, Method::POST, path)
        .key(key)
        .bytes(content_type, bytes)
        .send()
        .await
}

/// A tenant (with `quotas`) and one of its keys.
pub async fn tenant_with_key(app: &axum::Router, id: &str, quotas: Value) -> String {
    call(app, Method::POST, "/v1/tenants")
        .key(ADMIN_TOKEN)
        .json(json!({"id": id, "quotas": quotas}))
        .send()
        .await;
    let (_, key) = call(app, Method::POST, &format!("/v1/tenants/{id}/keys"))
        .key(ADMIN_TOKEN)
        .send()
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

/// Server-Sent Events as (event, data) pairs, parsed across frames.
pub struct SseReader {
    body: Body,
    buffer: String,
}

impl SseReader {
    /// Open an event stream (`GET path` with `key`), which must answer 200.
    pub async fn open(app: &axum::Router, key: &str, path: &str) -> SseReader {
        let request = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        SseReader {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event; None when the stream ended. Panics after `patience`.
    pub async fn next(&mut self, patience: std::time::Duration) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event: ") {
                        event = name.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((event, serde_json::from_str(&data).unwrap()));
            }
            let frame = tokio::time::timeout(patience, self.body.frame())
                .await
                .expect("an event within the patience")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}
