//! Stored workflows and runs, as the store returns them and the API shows them.

/// A run's id: a UUIDv7, so ids sort by creation time.
pub type RunId = uuid::Uuid;

/// Workflows, runs and their steps as the store returns them are the API's
/// types.
pub use corral_client::api::{RunState, RunSummary, StepRun, StepState, Workflow, WorkflowRun};
