//! The `Idempotency-Key` header of the requests that create work
//! (`POST /v1/jobs`, `POST /v1/jobs/batch`, `POST /v1/workflows/{name}/runs`).
//! A retry under the same key answers what the first request made (200);
//! the same key on a different request (another route, or another body) is
//! a 422 `idempotency_key_reused`, never the first answer silently. The
//! store keeps the key with what it answered (`store::request_keys`).

use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use sha2::Digest as _;

use super::ApiError;
use crate::store::RequestKey;

/// The header's name (HTTP header names are case-insensitive).
pub const HEADER: &str = "idempotency-key";

/// The request's key, with the fingerprint of `route` and `body`; none
/// without the header.
pub fn request_key(
    headers: &HeaderMap,
    route: &str,
    body: &impl Serialize,
) -> Result<Option<RequestKey>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::BadRequest(
            "invalid_header",
            "Idempotency-Key must be visible ASCII".into(),
        )
    })?;
    let body = serde_json::to_value(body)
        .map_err(|e| ApiError::Internal(format!("fingerprinting a request: {e}")))?;
    let mut hasher = sha2::Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(&body).as_bytes());
    let fingerprint = hex::encode(hasher.finalize());
    RequestKey::new(key.to_string(), fingerprint)
        .map(Some)
        .map_err(|e| ApiError::BadRequest("invalid_header", e.to_string()))
}

/// JSON text with every object's keys sorted, so the same request written
/// with its fields in another order or other spacing has one fingerprint.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_and_spacing_do_not_change_the_fingerprint() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
        let c: Value = serde_json::from_str(r#"{"a":"s","b":[{"x":1,"y":2},1]}"#).unwrap();
        assert_ne!(canonical(&a), canonical(&c), "array order matters");
    }
}
