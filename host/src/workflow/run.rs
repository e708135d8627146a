//! Stored workflows and runs, as the store returns them and the API shows them,
//! and a new run before it is stored.

use super::definition::WorkflowSpec;
use super::engine::{Evaluations, JobRoom, Snapshot, StepRow};
use crate::model::Timestamp;

/// A run's id: a UUIDv7, so ids sort by creation time.
pub type RunId = uuid::Uuid;

/// Workflows, runs and their steps as the store returns them are the API's
/// types.
pub use corral_client::api::{RunState, RunSummary, StepRun, StepState, Workflow, WorkflowRun};

/// What a loaded run is besides its engine snapshot.
#[derive(Debug, Clone)]
pub struct RunHead {
    pub workflow: String,
    pub workflow_version: u32,
    pub schedule: Option<String>,
    pub created_at: Timestamp,
}

/// A run as the API shows it.
pub fn run_view(head: RunHead, snapshot: &Snapshot) -> WorkflowRun {
    WorkflowRun {
        id: snapshot.id,
        workflow: head.workflow,
        workflow_version: head.workflow_version,
        state: snapshot.state,
        input: snapshot.input.clone(),
        error: snapshot.error.clone(),
        schedule: head.schedule,
        created_at: head.created_at,
        finished_at: snapshot.finished_at,
        steps: snapshot
            .spec
            .steps
            .iter()
            .zip(&snapshot.steps)
            .map(|(spec, row)| StepRun {
                name: spec.name.clone(),
                plugin: spec.plugin.clone(),
                version: row.plugin_version,
                state: row.state,
                depends_on: spec.depends_on.clone(),
                on_failure: spec.on_failure,
                job_id: row.job_id,
                items: row.item_count,
                items_started: row.items_started,
                items_done: row.items_done,
                result: row.result.clone(),
                error: row.error.clone(),
                skipped_by: row.skipped_by.clone(),
                started_at: row.started_at,
                finished_at: row.finished_at,
            })
            .collect(),
    }
}

/// The plugins (and versions) a run's steps name, once each, with the first
/// step naming each (for the message when it cannot be pinned).
pub fn plugins_to_pin(spec: &WorkflowSpec) -> Vec<(&str, &str, Option<u32>)> {
    let mut seen = std::collections::BTreeSet::new();
    spec.steps
        .iter()
        .filter(|s| seen.insert((s.plugin.as_str(), s.version)))
        .map(|s| (s.name.as_str(), s.plugin.as_str(), s.version))
        .collect()
}

/// The versions pinned for a run, by (plugin, version asked for).
pub type Pinned = std::collections::BTreeMap<(String, Option<u32>), u32>;

/// A new run's snapshot: every step pending, its plugin version pinned.
pub fn new_run(
    tenant: &str,
    input: serde_json::Value,
    workflow: &Workflow,
    pinned: &Pinned,
) -> Snapshot {
    Snapshot {
        id: uuid::Uuid::now_v7(),
        tenant_id: tenant.to_string(),
        state: RunState::Running,
        error: None,
        input,
        steps: workflow
            .steps
            .iter()
            .map(|s| {
                let version = pinned
                    .get(&(s.plugin.clone(), s.version))
                    .copied()
                    .unwrap_or_default();
                StepRow::pending(version)
            })
            .collect(),
        spec: WorkflowSpec::of(workflow),
        finished_at: None,
        job_bytes: 0,
        room: JobRoom::UNLIMITED,
        evaluated: Evaluations::new(),
        awaiting_since: None,
    }
}
