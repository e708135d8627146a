//! Idempotency keys of requests that create things (a job, a batch, a
//! workflow run). A key is stored in the transaction that makes what the
//! request asked for, with a fingerprint of the request and the ids it
//! answered, so a retry gets the same answer and never a second copy, and a
//! different request under a key already used is refused instead of being
//! answered with something it did not ask for.
//!
//! The rules are here once; each backend only finds and stores the row.

use uuid::Uuid;

use super::StoreError;
use crate::model::MAX_IDEMPOTENCY_KEY_BYTES;

/// An idempotency key and the fingerprint of the request that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    key: String,
    fingerprint: String,
}

impl RequestKey {
    /// A key of 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`] bytes; `fingerprint`
    /// names the request (its route and its canonical body, hashed).
    pub fn new(key: String, fingerprint: String) -> Result<RequestKey, StoreError> {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(StoreError::Invalid(format!(
                "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_BYTES} bytes, got {}",
                key.len()
            )));
        }
        Ok(RequestKey { key, fingerprint })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The ids an earlier request under this key answered, when it was the
    /// same request; a different one is refused.
    pub(crate) fn replay(&self, stored: StoredKey) -> Result<Vec<Uuid>, StoreError> {
        if stored.fingerprint != self.fingerprint {
            return Err(StoreError::KeyReused(format!(
                "Idempotency-Key `{}` was first used with a different request (another route or \
                 body); send a new key for a new request",
                self.key
            )));
        }
        serde_json::from_str(&stored.answer).map_err(|e| {
            StoreError::corrupt(format!("the answer stored for an idempotency key: {e}"))
        })
    }
}

/// A key's stored row: the fingerprint of the first request and its answer
/// (a JSON array of ids).
#[derive(Debug, Clone)]
pub(crate) struct StoredKey {
    pub fingerprint: String,
    pub answer: String,
}

/// The answer to store with a key: the ids, as a JSON array.
pub(crate) fn answer(ids: impl IntoIterator<Item = Uuid>) -> String {
    serde_json::Value::Array(
        ids.into_iter()
            .map(|id| serde_json::Value::String(id.to_string()))
            .collect(),
    )
    .to_string()
}

/// A replayed answer as enqueue results: the same jobs, none created now.
pub(crate) fn replayed_jobs(ids: Vec<Uuid>) -> Vec<super::Inserted> {
    ids.into_iter()
        .map(|id| super::Inserted { id, created: false })
        .collect()
}
