//! Workflows (DAGs of plugin steps) and cron schedules. The rules here are
//! pure: the store calls them inside its transactions, so SQL stays in
//! `store/`; the two loops (`scheduler`, `evaluator`) drive the store.
//!
//! - [`definition`]: a workflow as a tenant writes it, and its validation;
//! - [`expression`]: `when` and `for_each` (JMESPath), bounded;
//! - [`run`]: stored workflows, runs and steps, and their states;
//! - [`engine`]: advancing a run when its jobs finish;
//! - [`evaluator`]: the loop that evaluates expressions outside transactions;
//! - [`diagram`]: a run as a Mermaid `graph TD`;
//! - [`schedule`]: cron schedules, their ticks in a time zone;
//! - [`scheduler`]: the loop that fires due schedules.

pub mod definition;
pub mod diagram;
pub mod engine;
pub mod evaluator;
pub mod expression;
pub mod run;
pub mod schedule;
pub mod scheduler;

pub use definition::{DefinitionError, OnFailure, StepSpec, WorkflowSpec};
pub use run::{RunId, RunState, RunSummary, StepRun, StepState, Workflow, WorkflowRun};
