//! Jobs: what `POST /v1/jobs` takes and every job route answers, with the
//! attempts and logs of a job.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Timestamp;

/// The job state machine (docs/job-states.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Scheduled,
    Available,
    Running,
    Retrying,
    Completed,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retrying,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// `completed`, `dead` and `cancelled`: states a job does not leave.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A progress report from a guest (`host.progress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub percent: u8,
    pub message: String,
}

/// A job in API responses (docs/api.md, "Jobs"). Input and result are JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: uuid::Uuid,
    pub plugin: String,
    pub version: u32,
    pub digest: String,
    pub queue: String,
    pub priority: i32,
    pub state: JobState,
    /// The job's JSON input. Listings leave it out unless asked
    /// (`include=input`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Box<RawValue>>,
    /// The plugin's JSON result, once `completed`. Listings leave it out
    /// unless asked (`include=result`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<serde_json::Value>))]
    #[serde(default)]
    pub result: Option<Box<RawValue>>,
    pub error: Option<String>,
    pub attempt: u32,
    pub max_attempts: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub run_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// The last progress its plugin reported (`host.progress`), if any.
    pub progress: Option<Progress>,
    /// The job this one replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<uuid::Uuid>,
    /// The workflow run this job is a step of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<uuid::Uuid>,
    /// The step of that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_step: Option<String>,
}

/// A job to create (docs/api.md, `POST /v1/jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub plugin: String,
    /// The plugin version to pin; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Any JSON value, kept as the client wrote it.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub input: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl CreateJob {
    /// A job of `plugin` with `input` (JSON text, sent as written), every
    /// other field left to the server.
    pub fn new(plugin: impl Into<String>, input: Box<RawValue>) -> CreateJob {
        CreateJob {
            plugin: plugin.into(),
            version: None,
            input,
            queue: None,
            priority: None,
            run_at: None,
            max_attempts: None,
            timeout_ms: None,
        }
    }
}

// Jobs to create at once (`POST /v1/jobs/batch`); no doc comment, which
// would become the schema's description.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBatch {
    /// 1 to 1000 jobs, enqueued all or nothing.
    pub jobs: Vec<CreateJob>,
}

/// The ids of a batch's jobs, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchCreated {
    pub ids: Vec<uuid::Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The kind of outcome of one attempt (PLUGIN.md, "Outcomes of an attempt").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    pub const ALL: [OutcomeKind; 11] = [
        OutcomeKind::Completed,
        OutcomeKind::InvalidResult,
        OutcomeKind::Failed,
        OutcomeKind::Fatal,
        OutcomeKind::Trapped,
        OutcomeKind::FuelExhausted,
        OutcomeKind::MemoryExceeded,
        OutcomeKind::Timeout,
        OutcomeKind::OutputTooLarge,
        OutcomeKind::Cancelled,
        OutcomeKind::LeaseExpired,
    ];

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

    pub fn parse(s: &str) -> Option<OutcomeKind> {
        OutcomeKind::ALL.into_iter().find(|kind| kind.as_str() == s)
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

/// One attempt in the timeline (its log is under `/logs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    pub attempt: u32,
    pub outcome: OutcomeKind,
    pub message: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub finished_at: Timestamp,
    pub duration_ms: i64,
    pub fuel_consumed: u64,
    pub peak_memory_bytes: u64,
    pub host_id: String,
    /// The outbound HTTP requests it made (docs/http.md); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCalls>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptList {
    pub attempts: Vec<Attempt>,
}

/// The captured guest log of one attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptLog {
    pub attempt: u32,
    pub log: String,
    /// Whether the log was cut at the plugin's log limit.
    pub truncated: bool,
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogList {
    pub logs: Vec<AttemptLog>,
}

/// How a recorded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// An answer came (whatever its status).
    Ok,
    /// Refused by the allow-list, the network policy or a limit.
    Denied,
    /// Connecting or the first byte took too long.
    Timeout,
    /// A body passed its limit.
    TooLarge,
    /// Anything else (DNS, connect, TLS, protocol).
    Error,
    /// Still in flight when the attempt ended.
    Unfinished,
}

impl CallResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Denied => "denied",
            CallResult::Timeout => "timeout",
            CallResult::TooLarge => "too_large",
            CallResult::Error => "error",
            CallResult::Unfinished => "unfinished",
        }
    }
}

/// One request an attempt made, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HttpCall {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Without the query string (it may carry what the plugin's owner
    /// would not want stored).
    pub path: String,
    pub result: CallResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed: `denied: …`, `timeout: …`, `too large: …`, `connect: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// From the request to its response's headers (or its failure).
    pub duration_ms: u64,
}

/// The requests of one attempt: the first [`MAX_RECORDED_CALLS`] in full,
/// and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HttpCalls {
    pub calls: Vec<HttpCall>,
    /// Every request made, recorded or not.
    pub total: u32,
}

impl HttpCalls {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Which jobs a bulk replay or cancel selects (every field narrows it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSelector {
    /// Replay: `dead` (the default), `completed` or `cancelled`. Cancel:
    /// one waiting or running state; every unfinished job when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only jobs created at or after this time.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<Timestamp>,
    /// Only jobs created before this time.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<Timestamp>,
    /// Only jobs whose error contains this text (case-sensitive, at most 200 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_contains: Option<String>,
}

/// A bulk replay or cancel (`POST /v1/jobs/replay`, `POST /v1/jobs/cancel`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    #[serde(default)]
    pub filter: JobSelector,
    /// Count what the filter matches; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Jobs to act on in this request, 1 to 1000 (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous request: continue below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What a bulk replay or cancel did, or on a dry run would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkOutcome {
    /// Dry run: how many jobs the filter matches (examining at most the
    /// newest 100,000 of the range; see `matched_is_lower_bound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<u64>,
    /// The count stopped at its bound: at least `matched` jobs match.
    #[serde(default)]
    pub matched_is_lower_bound: bool,
    /// The jobs this request replayed or cancelled (none on a dry run).
    pub jobs: Vec<uuid::Uuid>,
    /// Replay: the new jobs, in the order of `jobs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replays: Vec<uuid::Uuid>,
    /// More jobs may match: send the same request with this `cursor`.
    pub next_cursor: Option<String>,
}

/// A tenant's jobs at a glance (`GET /v1/overview`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    /// Jobs waiting or running, per state.
    pub live: std::collections::BTreeMap<String, u64>,
    /// When the oldest job still waiting became due (how far behind the queue is).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub oldest_due: Option<Timestamp>,
    /// The tenant's running attempts per host (hosts with none are not listed).
    pub running_by_host: std::collections::BTreeMap<String, u64>,
    /// Jobs finished in each of the last 60 minutes, oldest first.
    pub finished_per_minute: Vec<FinishedMinute>,
    /// The worker hosts alive (seen in the last 15 seconds), idle ones
    /// included, with the tenant's running attempts on each; a host running
    /// the tenant's attempts is listed even when it is not seen.
    #[serde(default)]
    pub hosts: Vec<HostAlive>,
}

/// A worker host and the tenant's attempts running on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostAlive {
    /// The id the host writes in leases and attempts.
    pub host_id: String,
    /// Attempts it runs at most at once, all tenants together (none when
    /// the host is not in the registry).
    pub concurrency: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    /// When it last said it was alive.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub seen_at: Option<Timestamp>,
    /// The tenant's attempts running on it now.
    pub running: u64,
}

/// The jobs that finished in one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishedMinute {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    pub completed: u64,
    pub dead: u64,
    pub cancelled: u64,
}

/// Dead jobs not yet replayed, grouped by plugin and error (`GET /v1/dead-letters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetters {
    /// The largest groups first (at most 100), made of the newest 10,000 such jobs.
    pub groups: Vec<DeadLetterGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterGroup {
    pub plugin: String,
    /// The error's first 200 characters.
    pub error: String,
    pub count: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub newest_at: Timestamp,
}
