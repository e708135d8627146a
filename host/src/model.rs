//! Plain types shared by every module: limits, outcomes, digests.

use std::fmt;

use serde::{Deserialize, Serialize};

// The defaults of a plugin's limits, the limits themselves, the outcome
// kinds, quotas and tenants are the API's types (shared with the client
// crate, which the CLI uses), so client and server cannot drift.
pub use corral_client::api::{
    DEFAULT_FUEL, DEFAULT_LOG_BYTES, DEFAULT_MAX_ATTEMPTS, DEFAULT_MEMORY_BYTES, DEFAULT_QUOTAS,
    DEFAULT_RESULT_BYTES, DEFAULT_TIMEOUT, Limits, OutcomeKind, Quotas, Tenant,
};

/// Bytes of a name. Names are keys of rows, parts of URLs and of log
/// lines; the bound keeps every one of those small.
pub const MAX_NAME_BYTES: usize = 63;

/// A name of a tenant, plugin, queue, workflow, step or schedule: 1 to 63
/// characters of a-z, 0-9, `_` and `-`, starting with a letter or digit
/// (so it is safe in a URL, a file name and a log line as it is). Made
/// only by [`Name::parse`], so holding one means the rule was checked, and
/// the rule and its message are written here alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// `text` as a name, or why it is not one; `what` names it in the
    /// message (`"plugin name"`, `"queue"`, `"tenant id"`).
    pub fn parse(what: &'static str, text: &str) -> Result<Name, NameError> {
        let bytes = text.as_bytes();
        let valid = (1..=MAX_NAME_BYTES).contains(&bytes.len())
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
        if valid {
            Ok(Name(text.to_string()))
        } else {
            Err(NameError {
                what,
                text: text.to_string(),
            })
        }
    }

    /// Whether `text` is a valid name.
    pub fn is_valid(text: &str) -> bool {
        Name::parse("name", text).is_ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A text that is not a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} `{text}` must be 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit"
)]
pub struct NameError {
    pub what: &'static str,
    pub text: String,
}

/// A component's identity: the SHA-256 of its bytes, shown as `sha256:<hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// Read `sha256:<64 hex digits>` back (as the store keeps it); None otherwise.
    pub fn parse(text: &str) -> Option<Digest> {
        let hex = text.strip_prefix("sha256:")?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok()?;
        Some(Digest(bytes))
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

/// Whether JSON text holds a string (or key) with the NUL character
/// (`\u0000`). Valid JSON, but PostgreSQL can store it neither as `jsonb` nor
/// as text, so Corral refuses it everywhere, on both backends alike.
pub fn json_has_nul(text: &str) -> bool {
    fn walk(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(walk),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    // Cheap precheck: a NUL can only be written as the escape `\u0000`.
    text.contains("\\u0000")
        && serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| walk(&v))
}

/// Deepest nesting of arrays and objects in any JSON Corral stores (job
/// inputs, results, workflow inputs). serde_json gives up past 128 levels
/// (which skipped the NUL check) and PostgreSQL's jsonb fails on its stack
/// depth (a 500, or an outcome retried until its lease expired): a value
/// crafted thousands of levels deep is refused up front, by a scan that
/// neither recurses nor allocates.
pub const MAX_JSON_DEPTH: usize = 64;

/// How deeply arrays and objects nest in JSON text: a byte scan, no parse.
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut most) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                most = most.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    most
}

/// Why valid JSON text cannot be stored, if it cannot: nested deeper than
/// [`MAX_JSON_DEPTH`], or holding a NUL character. Said of the value, for
/// the caller to name it: "input {why}", "the result {why}".
pub fn json_refusal(text: &str) -> Option<String> {
    let depth = json_depth(text);
    if depth > MAX_JSON_DEPTH {
        return Some(format!(
            "is nested {depth} levels deep; the limit is {MAX_JSON_DEPTH}"
        ));
    }
    if json_has_nul(text) {
        return Some("holds a NUL character (\\u0000) in a string, which cannot be stored".into());
    }
    None
}

/// Text for storage with every NUL character replaced (PostgreSQL text cannot hold one).
pub fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// A job's id: a UUIDv7, so ids sort by creation time.
pub type JobId = uuid::Uuid;
/// A time in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The job state machine (docs/job-states.md); the API's type, shared
/// with the client crate.
pub use corral_client::api::JobState;

// The outbound caps of the default quotas are the outbound layer's own.
const _: () = assert!(
    DEFAULT_QUOTAS.max_http_requests_per_attempt
        == crate::runtime::outbound::MAX_REQUESTS_PER_ATTEMPT
        && DEFAULT_QUOTAS.max_http_response_bytes
            == crate::runtime::outbound::MAX_RESPONSE_BODY_BYTES
);

/// What a tenant's quotas allow one attempt.
pub trait QuotaCaps {
    /// What these quotas allow one attempt's outbound HTTP.
    fn http_caps(&self) -> crate::runtime::outbound::HttpCaps;
    /// What these quotas allow one attempt.
    fn attempt_caps(&self) -> AttemptCaps;
}

impl QuotaCaps for Quotas {
    fn http_caps(&self) -> crate::runtime::outbound::HttpCaps {
        crate::runtime::outbound::HttpCaps {
            requests: self.max_http_requests_per_attempt,
            response_bytes: self.max_http_response_bytes,
        }
    }

    fn attempt_caps(&self) -> AttemptCaps {
        AttemptCaps {
            fuel: self.max_fuel_per_attempt,
            memory_mb: self.max_memory_mb,
            timeout_ms: self.max_timeout_ms,
        }
    }
}

/// The caps a tenant's quotas put on one attempt, whichever path made the
/// job (`POST /v1/jobs`, a workflow step, a schedule's tick, a replay): the
/// one rule, applied twice. Where a tenant asks for a limit (an upload, a
/// `PATCH`, a job's or a step's `timeout_ms`), [`AttemptCaps::refusal`]
/// names the first one over its quota (a 422 `over_limit`); at claim,
/// [`AttemptCaps::apply`] lowers whatever is stored to the caps in force
/// then, so a job stored before its tenant's quotas were lowered, or by a
/// path that forgot to ask, still runs within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCaps {
    pub fuel: u64,
    pub memory_mb: u32,
    pub timeout_ms: u64,
}

impl AttemptCaps {
    /// The first asked-for limit over its quota, as a sentence.
    pub fn refusal(
        &self,
        fuel: Option<u64>,
        memory_bytes: Option<u64>,
        timeout_ms: Option<u64>,
    ) -> Option<String> {
        let over = |what: &str, value: u64, quota: &str, max: u64| {
            Some(format!(
                "{what} {value} is over the tenant's {quota} of {max}"
            ))
        };
        if let Some(fuel) = fuel
            && fuel > self.fuel
        {
            return over("fuel", fuel, "max_fuel_per_attempt", self.fuel);
        }
        if let Some(bytes) = memory_bytes
            && bytes >> 20 > u64::from(self.memory_mb)
        {
            return over(
                "memory_mb",
                bytes >> 20,
                "max_memory_mb",
                u64::from(self.memory_mb),
            );
        }
        if let Some(timeout) = timeout_ms
            && timeout > self.timeout_ms
        {
            return over("timeout_ms", timeout, "max_timeout_ms", self.timeout_ms);
        }
        None
    }

    /// `limits` lowered to the caps.
    pub fn apply(&self, limits: Limits) -> Limits {
        Limits {
            fuel: limits.fuel.min(self.fuel),
            memory_bytes: limits
                .memory_bytes
                .min(u64::from(self.memory_mb).saturating_mul(1 << 20)),
            timeout_ms: limits.timeout_ms.min(self.timeout_ms),
            ..limits
        }
    }
}

/// A stored API key (only the hash of its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    /// None for an admin key.
    pub tenant_id: Option<String>,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// One version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginVersion {
    pub tenant_id: String,
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub limits: Limits,
    pub max_attempts: u32,
    /// Settings the guest reads with `host.config`. Never returned by the API.
    #[serde(skip)]
    pub config: std::collections::BTreeMap<String, String>,
    /// Its outbound HTTP settings: allow-list and limits (docs/http.md).
    pub http: crate::runtime::outbound::HttpSettings,
    pub created_at: Timestamp,
}

/// A job to enqueue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewJob {
    pub plugin: String,
    /// The plugin version to pin; the latest when none.
    #[serde(default)]
    pub version: Option<u32>,
    /// The job's input, as JSON text.
    pub input: String,
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Higher runs first, from -1000 to 1000.
    #[serde(default)]
    pub priority: i32,
    /// When to run; now when none.
    #[serde(default)]
    pub run_at: Option<Timestamp>,
    /// Overrides the plugin's.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Overrides the plugin's wall-clock limit.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Per tenant: enqueueing again with the same key returns the first job.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The job this one replays.
    #[serde(default)]
    pub replay_of: Option<JobId>,
}

pub fn default_queue() -> String {
    "default".into()
}

impl NewJob {
    /// A new job with `original`'s plugin version, input, queue, priority
    /// and limits, linked to it by `replay_of`, to run now.
    pub fn replay_of(original: &Job) -> NewJob {
        NewJob {
            plugin: original.plugin.clone(),
            version: Some(original.version),
            input: original.input.clone(),
            queue: original.queue.clone(),
            priority: original.priority,
            run_at: None,
            max_attempts: Some(original.max_attempts),
            timeout_ms: original.timeout_ms,
            idempotency_key: None,
            replay_of: Some(original.id),
        }
    }

    pub fn new(plugin: impl Into<String>, input: impl Into<String>) -> NewJob {
        NewJob {
            plugin: plugin.into(),
            version: None,
            input: input.into(),
            queue: default_queue(),
            priority: 0,
            run_at: None,
            max_attempts: None,
            timeout_ms: None,
            idempotency_key: None,
            replay_of: None,
        }
    }

    /// Why this job cannot be enqueued, if it cannot (checked before
    /// anything is written).
    pub fn refusal(&self) -> Option<String> {
        if let Some(why) = input_refusal(&self.input) {
            return Some(why);
        }
        if let Err(e) = Name::parse("queue", &self.queue) {
            return Some(e.to_string());
        }
        // Not `abs()`: i32::MIN has no absolute value (schemathesis found that).
        if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&self.priority) {
            return Some(format!(
                "priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"
            ));
        }
        if let Some(n) = self.max_attempts
            && !(1..=MAX_ATTEMPTS_PER_JOB).contains(&n)
        {
            return Some(format!(
                "max_attempts must be between 1 and {MAX_ATTEMPTS_PER_JOB}"
            ));
        }
        if self.timeout_ms == Some(0) {
            return Some("timeout_ms must be positive".into());
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES)
        {
            return Some(format!(
                "idempotency key must be 1-{MAX_IDEMPOTENCY_KEY_BYTES} bytes"
            ));
        }
        None
    }

    /// Why a batch cannot be enqueued, if it cannot: its size, or the first
    /// refused job (named by its index when the batch has more than one).
    pub fn batch_refusal(jobs: &[NewJob]) -> Option<String> {
        if jobs.len() > MAX_BATCH_JOBS {
            return Some(format!(
                "a batch holds at most {MAX_BATCH_JOBS} jobs, got {}",
                jobs.len()
            ));
        }
        jobs.iter().enumerate().find_map(|(i, job)| {
            let why = job.refusal()?;
            Some(if jobs.len() > 1 {
                format!("job {i}: {why}")
            } else {
                why
            })
        })
    }
}

/// Limits on what a job may ask for, checked before anything is stored.
pub const MAX_PRIORITY: i32 = 1000;
/// Attempts one job may ask for: bounds how long a failing job keeps a queue busy.
pub const MAX_ATTEMPTS_PER_JOB: u32 = 100;
/// Jobs in one batch enqueue: bounds one statement's size and the time it holds locks.
pub const MAX_BATCH_JOBS: usize = 1000;
/// Bytes of one job's input JSON: protects the database and the guest's memory.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Length of an idempotency key.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Why a job's or a run's input (JSON text) cannot be stored, if it
/// cannot: the one rule for both, said of the input.
pub fn input_refusal(input: &str) -> Option<String> {
    if input.len() > MAX_INPUT_BYTES {
        return Some(format!(
            "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
            input.len()
        ));
    }
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(input) {
        return Some(format!("input is not valid JSON: {e}"));
    }
    json_refusal(input).map(|why| format!("input {why}"))
}

/// A job whose plugin version is already pinned, for the store's insert:
/// a workflow step's job, or a schedule's.
pub struct PinnedJob {
    pub id: JobId,
    pub plugin: String,
    pub version: u32,
    pub queue: String,
    pub priority: i32,
    /// JSON text.
    pub input: String,
    /// Overrides the plugin's.
    pub max_attempts: Option<u32>,
    pub timeout_ms: Option<u64>,
    /// A workflow step's job: its run, step, element and context.
    pub run: Option<crate::workflow::RunId>,
    pub step: Option<String>,
    pub item: Option<u32>,
    pub context: Option<String>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub tenant_id: String,
    pub plugin: String,
    pub version: u32,
    pub digest: String,
    pub queue: String,
    pub priority: i32,
    pub state: JobState,
    /// JSON text.
    pub input: String,
    /// JSON text, when completed.
    pub result: Option<String>,
    pub error: Option<String>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_ms: Option<u64>,
    pub run_at: Timestamp,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub cancel_requested: bool,
    pub idempotency_key: Option<String>,
    /// The job this one replays.
    pub replay_of: Option<JobId>,
    /// The last progress a guest reported (any attempt).
    pub progress: Option<Progress>,
    /// The workflow run this job is a step of.
    pub workflow_run_id: Option<uuid::Uuid>,
    /// The step of that run.
    pub workflow_step: Option<String>,
}

/// A progress report from a guest (`host.progress`); the API's type.
pub use corral_client::api::Progress;

/// A running job's latest progress, to be recorded (fenced by its lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressUpdate {
    pub job_id: JobId,
    pub lease_token: uuid::Uuid,
    pub progress: Progress,
}

/// A job a host has claimed, with everything needed to run the attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: JobId,
    pub tenant_id: String,
    pub plugin: String,
    pub version: u32,
    pub digest: String,
    pub input: String,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The plugin's limits with the job's timeout override applied.
    pub limits: Limits,
    pub config: std::collections::BTreeMap<String, String>,
    /// The plugin's outbound HTTP settings.
    pub http: crate::runtime::outbound::HttpSettings,
    /// Fences every write about this attempt.
    pub lease_token: uuid::Uuid,
    /// When the job became due: its pickup delay is measured from here.
    pub run_at: Timestamp,
    /// For a workflow step: JSON text of the run input and upstream results.
    pub context: Option<String>,
    /// The workflow run this job is a step of.
    pub workflow_run_id: Option<uuid::Uuid>,
}

/// A recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub outcome: OutcomeKind,
    pub message: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub fuel_consumed: u64,
    pub peak_memory_bytes: u64,
    pub host_id: String,
    pub log: String,
    pub log_dropped_bytes: u64,
    /// The outbound HTTP requests it made, if any.
    pub http: Option<crate::runtime::outbound::HttpCalls>,
}

/// What the job does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `completed`, with the JSON result.
    Complete { result: String },
    /// `retrying` until `run_at`.
    Retry { run_at: Timestamp, error: String },
    /// `dead`.
    Dead { error: String },
    /// `cancelled`.
    Cancel,
}

impl Transition {
    /// The state the job moves to.
    pub fn state(&self) -> JobState {
        match self {
            Transition::Complete { .. } => JobState::Completed,
            Transition::Retry { .. } => JobState::Retrying,
            Transition::Dead { .. } => JobState::Dead,
            Transition::Cancel => JobState::Cancelled,
        }
    }
}

/// The fenced write of one attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub job_id: JobId,
    pub lease_token: uuid::Uuid,
    pub attempt: Attempt,
    pub transition: Transition,
    /// The attempt's last progress report, recorded with the outcome (the
    /// periodic progress writes may not have caught the last one).
    pub progress: Option<Progress>,
    /// The workflow run the job is a step of: its run is locked before the
    /// job, the order every writer of runs follows.
    pub workflow_run_id: Option<uuid::Uuid>,
}

/// What a secret's name may be, in words (for messages).
pub const SECRET_NAME_RULE: &str =
    "1 to 64 of A-Z, 0-9 and _, starting with a letter, like SLACK_TOKEN";

/// Names of tenant secrets: what a `{{secret.NAME}}` placeholder can name.
/// Upper case and `_` only, so a placeholder is unambiguous in any header.
pub fn is_secret_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_refused_by_its_first_bad_job_named_by_index() {
        let good = NewJob::new("echo", "{}");
        assert_eq!(NewJob::batch_refusal(std::slice::from_ref(&good)), None);
        let bad = NewJob {
            priority: i32::MIN,
            ..good.clone()
        };
        assert_eq!(
            NewJob::batch_refusal(std::slice::from_ref(&bad)).as_deref(),
            Some("priority must be between -1000 and 1000")
        );
        let why = NewJob::batch_refusal(&[good.clone(), NewJob::new("echo", "{")]).unwrap();
        assert!(why.starts_with("job 1: input is not valid JSON"), "{why}");
        let many = vec![good; MAX_BATCH_JOBS + 1];
        assert_eq!(
            NewJob::batch_refusal(&many).as_deref(),
            Some("a batch holds at most 1000 jobs, got 1001")
        );
    }

    #[test]
    fn input_is_refused_for_size_syntax_depth_and_nul() {
        assert_eq!(input_refusal(r#"{"a": [1, "b"]}"#), None);
        let big = format!("\"{}\"", "x".repeat(MAX_INPUT_BYTES));
        assert!(
            input_refusal(&big)
                .unwrap()
                .starts_with("input is 1048578 bytes")
        );
        assert!(
            input_refusal("{")
                .unwrap()
                .starts_with("input is not valid JSON")
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(
            input_refusal(&deep)
                .unwrap()
                .starts_with("input is nested 200 levels deep")
        );
        assert!(
            input_refusal(r#""a\u0000b""#)
                .unwrap()
                .starts_with("input holds a NUL")
        );
    }

    #[test]
    fn names_are_parsed_once_with_one_message() {
        for good in [
            "a",
            "acme",
            "0day",
            "my_plugin-2",
            &"x".repeat(MAX_NAME_BYTES),
        ] {
            assert_eq!(Name::parse("plugin name", good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "_a",
            "-a",
            "Acme",
            "a b",
            "a/b",
            "é",
            "a\0",
            &"x".repeat(MAX_NAME_BYTES + 1),
        ] {
            let e = Name::parse("queue", bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "queue `{bad}` must be 1-63 characters of a-z, 0-9, _ and -, starting with a letter or digit"
                )
            );
            assert!(!Name::is_valid(bad));
        }
    }

    #[test]
    fn digest_prints_with_prefix() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn nul_in_json_is_found_only_where_it_is() {
        assert!(json_has_nul(r#"{"a": "x\u0000y"}"#));
        assert!(json_has_nul(r#"{"k\u0000": 1}"#));
        assert!(
            !json_has_nul(r#"{"a": "x\\u0000y"}"#),
            "an escaped backslash is not a NUL"
        );
        assert!(!json_has_nul(r#"{"a": 1}"#));
        assert_eq!(without_nul("a\0b".into()), "a\u{FFFD}b");
    }

    #[test]
    fn outcome_names_match_serde() {
        for kind in [OutcomeKind::FuelExhausted, OutcomeKind::OutputTooLarge] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
