//! The API's request and response types for jobs and errors. The server
//! answers with these very types (and builds its OpenAPI document from
//! them, with the `openapi` feature), so client and server cannot drift.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A point in time, in UTC.
pub type Timestamp = DateTime<Utc>;

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

/// The error shape every 4xx and 5xx answer has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `unknown_plugin`.
    pub code: String,
    /// A sentence naming the problem.
    pub message: String,
}
