//! Workflows: a definition's steps, its runs and each run's steps.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Timestamp;

/// One version of a workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workflow {
    pub name: String,
    pub version: u32,
    /// The definition's steps, with their defaults filled in.
    pub steps: Vec<StepSpec>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Where a run is (docs/api.md, "Workflows"; docs/workflows.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowRun {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: uuid::Uuid,
    pub workflow: String,
    pub workflow_version: u32,
    pub state: RunState,
    /// The run's input.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
    /// Why the run failed (the step and its error).
    pub error: Option<String>,
    /// The schedule that started the run, if one did.
    pub schedule: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
    /// In the definition's order.
    pub steps: Vec<StepRun>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepRun {
    pub name: String,
    pub plugin: String,
    /// The plugin version, pinned when the run started.
    pub version: u32,
    pub state: StepState,
    pub depends_on: Vec<String>,
    pub on_failure: OnFailure,
    /// The step's job (none for a fan-out step: see `items`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub job_id: Option<uuid::Uuid>,
    /// A fan-out step's element count, once it started.
    pub items: Option<u32>,
    /// Fan-out: element jobs created so far.
    pub items_started: u32,
    /// Fan-out: element jobs finished so far.
    pub items_done: u32,
    /// The job's result (a fan-out step: the array of its elements' results).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    pub error: Option<String>,
    /// For a step skipped because an upstream step failed: that step.
    pub skipped_by: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
}

/// A run in a listing: without its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: uuid::Uuid,
    pub workflow: String,
    pub workflow_version: u32,
    pub state: RunState,
    pub error: Option<String>,
    pub schedule: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique in the workflow: 1-63 characters of a-z, 0-9, `_` and `-`.
    pub name: String,
    /// The plugin the step's job runs.
    pub plugin: String,
    /// The plugin version; the latest when the run starts, when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The job's input. When none: the element (for `for_each`), else the run's input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input: Option<serde_json::Value>,
    /// Steps that must finish before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What the run does when this step fails.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// A JMESPath expression over `{input, steps}`: the step runs when it is
    /// truthy and is skipped otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A JMESPath expression over `{input, steps}` giving an array: one job
    /// per element; the step's result is the array of their results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// With `for_each`: element jobs running at once, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The queue of the step's jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The priority of the step's jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Overrides the plugin's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Overrides the plugin's wall-clock limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// What a failed step does to its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The run fails; every step not finished is cancelled.
    #[default]
    Halt,
    /// The step's dependents (and theirs) are skipped; the rest goes on.
    Skip,
    /// The step stays failed and its dependents still run; the run ends
    /// `partially_failed`.
    Continue,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowList {
    /// The latest version of each workflow, by name.
    pub workflows: Vec<Workflow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunList {
    /// Newest first, without their steps.
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
