//! Workflows (DAGs of plugin steps) and cron schedules. The rules here are
//! pure: the store calls them inside its transactions, so SQL stays in
//! `store/`; the two loops that drive the store with them
//! ([`crate::worker::evaluator`], [`crate::worker::scheduler`]) live with
//! the worker's other loops.
//!
//! - [`definition`]: a workflow as a tenant writes it, and its validation;
//! - [`expression`]: `when` and `for_each` (JMESPath), bounded;
//! - [`run`]: stored workflows, runs and steps, and their states;
//! - [`engine`]: advancing a run when its jobs finish;
//! - [`diagram`]: a run as a Mermaid `graph TD`;
//! - [`schedule`]: cron schedules, their ticks in a time zone.

pub mod definition;
pub mod diagram;
pub mod engine;
pub mod expression;
pub mod run;
pub mod schedule;

pub use definition::{DefinitionError, OnFailure, StepSpec, WorkflowSpec};
pub use run::{RunId, RunState, RunSummary, StepRun, StepState, Workflow, WorkflowRun};
