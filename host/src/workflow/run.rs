//! Stored workflows and runs, as the store returns them and the API shows them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::definition::{OnFailure, StepSpec, WorkflowSpec};
use crate::model::{JobId, Timestamp};

/// A run's id: a UUIDv7, so ids sort by creation time.
pub type RunId = uuid::Uuid;

/// One version of a workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Workflow {
    pub name: String,
    pub version: u32,
    /// The definition's steps, with their defaults filled in.
    pub steps: Vec<StepSpec>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl Workflow {
    pub fn spec(&self) -> WorkflowSpec {
        WorkflowSpec {
            steps: self.steps.clone(),
        }
    }
}

/// Where a run is (docs/api.md, "Workflows"; docs/workflows.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Every step completed or was skipped by its `when`.
    Completed,
    /// A step with `on_failure: halt` failed; the rest was cancelled.
    Failed,
    /// A step with `on_failure: skip` or `continue` failed; the rest finished.
    PartiallyFailed,
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 5] = [
        RunState::Running,
        RunState::Completed,
        RunState::Failed,
        RunState::PartiallyFailed,
        RunState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Completed => "completed",
            RunState::Failed => "failed",
            RunState::PartiallyFailed => "partially_failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        self != RunState::Running
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one step of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Waiting for its dependencies.
    Pending,
    /// Its job (or its element jobs) exist and have not all finished.
    Running,
    Completed,
    /// Its job ended `dead` or `cancelled`, its `when` or `for_each` could
    /// not be evaluated, or one of its elements failed.
    Failed,
    /// Its `when` was false, or an upstream step with `on_failure: skip` failed.
    Skipped,
    /// The run was cancelled or halted before the step finished.
    Cancelled,
}

impl StepState {
    pub const ALL: [StepState; 6] = [
        StepState::Pending,
        StepState::Running,
        StepState::Completed,
        StepState::Failed,
        StepState::Skipped,
        StepState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Completed => "completed",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
            StepState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<StepState> {
        StepState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, StepState::Pending | StepState::Running)
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run with each of its steps.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkflowRun {
    #[schema(value_type = String, format = Uuid)]
    pub id: RunId,
    pub workflow: String,
    pub workflow_version: u32,
    pub state: RunState,
    /// The run's input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Why the run failed (the step and its error).
    pub error: Option<String>,
    /// The schedule that started the run, if one did.
    pub schedule: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// In the definition's order.
    pub steps: Vec<StepRun>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepRun {
    pub name: String,
    pub plugin: String,
    /// The plugin version, pinned when the run started.
    pub version: u32,
    pub state: StepState,
    pub depends_on: Vec<String>,
    pub on_failure: OnFailure,
    /// The step's job (none for a fan-out step: see `items`).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub job_id: Option<JobId>,
    /// A fan-out step's element count, once it started.
    pub items: Option<u32>,
    /// Fan-out: element jobs created so far.
    pub items_started: u32,
    /// Fan-out: element jobs finished so far.
    pub items_done: u32,
    /// The job's result (a fan-out step: the array of its elements' results).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<String>,
    /// For a step skipped because an upstream step failed: that step.
    pub skipped_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

/// A run in a listing: without its steps.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: RunId,
    pub workflow: String,
    pub workflow_version: u32,
    pub state: RunState,
    pub error: Option<String>,
    pub schedule: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}
