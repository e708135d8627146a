//! What the store keeps of workflows and their runs (docs/workflows.md).
//! Each backend implements it in its `workflows.rs`, around the pure rules
//! of [`crate::workflow::engine`].

use async_trait::async_trait;

use super::StoreError;
use crate::model::Timestamp;
use crate::workflow::engine::{EvaluationNeeded, Evaluations, Plan, Snapshot};
use crate::workflow::{RunId, RunState, RunSummary, Workflow, WorkflowRun, WorkflowSpec};

/// Which runs a listing shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub state: Option<RunState>,
}

/// What cancelling a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunCancel {
    /// The run is `cancelled`; its unfinished jobs are cancelled (running ones
    /// are asked to stop).
    Cancelled,
    /// The run had already finished in this state.
    AlreadyFinished(RunState),
    NotFound,
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub workflow: &'a str,
    /// The latest when none.
    pub version: Option<u32>,
    /// JSON text.
    pub input: &'a str,
    /// The schedule starting it, if any.
    pub schedule: Option<&'a str>,
    /// The request's idempotency key: a retry answers the first run.
    pub key: Option<&'a crate::store::RequestKey>,
}

#[async_trait]
pub trait WorkflowStore {
    /// Store a new version of a workflow after checking that every step's
    /// plugin (and version) exists. When the latest version has the same
    /// definition, returns it with `false`.
    async fn workflow_insert(
        &self,
        tenant: &str,
        name: &str,
        spec: &WorkflowSpec,
        now: Timestamp,
    ) -> Result<(Workflow, bool), StoreError>;
    /// A version of a workflow; the latest when `version` is none.
    async fn workflow_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Workflow>, StoreError>;
    /// The latest version of each of a tenant's workflows, by name.
    async fn workflow_list(&self, tenant: &str) -> Result<Vec<Workflow>, StoreError>;
    /// Start a run: pin each step's plugin version, create the jobs of the
    /// steps with no dependencies, all in one transaction. False with the
    /// first run when the run's idempotency key was used by the same request
    /// before ([`StoreError::KeyReused`] when by a different one).
    async fn run_start(
        &self,
        tenant: &str,
        run: &NewRun<'_>,
        now: Timestamp,
    ) -> Result<(WorkflowRun, bool), StoreError>;
    async fn run_get(&self, tenant: &str, id: RunId) -> Result<Option<WorkflowRun>, StoreError>;
    /// A tenant's runs, newest first, filtered, after the cursor (a run id).
    async fn run_list(
        &self,
        tenant: &str,
        filter: &RunFilter,
        after: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<RunSummary>, StoreError>;
    /// Cancel a run and every unfinished step, running ones included.
    async fn run_cancel(
        &self,
        tenant: &str,
        id: RunId,
        now: Timestamp,
    ) -> Result<RunCancel, StoreError>;
    /// Runs that have waited for an evaluation since `since` or earlier,
    /// oldest first (their host may have crashed before evaluating them).
    async fn runs_awaiting_evaluation(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<RunId>, StoreError>;
    /// What a run waits to have evaluated, read without a lock or a write
    /// transaction; none when it is not marked as waiting (or is gone).
    async fn run_evaluations_needed(
        &self,
        id: RunId,
    ) -> Result<Option<Vec<EvaluationNeeded>>, StoreError>;
    /// Advance a run with evaluations made outside any transaction (see
    /// [`crate::worker::evaluator`]). True when it waits for more (a step
    /// these made ready has expressions of its own).
    async fn run_advance_evaluated(
        &self,
        id: RunId,
        evaluated: Evaluations,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// Checks on a run's input, the same for both backends, before anything is written.
pub fn validate_run_input(input: &str) -> Result<serde_json::Value, StoreError> {
    if let Some(why) = crate::model::input_refusal(input) {
        return Err(StoreError::Invalid(why));
    }
    serde_json::from_str(input)
        .map_err(|e| StoreError::Invalid(format!("input is not valid JSON: {e}")))
}

/// Stored JSON text read back.
pub(crate) fn json_value(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(format!("stored JSON does not parse: {e}")))
}

/// A stored definition read back.
pub(crate) fn spec_value(text: &str) -> Result<WorkflowSpec, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::corrupt(format!("stored workflow definition does not parse: {e}")))
}

/// Jobs that runs and ticks created in one transaction, per tenant: each
/// counts against its tenant's `enqueue_per_minute` like an enqueued job.
/// PostgreSQL adds them just before the commit, in tenant order, so that
/// two transactions touching the same tenants' rate rows never wait on
/// each other in a cycle (one that counted as it went could deadlock with
/// another finishing jobs of the same two tenants in the other order).
///
/// It also gathers the runs the transaction left waiting for an
/// evaluation, which the store announces after the commit
/// ([`super::StoreEvent::RunAwaitsEvaluation`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct JobCharges {
    jobs: std::collections::BTreeMap<String, u64>,
    awaiting: Vec<RunId>,
}

impl JobCharges {
    pub fn add(&mut self, tenant: &str, jobs: usize) {
        if jobs > 0 {
            *self.jobs.entry(tenant.to_string()).or_default() += jobs as u64;
        }
    }

    /// Jobs counted for `tenant` so far (not yet in its rate row).
    pub fn of(&self, tenant: &str) -> u64 {
        self.jobs.get(tenant).copied().unwrap_or(0)
    }

    /// (tenant, jobs), in tenant order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.jobs.iter().map(|(t, n)| (t.as_str(), *n))
    }

    /// Count a run's plan: its jobs, and whether it now waits for an evaluation.
    pub fn planned(&mut self, snapshot: &Snapshot, plan: &Plan) {
        self.add(&snapshot.tenant_id, plan.jobs.len());
        if plan.awaits_evaluation() {
            self.awaiting.push(snapshot.id);
        }
    }

    /// The runs to announce after the commit.
    pub fn awaiting(&self) -> &[RunId] {
        &self.awaiting
    }
}

/// No such workflow (or version) to run.
pub(crate) fn missing_workflow(run: &NewRun<'_>) -> StoreError {
    StoreError::NotFound(match run.version {
        Some(v) => format!("workflow `{}` has no version {v}", run.workflow),
        None => format!("workflow `{}` does not exist", run.workflow),
    })
}

/// The message for a step whose plugin (version) cannot be used.
pub(crate) fn unknown_step_plugin(step: &str, plugin: &str, version: Option<u32>) -> StoreError {
    StoreError::Invalid(match version {
        Some(v) => format!("step `{step}`: plugin `{plugin}` has no version {v}"),
        None => format!("step `{step}`: plugin `{plugin}` does not exist"),
    })
}

/// The run a key's first request started, when this is the same request
/// (written once over [`WorkflowStore::run_get`], for both backends).
pub(crate) async fn replayed_run(
    store: &(impl WorkflowStore + Sync + ?Sized),
    tenant: &str,
    key: &crate::store::RequestKey,
    stored: crate::store::request_keys::StoredKey,
) -> Result<(WorkflowRun, bool), StoreError> {
    let id = key.replay(stored)?.first().copied().ok_or_else(|| {
        StoreError::Conflict(
            "the idempotency key was first used by a request that started no run".into(),
        )
    })?;
    let run = store.run_get(tenant, id).await?.ok_or_else(|| {
        StoreError::Conflict(format!(
            "the run first started under this key, {id}, is gone"
        ))
    })?;
    Ok((run, false))
}
