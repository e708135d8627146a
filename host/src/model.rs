//! Plain types shared by every module: limits, outcomes, digests.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Fuel for one attempt when the plugin sets none: roughly a second of compute.
/// Protects against guests that never stop computing.
pub const DEFAULT_FUEL: u64 = 1_000_000_000;
/// Linear memory (all memories of the component together) for one attempt.
/// Protects the host's RAM from a guest that allocates without end.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Wall-clock time for one attempt. Protects worker slots from guests that
/// block (in a WASI clock wait) or run slowly within their fuel.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the JSON result. Protects the database and the API's clients.
pub const DEFAULT_RESULT_BYTES: u64 = 1024 * 1024;
/// Size of the captured log (stdout, stderr and `host.log` together).
/// Protects the database from guests that print without end.
pub const DEFAULT_LOG_BYTES: u64 = 64 * 1024;
/// Attempts a job may use in all.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The limits of one attempt of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Fuel units (roughly one per wasm instruction).
    pub fuel: u64,
    /// Bytes of linear memory, summed over every memory of the component.
    pub memory_bytes: u64,
    /// Wall-clock milliseconds.
    pub timeout_ms: u64,
    /// Bytes of the JSON result.
    pub result_bytes: u64,
    /// Bytes of captured log.
    pub log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            result_bytes: DEFAULT_RESULT_BYTES,
            log_bytes: DEFAULT_LOG_BYTES,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The kind of outcome of one attempt (PLUGIN.md, "Outcomes of an attempt").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// `run` returned Ok with valid JSON.
    Completed,
    /// `run` returned Ok with text that is not JSON.
    InvalidResult,
    /// `run` returned `retryable`.
    Failed,
    /// `run` returned `fatal`.
    Fatal,
    /// The guest trapped: panic, unreachable, stack overflow, failed instantiation.
    Trapped,
    /// The attempt used all of its fuel.
    FuelExhausted,
    /// The guest asked for more memory than its limit allows.
    MemoryExceeded,
    /// The wall-clock deadline passed.
    Timeout,
    /// The result or the log was larger than its bound.
    OutputTooLarge,
    /// The job was cancelled while the attempt ran.
    Cancelled,
    /// The host running the attempt died and its lease expired (written by the janitor).
    LeaseExpired,
}

impl OutcomeKind {
    /// The name used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Completed => "completed",
            OutcomeKind::InvalidResult => "invalid_result",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Fatal => "fatal",
            OutcomeKind::Trapped => "trapped",
            OutcomeKind::FuelExhausted => "fuel_exhausted",
            OutcomeKind::MemoryExceeded => "memory_exceeded",
            OutcomeKind::Timeout => "timeout",
            OutcomeKind::OutputTooLarge => "output_too_large",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::LeaseExpired => "lease_expired",
        }
    }

    /// Whether another attempt could turn out differently. Deterministic
    /// failures (fuel, memory, bad output, fatal) are never retried.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            OutcomeKind::Failed
                | OutcomeKind::Trapped
                | OutcomeKind::Timeout
                | OutcomeKind::LeaseExpired
        )
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component's identity: the SHA-256 of its bytes, shown as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// Lower-case hex of the hash, without the `sha256:` prefix. Safe as a file name.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_prints_with_prefix() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn outcome_names_match_serde() {
        for kind in [OutcomeKind::FuelExhausted, OutcomeKind::OutputTooLarge] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
