//! Advancing a run: given its steps as stored and the step jobs that just
//! finished, decide what happens next. Pure: the store loads a [`Snapshot`]
//! under the run's lock, calls [`advance`] (or [`cancel`]), and writes back
//! the changed steps, the new jobs and the run's state in the same
//! transaction, so a crash can never lose or duplicate a step.
//!
//! The rules (docs/workflows.md):
//! - a step starts when every dependency is finished; if one of them failed
//!   with `on_failure: skip` (or was skipped because of such a failure), the
//!   step is skipped too; a step skipped by its `when` does not block its
//!   dependents (they see no result for it);
//! - a step's `when` is evaluated when it is ready; false skips it;
//! - a `for_each` step runs one job per element, at most `max_parallel` at
//!   once, and completes with the array of their results in order; its first
//!   failed element fails the step (no further element starts, the running
//!   ones are cancelled);
//! - a failed step with `halt` fails the run and cancels every unfinished
//!   step; with `skip` or `continue` the run goes on and ends
//!   `partially_failed`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::definition::{MAX_FAN_OUT_ITEMS, OnFailure, StepSpec, WorkflowSpec};
use super::expression;
use super::run::{RunId, RunState, StepState};
use crate::model::{JobId, JobState, MAX_INPUT_BYTES, Timestamp};

/// Bytes of one step job's context (the run input and upstream results).
/// Protects the database (the context is stored with each job) and the
/// guest's memory; a step whose context would be larger fails, named.
pub const MAX_CONTEXT_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of a fan-out step's result (its elements' results together). The
/// store sums their sizes before it loads them, so 10,000 elements of 1 MiB
/// each cannot make a host load 10 GB; a larger result could not be handed
/// to a dependent's context anyway.
pub const MAX_FAN_OUT_RESULT_BYTES: usize = MAX_CONTEXT_BYTES;
/// Bytes of job input and context one run may create in all: each step job
/// stores both, and a fan-out reserves its elements' share when it starts
/// (before any element job is built). A run is admitted as one job, so
/// without this 10,000 elements of a 1 MiB static input would make one
/// transaction build and store 10 GB.
pub const MAX_RUN_JOB_BYTES: u64 = 256 * 1024 * 1024;

/// What a tenant may still queue, read by the store with the run. Step jobs
/// count against the tenant's enqueue quotas like any other job (the store
/// adds them to its `enqueue_per_minute`), and a fan-out never starts more
/// elements at once than these allow: the run's step fails, naming the
/// quota, instead of queueing past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRoom {
    pub max_queued_jobs: u64,
    pub enqueue_per_minute: u64,
    /// Jobs already counted against `enqueue_per_minute` this minute.
    pub enqueued_this_minute: u64,
}

impl JobRoom {
    /// No quota (a run being read, not advanced).
    pub const UNLIMITED: JobRoom = JobRoom {
        max_queued_jobs: u64::MAX,
        enqueue_per_minute: u64::MAX,
        enqueued_this_minute: 0,
    };

    /// Jobs the tenant's `enqueue_per_minute` still allows this minute.
    pub fn rate_left(&self) -> u64 {
        self.enqueue_per_minute
            .saturating_sub(self.enqueued_this_minute)
    }

    /// Why `jobs` more jobs may not be queued at once, if they may not.
    pub fn refusal(&self, jobs: u64) -> Option<String> {
        if jobs > self.max_queued_jobs {
            return Some(format!(
                "it would queue {jobs} jobs at once, more than the tenant's max_queued_jobs of {}; set max_parallel",
                self.max_queued_jobs
            ));
        }
        let left = self.rate_left();
        (jobs > left).then(|| {
            format!(
                "it would queue {jobs} jobs at once; {left} remain of the tenant's enqueue_per_minute of {} this minute; set max_parallel lower or start the run later",
                self.enqueue_per_minute
            )
        })
    }
}

/// A run as stored, loaded under its lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: RunId,
    pub tenant_id: String,
    pub state: RunState,
    pub error: Option<String>,
    pub input: Value,
    pub spec: WorkflowSpec,
    /// One per step of `spec`, in the same order.
    pub steps: Vec<StepRow>,
    pub finished_at: Option<Timestamp>,
    /// Bytes of job input and context the run has created or reserved
    /// (bounded by [`MAX_RUN_JOB_BYTES`]); the store writes it back when the
    /// plan has jobs.
    pub job_bytes: u64,
    /// What the tenant may still queue (the store reads it before
    /// [`advance`]; the engine counts the jobs it plans against it).
    pub room: JobRoom,
    /// The `when` and `for_each` results of ready steps, evaluated outside
    /// any transaction (see [`evaluate`]); a ready step with an expression
    /// and no entry here waits, named in [`Plan::evaluate`].
    pub evaluated: Evaluations,
    /// Since when the run has waited for an evaluation (stored, so that a
    /// host that crashed before evaluating is found by another).
    pub awaiting_since: Option<Timestamp>,
}

/// A ready step whose `when` or `for_each` must be evaluated before it can
/// start: the expressions and the data they see.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationNeeded {
    pub step: usize,
    pub when: Option<String>,
    pub for_each: Option<String>,
    /// `{"input": <run input>, "steps": {<upstream step>: <result>}}`.
    pub data: Value,
}

/// What a ready step's expressions gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The `when`, if the step has one (a false one skips the step, and
    /// its `for_each` is not evaluated).
    pub when: Option<Result<bool, String>>,
    /// The elements of its `for_each`, if it has one and is not skipped.
    pub items: Option<Result<Vec<Value>, String>>,
}

/// Evaluations by step position. A ready step's data never changes (the
/// run input and the results of finished steps are final), so an
/// evaluation made before a transaction is still right inside it.
pub type Evaluations = BTreeMap<usize, Evaluated>;

/// Evaluate what [`Plan::evaluate`] asked for. Each expression is bounded by
/// [`expression::MAX_EVALUATION_COST`]; callers run this with no store
/// transaction open (and off the async threads), so a tenant's costly
/// expression holds no lock and no writer another tenant needs.
pub fn evaluate(needed: &[EvaluationNeeded]) -> Evaluations {
    needed
        .iter()
        .map(|need| {
            let data = expression::data(&need.data);
            let when = need.when.as_ref().map(|when| {
                data.as_ref()
                    .map_err(Clone::clone)
                    .and_then(|data| expression::is_true(when, data))
                    .map_err(|e| format!("when: {e}"))
            });
            let skipped = matches!(when, Some(Ok(false)) | Some(Err(_)));
            let items = need.for_each.as_ref().filter(|_| !skipped).map(|for_each| {
                data.as_ref()
                    .map_err(Clone::clone)
                    .and_then(|data| expression::elements(for_each, data))
                    .map_err(|e| format!("for_each: {e}"))
            });
            (need.step, Evaluated { when, items })
        })
        .collect()
}

/// One step of a run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub state: StepState,
    pub plugin_version: u32,
    pub job_id: Option<JobId>,
    /// A completed step's result.
    pub result: Option<Value>,
    pub error: Option<String>,
    pub skipped_by: Option<String>,
    /// A fan-out step's elements, all of them: only while the step starts
    /// (the store keeps them in the step's row).
    pub items: Option<Vec<Value>>,
    /// Elements the store loaded (by index) for the elements about to start
    /// as others finish (see [`elements_to_load`]): a throttled fan-out never
    /// reads its whole array back.
    pub next_items: BTreeMap<u32, Value>,
    pub item_count: Option<u32>,
    pub items_started: u32,
    pub items_done: u32,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// A fan-out step whose last element is among the finished jobs: its
    /// elements' results in order, gathered by the store (see [`to_gather`]),
    /// or why they could not be (too large).
    pub gathered: Option<Result<Vec<Value>, String>>,
    /// Set by the engine on every step it changes: the store writes these.
    pub changed: bool,
}

impl StepRow {
    /// A step of a new run.
    pub fn pending(plugin_version: u32) -> StepRow {
        StepRow {
            state: StepState::Pending,
            plugin_version,
            job_id: None,
            result: None,
            error: None,
            skipped_by: None,
            items: None,
            next_items: BTreeMap::new(),
            item_count: None,
            items_started: 0,
            items_done: 0,
            started_at: None,
            finished_at: None,
            gathered: None,
            changed: true,
        }
    }
}

/// A step's job that reached a terminal state.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDone {
    pub job_id: JobId,
    pub step: String,
    /// The element, for a fan-out step.
    pub item: Option<u32>,
    pub state: JobState,
    pub result: Option<Value>,
    pub error: Option<String>,
}

/// A job to create for a step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepJob {
    pub id: JobId,
    /// The step's position in the definition.
    pub step: usize,
    pub item: Option<u32>,
    /// JSON text.
    pub input: String,
    /// JSON text (`job.context`).
    pub context: String,
}

/// Which unfinished jobs of the run to cancel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CancelJobs {
    #[default]
    None,
    /// The element jobs of these fan-out steps (one of their elements failed).
    Steps(Vec<String>),
    /// Every unfinished job of the run (halted or cancelled).
    All,
}

/// What the store must write after [`advance`] or [`cancel`], besides the
/// steps marked `changed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub jobs: Vec<StepJob>,
    pub cancel: CancelJobs,
    /// The run reached this terminal state.
    pub finished: Option<RunState>,
    /// Ready steps waiting for their expressions: the store marks the run
    /// (`awaiting_since`) and, after its commit, these are evaluated and
    /// the run advanced again with [`Snapshot::evaluated`].
    pub evaluate: Vec<EvaluationNeeded>,
}

impl Plan {
    /// Whether the run waits for an evaluation after this plan.
    pub fn awaits_evaluation(&self) -> bool {
        !self.evaluate.is_empty()
    }
}

/// The fan-out steps whose last element is among `done`: the store gathers
/// their elements' results (from the jobs, in this transaction) into
/// [`StepRow::gathered`] before calling [`advance`].
pub fn to_gather(snapshot: &Snapshot, done: &[JobDone]) -> Vec<usize> {
    let at = snapshot.spec.positions();
    let mut completed: BTreeMap<usize, u32> = BTreeMap::new();
    for d in done {
        if d.item.is_some()
            && d.state == JobState::Completed
            && let Some(&i) = at.get(d.step.as_str())
        {
            *completed.entry(i).or_default() += 1;
        }
    }
    completed
        .into_iter()
        .filter(|(i, n)| {
            let step = &snapshot.steps[*i];
            step.state == StepState::Running
                && step.item_count == Some(step.items_done + n)
                && !done.iter().any(|d| {
                    d.step == snapshot.spec.steps[*i].name && d.state != JobState::Completed
                })
        })
        .map(|(i, _)| i)
        .collect()
}

/// The elements of throttled fan-out steps (`max_parallel` below their
/// count) that the finished element jobs in `done` will start: for each
/// step, the next one per finished element. The store loads them into
/// [`StepRow::next_items`] before calling [`advance`].
pub fn elements_to_load(
    snapshot: &Snapshot,
    done: &[JobDone],
) -> Vec<(usize, std::ops::Range<u32>)> {
    let at = snapshot.spec.positions();
    let mut finished: BTreeMap<usize, u32> = BTreeMap::new();
    for d in done {
        if d.item.is_some()
            && d.state == JobState::Completed
            && let Some(&i) = at.get(d.step.as_str())
        {
            *finished.entry(i).or_default() += 1;
        }
    }
    finished
        .into_iter()
        .filter_map(|(i, n)| {
            let step = &snapshot.steps[i];
            let count = step.item_count?;
            (step.state == StepState::Running && step.items_started < count)
                .then(|| (i, step.items_started..count.min(step.items_started + n)))
        })
        .collect()
}

/// Start a new run, or go on after some of its jobs finished.
pub fn advance(snapshot: &mut Snapshot, done: &[JobDone], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    if snapshot.state != RunState::Running {
        // A cancelled or halted run: its jobs finishing later change nothing.
        return plan;
    }
    let at: BTreeMap<String, usize> = snapshot
        .spec
        .positions()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for d in done {
        let Some(&i) = at.get(&d.step) else { continue };
        if snapshot.steps[i].state != StepState::Running {
            continue;
        }
        let outcome = match (d.item, d.state) {
            (None, JobState::Completed) => Some(Ok(d.result.clone().unwrap_or(Value::Null))),
            (None, _) => Some(Err(job_error(d))),
            (Some(_), JobState::Completed) => element_completed(snapshot, i, &mut plan),
            (Some(item), _) => {
                plan_cancel_step(&mut plan, &snapshot.spec.steps[i].name);
                Some(Err(format!("element {item}: {}", job_error(d))))
            }
        };
        let halted = match outcome {
            None => false,
            Some(Ok(result)) => {
                complete(&mut snapshot.steps[i], result, now);
                false
            }
            Some(Err(error)) => fail(snapshot, i, error, now, &mut plan),
        };
        if halted {
            return plan;
        }
    }
    if start_ready(snapshot, now, &mut plan) {
        return plan;
    }
    if snapshot.steps.iter().all(|s| s.state.is_terminal()) {
        let failed = snapshot.steps.iter().any(|s| s.state == StepState::Failed);
        finish(
            snapshot,
            if failed {
                RunState::PartiallyFailed
            } else {
                RunState::Completed
            },
            None,
            now,
            &mut plan,
        );
    }
    plan
}

/// What a run as stored waits to have evaluated: the evaluations that
/// advancing a copy of it with nothing new would ask for. The store reads
/// the run without a lock for this; under the lock, [`advance`] uses an
/// evaluation only for a step still ready, so a stale read costs nothing.
/// None when the run is not marked as waiting.
pub fn evaluations_needed(mut snapshot: Snapshot, now: Timestamp) -> Option<Vec<EvaluationNeeded>> {
    snapshot.awaiting_since?;
    snapshot.room = JobRoom::UNLIMITED;
    snapshot.evaluated.clear();
    Some(advance(&mut snapshot, &[], now).evaluate)
}

/// Cancel a running run: every unfinished step is cancelled, with its jobs.
/// False when the run had already finished.
pub fn cancel(snapshot: &mut Snapshot, now: Timestamp) -> Option<Plan> {
    if snapshot.state != RunState::Running {
        return None;
    }
    let mut plan = Plan::default();
    finish(snapshot, RunState::Cancelled, None, now, &mut plan);
    Some(plan)
}

fn job_error(d: &JobDone) -> String {
    let what = match d.state {
        JobState::Cancelled => "its job was cancelled",
        _ => "its job ended dead",
    };
    match &d.error {
        Some(error) => format!("{what}: {error}"),
        None => what.to_string(),
    }
}

fn plan_cancel_step(plan: &mut Plan, step: &str) {
    match &mut plan.cancel {
        CancelJobs::None => plan.cancel = CancelJobs::Steps(vec![step.to_string()]),
        CancelJobs::Steps(steps) => steps.push(step.to_string()),
        CancelJobs::All => {}
    }
}

/// One element of a fan-out step completed: start the next element, or
/// complete the step with every element's result when it was the last.
fn element_completed(
    snapshot: &mut Snapshot,
    i: usize,
    plan: &mut Plan,
) -> Option<Result<Value, String>> {
    let step = &mut snapshot.steps[i];
    step.items_done += 1;
    step.changed = true;
    let count = step.item_count.unwrap_or(0);
    if step.items_done >= count {
        return Some(match step.gathered.take() {
            Some(Ok(results)) => Ok(Value::Array(results)),
            Some(Err(error)) => Err(error),
            None => Err("the elements' results were not gathered".into()),
        });
    }
    if step.items_started < count {
        let item = step.items_started;
        if let Err(e) = start_element(snapshot, i, item, plan) {
            return Some(Err(e));
        }
    }
    None
}

fn complete(step: &mut StepRow, result: Value, now: Timestamp) {
    step.state = StepState::Completed;
    step.result = Some(result);
    step.items = None;
    step.finished_at = Some(now);
    step.changed = true;
}

/// Fail step `i` and apply its policy. True when the run was halted.
fn fail(snapshot: &mut Snapshot, i: usize, error: String, now: Timestamp, plan: &mut Plan) -> bool {
    let step = &mut snapshot.steps[i];
    step.state = StepState::Failed;
    step.error = Some(error.clone());
    step.items = None;
    step.finished_at = Some(now);
    step.started_at.get_or_insert(now);
    step.changed = true;
    let spec = &snapshot.spec.steps[i];
    if spec.on_failure == OnFailure::Halt {
        let why = format!("step `{}` failed: {error}", spec.name);
        finish(snapshot, RunState::Failed, Some(why), now, plan);
        return true;
    }
    false
}

/// End the run. A failed or cancelled run cancels every unfinished step.
fn finish(
    snapshot: &mut Snapshot,
    state: RunState,
    error: Option<String>,
    now: Timestamp,
    plan: &mut Plan,
) {
    if matches!(state, RunState::Failed | RunState::Cancelled) {
        for step in &mut snapshot.steps {
            if !step.state.is_terminal() {
                step.state = StepState::Cancelled;
                step.items = None;
                step.finished_at = Some(now);
                step.changed = true;
            }
        }
        plan.cancel = CancelJobs::All;
    }
    snapshot.state = state;
    snapshot.error = error;
    snapshot.finished_at = Some(now);
    plan.finished = Some(state);
}

/// Start (or skip) every pending step whose dependencies have finished,
/// until nothing changes (skips cascade). True when the run was halted.
fn start_ready(snapshot: &mut Snapshot, now: Timestamp, plan: &mut Plan) -> bool {
    loop {
        let mut moved = false;
        for i in 0..snapshot.steps.len() {
            if snapshot.steps[i].state != StepState::Pending {
                continue;
            }
            match readiness(snapshot, i) {
                Readiness::Waiting => continue,
                Readiness::SkippedBy(failed) => {
                    let step = &mut snapshot.steps[i];
                    step.state = StepState::Skipped;
                    step.error = Some(format!("upstream step `{failed}` failed"));
                    step.skipped_by = Some(failed);
                    step.finished_at = Some(now);
                    step.changed = true;
                }
                Readiness::Ready => match start(snapshot, i, now, plan) {
                    Ok(Started::Waiting) => continue,
                    Ok(Started::Moved) => {}
                    Err(error) => {
                        if fail(snapshot, i, error, now, plan) {
                            return true;
                        }
                    }
                },
            }
            moved = true;
        }
        if !moved {
            return false;
        }
    }
}

enum Readiness {
    Waiting,
    Ready,
    /// Skipped because this failed step (with `on_failure: skip`) is upstream.
    SkippedBy(String),
}

fn readiness(snapshot: &Snapshot, i: usize) -> Readiness {
    let at = snapshot.spec.positions();
    let mut skipped_by = None;
    for dep in &snapshot.spec.steps[i].depends_on {
        let d = at[dep.as_str()];
        let row = &snapshot.steps[d];
        if !row.state.is_terminal() {
            return Readiness::Waiting;
        }
        if skipped_by.is_none() {
            if row.state == StepState::Failed
                && snapshot.spec.steps[d].on_failure == OnFailure::Skip
            {
                skipped_by = Some(dep.clone());
            } else if row.state == StepState::Skipped {
                skipped_by = row.skipped_by.clone();
            }
        }
    }
    match skipped_by {
        Some(failed) => Readiness::SkippedBy(failed),
        None => Readiness::Ready,
    }
}

/// The results of every completed step upstream of `i` (transitively), by name.
fn upstream_results(snapshot: &Snapshot, i: usize) -> serde_json::Map<String, Value> {
    let at = snapshot.spec.positions();
    let mut seen = vec![false; snapshot.steps.len()];
    let mut stack: Vec<usize> = vec![i];
    let mut results = serde_json::Map::new();
    while let Some(n) = stack.pop() {
        for dep in &snapshot.spec.steps[n].depends_on {
            let d = at[dep.as_str()];
            if seen[d] {
                continue;
            }
            seen[d] = true;
            stack.push(d);
            if let (StepState::Completed, Some(result)) =
                (snapshot.steps[d].state, &snapshot.steps[d].result)
            {
                results.insert(dep.clone(), result.clone());
            }
        }
    }
    results
}

/// What [`start`] did with a ready step.
enum Started {
    /// Started, skipped or completed (an empty fan-out).
    Moved,
    /// Its expressions are not evaluated yet ([`Plan::evaluate`]).
    Waiting,
}

/// A ready step: apply its evaluated `when` (or ask for the evaluation),
/// then create its job or its first element jobs. An error fails the step.
fn start(
    snapshot: &mut Snapshot,
    i: usize,
    now: Timestamp,
    plan: &mut Plan,
) -> Result<Started, String> {
    let spec: &StepSpec = &snapshot.spec.steps[i];
    let view = json!({"input": snapshot.input, "steps": upstream_results(snapshot, i)});
    let mut evaluated = Evaluated {
        when: None,
        items: None,
    };
    if spec.when.is_some() || spec.for_each.is_some() {
        match snapshot.evaluated.remove(&i) {
            Some(found) => evaluated = found,
            None => {
                // `start_ready` passes over a waiting step again when
                // another step moved: ask once.
                if !plan.evaluate.iter().any(|e| e.step == i) {
                    plan.evaluate.push(EvaluationNeeded {
                        step: i,
                        when: spec.when.clone(),
                        for_each: spec.for_each.clone(),
                        data: view,
                    });
                }
                return Ok(Started::Waiting);
            }
        }
    }
    if let Some(when) = &spec.when
        && !evaluated
            .when
            .take()
            .ok_or("when: the expression was not evaluated")??
    {
        let step = &mut snapshot.steps[i];
        step.state = StepState::Skipped;
        step.error = Some(format!("`when` was false: {when}"));
        step.finished_at = Some(now);
        step.changed = true;
        return Ok(Started::Moved);
    }
    let step = &mut snapshot.steps[i];
    step.state = StepState::Running;
    step.started_at = Some(now);
    step.changed = true;
    if snapshot.spec.steps[i].for_each.is_none() {
        let job = step_job(snapshot, i, &view, None)?;
        let bytes = (job.input.len() + job.context.len()) as u64;
        reserve(snapshot, bytes, || "its job would store".into())?;
        snapshot.steps[i].job_id = Some(job.id);
        push_job(snapshot, plan, job);
        return Ok(Started::Moved);
    }
    let items = evaluated
        .items
        .take()
        .ok_or("for_each: the expression was not evaluated")??;
    if items.len() > MAX_FAN_OUT_ITEMS {
        return Err(format!(
            "for_each gave {} elements; the limit is {MAX_FAN_OUT_ITEMS}",
            items.len()
        ));
    }
    let count = items.len() as u32;
    let parallel = snapshot.spec.steps[i]
        .max_parallel
        .unwrap_or(count)
        .min(count);
    if let Some(why) = snapshot.room.refusal(u64::from(parallel)) {
        return Err(format!("for_each: {why}"));
    }
    let bytes = fan_out_bytes(snapshot, i, &view, &items);
    reserve(snapshot, bytes, || {
        format!("for_each: its {count} element jobs would store")
    })?;
    let step = &mut snapshot.steps[i];
    step.item_count = Some(count);
    if count == 0 {
        complete(step, Value::Array(Vec::new()), now);
        return Ok(Started::Moved);
    }
    step.items = Some(items);
    for item in 0..parallel {
        start_element(snapshot, i, item, plan)?;
    }
    Ok(Started::Moved)
}

/// Create the job of element `item` of fan-out step `i`.
fn start_element(
    snapshot: &mut Snapshot,
    i: usize,
    item: u32,
    plan: &mut Plan,
) -> Result<(), String> {
    let step = &snapshot.steps[i];
    let element = step
        .items
        .as_ref()
        .and_then(|items| items.get(item as usize))
        .or_else(|| step.next_items.get(&item))
        .cloned()
        .ok_or_else(|| format!("element {item} of the step's for_each is missing"))?;
    let view = json!({"input": snapshot.input, "steps": upstream_results(snapshot, i)});
    let job = step_job(snapshot, i, &view, Some((item, element)))?;
    let step = &mut snapshot.steps[i];
    step.items_started = step.items_started.max(item + 1);
    step.changed = true;
    push_job(snapshot, plan, job);
    Ok(())
}

fn push_job(snapshot: &mut Snapshot, plan: &mut Plan, job: StepJob) {
    snapshot.room.enqueued_this_minute = snapshot.room.enqueued_this_minute.saturating_add(1);
    plan.jobs.push(job);
}

/// Count `bytes` more of job input and context against the run's
/// [`MAX_RUN_JOB_BYTES`]; `what` says what would store them.
fn reserve(
    snapshot: &mut Snapshot,
    bytes: u64,
    what: impl FnOnce() -> String,
) -> Result<(), String> {
    let total = snapshot.job_bytes.saturating_add(bytes);
    if total > MAX_RUN_JOB_BYTES {
        return Err(format!(
            "{} {bytes} bytes of input and context; the run has stored {} and may store at most {MAX_RUN_JOB_BYTES} (MAX_RUN_JOB_BYTES)",
            what(),
            snapshot.job_bytes
        ));
    }
    snapshot.job_bytes = total;
    Ok(())
}

/// The bytes of input and context the element jobs of fan-out step `i`
/// will store, computed before any is built: each stores the context (the
/// view with its element and index) and its input (the step's static
/// input, or its element).
fn fan_out_bytes(snapshot: &Snapshot, i: usize, view: &Value, items: &[Value]) -> u64 {
    /// `,"item":` and `,"index":4294967295` around an element in a context.
    const ELEMENT_FRAME: u64 = 30;
    let view_bytes = view.to_string().len() as u64;
    let static_input = snapshot.spec.steps[i]
        .input
        .as_ref()
        .map(|input| input.to_string().len() as u64);
    items
        .iter()
        .map(|element| {
            let element = element.to_string().len() as u64;
            view_bytes + ELEMENT_FRAME + element + static_input.unwrap_or(element)
        })
        .fold(0u64, u64::saturating_add)
}

/// The job of step `i` (of one of its elements): its input and context.
fn step_job(
    snapshot: &Snapshot,
    i: usize,
    view: &Value,
    element: Option<(u32, Value)>,
) -> Result<StepJob, String> {
    let spec = &snapshot.spec.steps[i];
    let item = element.as_ref().map(|(item, _)| *item);
    let mut context = view.clone();
    let input = match (&spec.input, &element) {
        (Some(input), _) => input.to_string(),
        (None, Some((_, element))) => element.to_string(),
        (None, None) => snapshot.input.to_string(),
    };
    if let Some((item, element)) = element {
        context["item"] = element;
        context["index"] = json!(item);
    }
    let context = context.to_string();
    if input.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "its input would be {} bytes; the limit is {MAX_INPUT_BYTES}",
            input.len()
        ));
    }
    if context.len() > MAX_CONTEXT_BYTES {
        return Err(format!(
            "its context (the run input and upstream results) would be {} bytes; the limit is {MAX_CONTEXT_BYTES}",
            context.len()
        ));
    }
    Ok(StepJob {
        id: uuid::Uuid::now_v7(),
        step: i,
        item,
        input,
        context,
    })
}

/// Why a fan-out step's gathered results (`bytes` of them) cannot be its result.
pub fn too_large(bytes: Option<i64>) -> Option<String> {
    let bytes = bytes.unwrap_or(0);
    (bytes > MAX_FAN_OUT_RESULT_BYTES as i64).then(|| {
        format!(
            "the elements' results add up to {bytes} bytes; a step's result is at most {MAX_FAN_OUT_RESULT_BYTES}"
        )
    })
}

/// The `evaluate_since` to store after `plan`, when it changes: since now
/// for a run that starts waiting, none for one that stops.
pub fn evaluate_since(
    snapshot: &Snapshot,
    plan: &Plan,
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    match (plan.awaits_evaluation(), snapshot.awaiting_since) {
        (true, None) => Some(Some(now)),
        (false, Some(_)) => Some(None),
        _ => None,
    }
}

/// The jobs the engine planned, with their steps' options.
pub fn step_jobs(snapshot: &Snapshot, plan: &Plan) -> Vec<crate::model::PinnedJob> {
    plan.jobs
        .iter()
        .map(|job| {
            let step = &snapshot.spec.steps[job.step];
            crate::model::PinnedJob {
                id: job.id,
                plugin: step.plugin.clone(),
                version: snapshot.steps[job.step].plugin_version,
                queue: step
                    .queue
                    .clone()
                    .unwrap_or_else(crate::model::default_queue),
                priority: step.priority.unwrap_or(0),
                input: job.input.clone(),
                max_attempts: step.max_attempts,
                timeout_ms: step.timeout_ms,
                run: Some(snapshot.id),
                step: Some(step.name.clone()),
                item: job.item,
                context: Some(job.context.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(steps: Value, input: Value) -> Snapshot {
        let spec: WorkflowSpec = serde_json::from_value(json!({ "steps": steps })).unwrap();
        spec.validate().unwrap();
        Snapshot {
            id: uuid::Uuid::now_v7(),
            tenant_id: "acme".into(),
            state: RunState::Running,
            error: None,
            input,
            steps: spec.steps.iter().map(|_| StepRow::pending(1)).collect(),
            spec,
            finished_at: None,
            job_bytes: 0,
            room: JobRoom::UNLIMITED,
            evaluated: Evaluations::new(),
            awaiting_since: None,
        }
    }

    fn now() -> Timestamp {
        chrono::Utc::now()
    }

    /// [`advance`], then evaluate what it waits for and advance again, as
    /// the store and its evaluator do, merging the plans.
    fn advance_all(s: &mut Snapshot, done: &[JobDone], now: Timestamp) -> Plan {
        let mut plan = advance(s, done, now);
        while plan.awaits_evaluation() {
            s.evaluated = evaluate(&plan.evaluate);
            let next = advance(s, &[], now);
            plan.jobs.extend(next.jobs);
            if next.cancel != CancelJobs::None {
                plan.cancel = next.cancel;
            }
            plan.finished = next.finished.or(plan.finished);
            plan.evaluate = next.evaluate;
        }
        plan
    }

    #[test]
    fn expressions_wait_for_an_evaluation_outside_the_advance() {
        let mut s = snapshot(
            json!([
                {"name": "plain", "plugin": "echo"},
                {"name": "gated", "plugin": "echo", "when": "input.go"},
                {"name": "each", "plugin": "echo", "for_each": "input.items"},
            ]),
            json!({"go": true, "items": [1, 2]}),
        );
        let plan = advance(&mut s, &[], now());
        assert_eq!(names(&s, &plan), ["plain"], "no expression is evaluated");
        let asked: Vec<usize> = plan.evaluate.iter().map(|e| e.step).collect();
        assert_eq!(asked, [1, 2]);
        assert_eq!(
            plan.evaluate[0].data,
            json!({"input": s.input, "steps": {}})
        );
        assert_eq!(states(&s), ["running", "pending", "pending"]);
        s.evaluated = evaluate(&plan.evaluate);
        let plan = advance(&mut s, &[], now());
        assert!(!plan.awaits_evaluation());
        assert_eq!(names(&s, &plan), ["gated", "each", "each"]);
        assert!(s.evaluated.is_empty(), "each evaluation is used once");
    }

    fn done(plan_job: &StepJob, s: &Snapshot, state: JobState, result: Value) -> JobDone {
        JobDone {
            job_id: plan_job.id,
            step: s.spec.steps[plan_job.step].name.clone(),
            item: plan_job.item,
            state,
            result: (state == JobState::Completed).then_some(result),
            error: (state != JobState::Completed).then(|| "boom".to_string()),
        }
    }

    fn states(s: &Snapshot) -> Vec<&'static str> {
        s.steps.iter().map(|r| r.state.as_str()).collect()
    }

    fn names(s: &Snapshot, plan: &Plan) -> Vec<String> {
        plan.jobs
            .iter()
            .map(|j| s.spec.steps[j.step].name.clone())
            .collect()
    }

    #[test]
    fn a_diamond_passes_results_downstream() {
        let mut s = snapshot(
            json!([
                {"name": "a", "plugin": "echo"},
                {"name": "b", "plugin": "echo", "depends_on": ["a"]},
                {"name": "c", "plugin": "echo", "depends_on": ["a"], "input": {"fixed": 1}},
                {"name": "d", "plugin": "echo", "depends_on": ["b", "c"]},
            ]),
            json!({"n": 1}),
        );
        let plan = advance_all(&mut s, &[], now());
        assert_eq!(names(&s, &plan), ["a"]);
        assert_eq!(plan.jobs[0].input, r#"{"n":1}"#);
        let a = plan.jobs[0].clone();
        let plan = {
            let d = [done(&a, &s, JobState::Completed, json!("A"))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(names(&s, &plan), ["b", "c"]);
        assert_eq!(plan.jobs[1].input, r#"{"fixed":1}"#);
        let context: Value = serde_json::from_str(&plan.jobs[0].context).unwrap();
        assert_eq!(context, json!({"input": {"n": 1}, "steps": {"a": "A"}}));
        let (b, c) = (plan.jobs[0].clone(), plan.jobs[1].clone());
        let plan = {
            let d = [done(&b, &s, JobState::Completed, json!("B"))];
            advance_all(&mut s, &d, now())
        };
        assert!(plan.jobs.is_empty(), "d waits for c");
        let plan = {
            let d = [done(&c, &s, JobState::Completed, json!("C"))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(names(&s, &plan), ["d"]);
        let context: Value = serde_json::from_str(&plan.jobs[0].context).unwrap();
        assert_eq!(context["steps"], json!({"a": "A", "b": "B", "c": "C"}));
        let d = plan.jobs[0].clone();
        let plan = {
            let d = [done(&d, &s, JobState::Completed, json!("D"))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(plan.finished, Some(RunState::Completed));
        assert_eq!(states(&s), ["completed"; 4]);
    }

    #[test]
    fn halt_fails_the_run_and_cancels_the_rest() {
        let mut s = snapshot(
            json!([
                {"name": "a", "plugin": "echo"},
                {"name": "b", "plugin": "echo"},
                {"name": "c", "plugin": "echo", "depends_on": ["a"]},
            ]),
            json!({}),
        );
        let plan = advance_all(&mut s, &[], now());
        let a = plan.jobs[0].clone();
        let plan = {
            let d = [done(&a, &s, JobState::Dead, json!(null))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(plan.finished, Some(RunState::Failed));
        assert_eq!(plan.cancel, CancelJobs::All);
        assert_eq!(states(&s), ["failed", "cancelled", "cancelled"]);
        assert_eq!(
            s.error.as_deref(),
            Some("step `a` failed: its job ended dead: boom")
        );
        // A late finish of a cancelled run changes nothing.
        let b = JobDone {
            job_id: uuid::Uuid::now_v7(),
            step: "b".into(),
            item: None,
            state: JobState::Cancelled,
            result: None,
            error: None,
        };
        assert_eq!(advance_all(&mut s, &[b], now()), Plan::default());
    }

    #[test]
    fn skip_skips_dependents_transitively_and_goes_on() {
        let mut s = snapshot(
            json!([
                {"name": "a", "plugin": "echo", "on_failure": "skip"},
                {"name": "b", "plugin": "echo", "depends_on": ["a"]},
                {"name": "c", "plugin": "echo", "depends_on": ["b"]},
                {"name": "x", "plugin": "echo"},
            ]),
            json!({}),
        );
        let plan = advance_all(&mut s, &[], now());
        assert_eq!(names(&s, &plan), ["a", "x"]);
        let (a, x) = (plan.jobs[0].clone(), plan.jobs[1].clone());
        let plan = {
            let d = [done(&a, &s, JobState::Dead, json!(null))];
            advance_all(&mut s, &d, now())
        };
        assert!(plan.jobs.is_empty());
        assert_eq!(states(&s), ["failed", "skipped", "skipped", "running"]);
        assert_eq!(s.steps[2].skipped_by.as_deref(), Some("a"));
        let plan = {
            let d = [done(&x, &s, JobState::Completed, json!(1))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(plan.finished, Some(RunState::PartiallyFailed));
    }

    #[test]
    fn continue_runs_dependents_and_ends_partially_failed() {
        let mut s = snapshot(
            json!([
                {"name": "a", "plugin": "echo", "on_failure": "continue"},
                {"name": "b", "plugin": "echo", "depends_on": ["a"]},
            ]),
            json!({}),
        );
        let plan = advance_all(&mut s, &[], now());
        let a = plan.jobs[0].clone();
        let plan = {
            let d = [done(&a, &s, JobState::Dead, json!(null))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(names(&s, &plan), ["b"]);
        let context: Value = serde_json::from_str(&plan.jobs[0].context).unwrap();
        assert_eq!(context["steps"], json!({}), "a failed: no result");
        let b = plan.jobs[0].clone();
        let plan = {
            let d = [done(&b, &s, JobState::Completed, json!(1))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(plan.finished, Some(RunState::PartiallyFailed));
    }

    #[test]
    fn a_false_when_skips_without_blocking_dependents() {
        let mut s = snapshot(
            json!([
                {"name": "check", "plugin": "echo"},
                {"name": "big", "plugin": "echo", "depends_on": ["check"], "when": "steps.check.n > `10`"},
                {"name": "small", "plugin": "echo", "depends_on": ["check"], "when": "steps.check.n <= `10`"},
                {"name": "join", "plugin": "echo", "depends_on": ["big", "small"]},
            ]),
            json!({}),
        );
        let plan = advance_all(&mut s, &[], now());
        let check = plan.jobs[0].clone();
        let plan = {
            let d = [done(&check, &s, JobState::Completed, json!({"n": 3}))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(names(&s, &plan), ["small"]);
        assert_eq!(s.steps[1].state, StepState::Skipped);
        let small = plan.jobs[0].clone();
        let plan = {
            let d = [done(&small, &s, JobState::Completed, json!("S"))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(names(&s, &plan), ["join"]);
        let join = plan.jobs[0].clone();
        let plan = {
            let d = [done(&join, &s, JobState::Completed, json!(1))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(plan.finished, Some(RunState::Completed));
    }

    #[test]
    fn fan_out_keeps_max_parallel_and_gathers_in_order() {
        let mut s = snapshot(
            json!([
                {"name": "each", "plugin": "echo", "for_each": "input.items", "max_parallel": 2},
                {"name": "after", "plugin": "echo", "depends_on": ["each"]},
            ]),
            json!({"items": [10, 20, 30]}),
        );
        let plan = advance_all(&mut s, &[], now());
        assert_eq!(plan.jobs.len(), 2);
        assert_eq!(plan.jobs[0].input, "10");
        let context: Value = serde_json::from_str(&plan.jobs[1].context).unwrap();
        assert_eq!(
            (context["item"].clone(), context["index"].clone()),
            (json!(20), json!(1))
        );
        let (e0, e1) = (plan.jobs[0].clone(), plan.jobs[1].clone());
        // As the store reloads the run: not the whole array, only the
        // element the finished one starts.
        s.steps[0].items = None;
        let d = [done(&e1, &s, JobState::Completed, json!(2))];
        assert_eq!(elements_to_load(&s, &d), vec![(0, 2..3)]);
        s.steps[0].next_items.insert(2, json!(30));
        let plan = advance_all(&mut s, &d, now());
        assert_eq!(plan.jobs.len(), 1, "one finished, one more starts");
        assert_eq!(
            (plan.jobs[0].item, plan.jobs[0].input.as_str()),
            (Some(2), "30")
        );
        let e2 = plan.jobs[0].clone();
        let d = [done(&e0, &s, JobState::Completed, json!(1))];
        assert!(elements_to_load(&s, &d).is_empty(), "every element started");
        let plan = advance_all(&mut s, &d, now());
        assert!(plan.jobs.is_empty());
        // The last element: the store gathers the results first.
        let last = [done(&e2, &s, JobState::Completed, json!(3))];
        assert_eq!(to_gather(&s, &last), vec![0]);
        s.steps[0].gathered = Some(Ok(vec![json!(1), json!(2), json!(3)]));
        let plan = advance_all(&mut s, &last, now());
        assert_eq!(s.steps[0].result, Some(json!([1, 2, 3])));
        assert_eq!(names(&s, &plan), ["after"]);
    }

    #[test]
    fn a_failed_element_fails_the_step_and_cancels_its_siblings() {
        let mut s = snapshot(
            json!([{"name": "each", "plugin": "echo", "for_each": "input", "on_failure": "continue"}]),
            json!([1, 2, 3]),
        );
        let plan = advance_all(&mut s, &[], now());
        assert_eq!(plan.jobs.len(), 3);
        let e1 = plan.jobs[1].clone();
        let plan = {
            let d = [done(&e1, &s, JobState::Dead, json!(null))];
            advance_all(&mut s, &d, now())
        };
        assert_eq!(plan.cancel, CancelJobs::Steps(vec!["each".into()]));
        assert_eq!(plan.finished, Some(RunState::PartiallyFailed));
        assert_eq!(
            s.steps[0].error.as_deref(),
            Some("element 1: its job ended dead: boom")
        );
    }

    #[test]
    fn bad_expressions_and_empty_fan_outs() {
        let mut s = snapshot(
            json!([
                {"name": "none", "plugin": "echo", "for_each": "input.empty"},
                {"name": "bad", "plugin": "echo", "for_each": "input.n", "on_failure": "continue"},
            ]),
            json!({"empty": [], "n": 3}),
        );
        let plan = advance_all(&mut s, &[], now());
        assert!(plan.jobs.is_empty());
        assert_eq!(s.steps[0].result, Some(json!([])));
        assert_eq!(s.steps[1].state, StepState::Failed);
        assert!(
            s.steps[1]
                .error
                .as_deref()
                .unwrap()
                .contains("not an array"),
            "{:?}",
            s.steps[1].error
        );
        assert_eq!(plan.finished, Some(RunState::PartiallyFailed));
    }

    #[test]
    fn cancel_cancels_every_unfinished_step_once() {
        let mut s = snapshot(
            json!([{"name": "a", "plugin": "echo"}, {"name": "b", "plugin": "echo", "depends_on": ["a"]}]),
            json!({}),
        );
        advance_all(&mut s, &[], now());
        let plan = cancel(&mut s, now()).unwrap();
        assert_eq!(plan.cancel, CancelJobs::All);
        assert_eq!(states(&s), ["cancelled", "cancelled"]);
        assert!(cancel(&mut s, now()).is_none());
    }
}
