//! Workflows and their runs, written once. The engine
//! (`crate::workflow::engine`) decides; this file loads, locks and writes.
//!
//! Locks: a run's row is its lock. Every transaction that changes a run's
//! steps (start, a step job finishing, a step job cancelled, the run
//! cancelled) locks the run row (`FOR UPDATE` on PostgreSQL; SQLite's one
//! writer serializes them anyway) *before* touching any of its jobs, so
//! writers of one run never deadlock; a batch of finishes locks its runs in
//! id order.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::super::{Here, dialect};
use super::{Conn, Tx, quotas, request_keys};
use crate::model::{JobState, PinnedJob, Timestamp};
use crate::store::codec::{At, Id, Json, List, Nat, big};
use crate::store::rows::{state, time};
use crate::store::workflows::{
    JobCharges, NewRun, RunCancel, RunFilter, WorkflowStore, json_value, missing_workflow,
    spec_value, unknown_step_plugin, validate_run_input,
};
use crate::store::{StoreError, StoreEvent};
use crate::workflow::engine::{
    self, CancelJobs, JobDone, Plan, Snapshot, StepRow, evaluate_since, step_jobs, too_large,
};
use crate::workflow::run::{Pinned, RunHead, new_run, plugins_to_pin, run_view};
use crate::workflow::{
    RunId, RunState, RunSummary, StepState, Workflow, WorkflowRun, WorkflowSpec,
};

/// Rows per multi-row `INSERT` of jobs: 1,000 rows of 14 values stay under
/// both databases' limits on parameters (SQLite's 32,766).
const ROWS_PER_INSERT: usize = 1_000;

#[derive(sqlx::FromRow)]
struct WorkflowRow {
    name: String,
    version: Nat<u32>,
    definition: Json,
    created_at: At,
}

impl TryFrom<WorkflowRow> for Workflow {
    type Error = StoreError;
    fn try_from(row: WorkflowRow) -> Result<Workflow, StoreError> {
        Ok(Workflow {
            name: row.name,
            version: row.version.0,
            steps: spec_value(&row.definition.0)?.steps,
            created_at: row.created_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RunRow {
    tenant_id: String,
    workflow: String,
    workflow_version: Nat<u32>,
    state: String,
    input: Json,
    error: Option<String>,
    schedule: Option<String>,
    created_at: At,
    finished_at: Option<At>,
    job_bytes: Nat<u64>,
    evaluate_since: Option<At>,
    definition: Json,
}

#[derive(sqlx::FromRow)]
struct StepRecord {
    step: String,
    state: String,
    plugin_version: Nat<u32>,
    job_id: Option<Id>,
    item_count: Option<Nat<u32>>,
    items_started: Nat<u32>,
    items_done: Nat<u32>,
    result: Option<Json>,
    error: Option<String>,
    skipped_by: Option<String>,
    started_at: Option<At>,
    finished_at: Option<At>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: Id,
    workflow: String,
    workflow_version: Nat<u32>,
    state: String,
    error: Option<String>,
    schedule: Option<String>,
    created_at: At,
    finished_at: Option<At>,
}

#[derive(sqlx::FromRow)]
struct DoneRow {
    id: Id,
    workflow_run_id: Option<Id>,
    workflow_step: Option<String>,
    workflow_item: Option<Nat<u32>>,
    state: String,
    result: Option<Json>,
    error: Option<String>,
}

fn decode(what: &str) -> StoreError {
    StoreError::corrupt(format!("unexpected stored value: {what}"))
}

pub(crate) async fn workflow_latest(
    conn: &mut Conn,
    tenant: &str,
    name: &str,
    version: Option<u32>,
) -> Result<Option<Workflow>, StoreError> {
    let row: Option<WorkflowRow> = sqlx::query_as(
        "SELECT name, version, definition, created_at FROM workflows \
         WHERE tenant_id = $1 AND name = $2 AND ($3 IS NULL OR version = $3) \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(name)
    .bind(version.map(i64::from))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Workflow::try_from).transpose()
}

/// The version of `plugin` a step (or a schedule's tick) pins: the given
/// one or the latest, not deleted, read `FOR SHARE` on PostgreSQL so a
/// concurrent delete waits for this transaction (and then sees the pin).
pub(crate) async fn plugin_pin(
    conn: &mut Conn,
    tenant: &str,
    plugin: &str,
    version: Option<u32>,
) -> Result<Option<u32>, StoreError> {
    let found: Option<Nat<u32>> = sqlx::query_scalar(&format!(
        "SELECT version FROM plugins WHERE tenant_id = $1 AND name = $2 \
         AND ($3 IS NULL OR version = $3) AND deleted_at IS NULL \
         ORDER BY version DESC LIMIT 1 {}",
        dialect::FOR_SHARE
    ))
    .bind(tenant)
    .bind(plugin)
    .bind(version.map(i64::from))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.map(|v| v.0))
}

/// Load a run (locking it when `lock`), its definition and its steps.
async fn load(
    conn: &mut Conn,
    tenant: Option<&str>,
    id: RunId,
    lock: bool,
) -> Result<Option<(RunHead, Snapshot)>, StoreError> {
    let run: Option<RunRow> = sqlx::query_as(&format!(
        "SELECT r.tenant_id, r.workflow, r.workflow_version, r.state, r.input, r.error, \
                r.schedule, r.created_at, r.finished_at, r.job_bytes, r.evaluate_since, w.definition \
         FROM workflow_runs r JOIN workflows w \
           ON w.tenant_id = r.tenant_id AND w.name = r.workflow AND w.version = r.workflow_version \
         WHERE r.id = $1 AND ($2 IS NULL OR r.tenant_id = $2) {}",
        if lock { dialect::FOR_UPDATE_OF_R } else { "" }
    ))
    .bind(Id(id))
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run) = run else { return Ok(None) };
    let spec = spec_value(&run.definition.0)?;
    let rows: Vec<StepRecord> = sqlx::query_as(
        "SELECT step, state, plugin_version, job_id, item_count, items_started, items_done, \
                result, error, skipped_by, started_at, finished_at \
         FROM workflow_steps WHERE run_id = $1 ORDER BY position",
    )
    .bind(Id(id))
    .fetch_all(&mut *conn)
    .await?;
    let mut by_name = BTreeMap::new();
    for row in rows {
        let step = StepRow {
            state: state(&row.state, StepState::parse)?,
            plugin_version: row.plugin_version.0,
            job_id: row.job_id.map(|id| id.0),
            result: row.result.map(|r| json_value(&r.0)).transpose()?,
            error: row.error,
            skipped_by: row.skipped_by,
            items: None,
            next_items: BTreeMap::new(),
            item_count: row.item_count.map(|n| n.0),
            items_started: row.items_started.0,
            items_done: row.items_done.0,
            started_at: time(row.started_at),
            finished_at: time(row.finished_at),
            gathered: None,
            changed: false,
        };
        by_name.insert(row.step, step);
    }
    let steps = spec
        .steps
        .iter()
        .map(|s| {
            by_name
                .remove(&s.name)
                .ok_or_else(|| decode(&format!("run {id} has no row for step {}", s.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let head = RunHead {
        workflow: run.workflow,
        workflow_version: run.workflow_version.0,
        schedule: run.schedule,
        created_at: run.created_at.0,
    };
    let snapshot = Snapshot {
        id,
        tenant_id: run.tenant_id,
        state: state(&run.state, RunState::parse)?,
        error: run.error,
        input: json_value(&run.input.0)?,
        spec,
        steps,
        finished_at: time(run.finished_at),
        job_bytes: run.job_bytes.0,
        room: engine::JobRoom::UNLIMITED,
        evaluated: engine::Evaluations::new(),
        awaiting_since: time(run.evaluate_since),
    };
    Ok(Some((head, snapshot)))
}

/// Fill in the results of fan-out steps whose last element just finished.
async fn gather(
    conn: &mut Conn,
    snapshot: &mut Snapshot,
    done: &[JobDone],
) -> Result<(), StoreError> {
    for i in engine::to_gather(snapshot, done) {
        let step = &snapshot.spec.steps[i].name;
        // Sum the sizes before loading anything: the results are bounded together.
        let bytes: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(sum({}) AS BIGINT) FROM jobs WHERE workflow_run_id = $1 \
             AND workflow_step = $2 AND state = 'completed'",
            dialect::json_bytes("result")
        ))
        .bind(Id(snapshot.id))
        .bind(step)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(error) = too_large(bytes) {
            snapshot.steps[i].gathered = Some(Err(error));
            continue;
        }
        let results: Vec<Json> = sqlx::query_scalar(
            "SELECT result FROM jobs WHERE workflow_run_id = $1 AND workflow_step = $2 \
             AND state = 'completed' ORDER BY workflow_item",
        )
        .bind(Id(snapshot.id))
        .bind(step)
        .fetch_all(&mut *conn)
        .await?;
        snapshot.steps[i].gathered = Some(Ok(results
            .iter()
            .map(|r| json_value(&r.0))
            .collect::<Result<_, _>>()?));
    }
    Ok(())
}

/// Load the elements a throttled fan-out is about to start, one by one:
/// its whole array is never read back.
async fn load_next_elements(
    conn: &mut Conn,
    snapshot: &mut Snapshot,
    done: &[JobDone],
) -> Result<(), StoreError> {
    for (i, range) in engine::elements_to_load(snapshot, done) {
        for item in range {
            let element: Option<Json> = sqlx::query_scalar(&format!(
                "SELECT {} FROM workflow_steps WHERE run_id = $1 AND step = $2",
                dialect::json_element("items", 3)
            ))
            .bind(Id(snapshot.id))
            .bind(&snapshot.spec.steps[i].name)
            .bind(i32::try_from(item).unwrap_or(i32::MAX))
            .fetch_one(&mut *conn)
            .await?;
            if let Some(element) = element {
                snapshot.steps[i]
                    .next_items
                    .insert(item, json_value(&element.0)?);
            }
        }
    }
    Ok(())
}

/// Write what the engine decided: changed steps, new jobs, cancelled jobs,
/// the run's state, and announce each. `before` holds each step's state as
/// loaded.
async fn apply(
    tx: &mut Tx<'_>,
    snapshot: &Snapshot,
    before: &[StepState],
    plan: &Plan,
    now: Timestamp,
) -> Result<(), StoreError> {
    for (i, step) in snapshot.steps.iter().enumerate() {
        if !step.changed {
            continue;
        }
        // `items` is written when a fan-out starts, dropped when it ends,
        // and otherwise kept as stored (it can be large).
        let items_op = if step.state.is_terminal() {
            "clear"
        } else if before[i] == StepState::Pending && step.items.is_some() {
            "set"
        } else {
            "keep"
        };
        let items = match items_op {
            "set" => step
                .items
                .as_ref()
                .map(|items| Json(serde_json::Value::from(items.clone()).to_string())),
            _ => None,
        };
        sqlx::query(
            "UPDATE workflow_steps SET state = $3, job_id = $4, \
                    items = CASE $5 WHEN 'keep' THEN items WHEN 'set' THEN $6 END, \
                    item_count = $7, items_started = $8, items_done = $9, result = $10, error = $11, \
                    skipped_by = $12, started_at = $13, finished_at = $14 \
             WHERE run_id = $1 AND step = $2",
        )
        .bind(Id(snapshot.id))
        .bind(&snapshot.spec.steps[i].name)
        .bind(step.state.as_str())
        .bind(step.job_id.map(Id))
        .bind(items_op)
        .bind(items)
        .bind(step.item_count.map(i64::from))
        .bind(i64::from(step.items_started))
        .bind(i64::from(step.items_done))
        .bind(step.result.as_ref().map(|r| Json(r.to_string())))
        .bind(&step.error)
        .bind(&step.skipped_by)
        .bind(step.started_at.map(At))
        .bind(step.finished_at.map(At))
        .execute(tx.conn())
        .await?;
    }
    if !plan.jobs.is_empty() {
        insert_pinned(tx, &snapshot.tenant_id, &step_jobs(snapshot, plan), now).await?;
        sqlx::query("UPDATE workflow_runs SET job_bytes = $2 WHERE id = $1")
            .bind(Id(snapshot.id))
            .bind(big(snapshot.job_bytes))
            .execute(tx.conn())
            .await?;
    }
    let cancel_steps: Option<Vec<String>> = match &plan.cancel {
        CancelJobs::None => None,
        CancelJobs::Steps(steps) => Some(steps.clone()),
        CancelJobs::All => Some(Vec::new()),
    };
    if let Some(steps) = cancel_steps {
        // Waiting jobs are cancelled now; running ones are asked to stop.
        let cancelled: Vec<(Id, String)> = sqlx::query_as(&format!(
            "UPDATE jobs SET \
                state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END, \
                cancel_requested = TRUE, \
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE $3 END, \
                error = CASE WHEN state = 'running' THEN error \
                             ELSE 'cancelled with its workflow step or run' END \
             WHERE workflow_run_id = $1 AND ($4 OR {}) \
               AND state NOT IN ('completed', 'dead', 'cancelled') \
             RETURNING id, state",
            dialect::any("workflow_step", 2)
        ))
        .bind(Id(snapshot.id))
        .bind(List(&steps))
        .bind(At(now))
        .bind(steps.is_empty())
        .fetch_all(tx.conn())
        .await?;
        for (id, state) in cancelled {
            tx.announce(if state == "running" {
                StoreEvent::CancelRequested(id.0)
            } else {
                StoreEvent::JobState(id.0, JobState::Cancelled)
            });
        }
    }
    // Watchers of the run (its event stream) hear of every change; a run
    // that goes on is announced `running`.
    let changed = !plan.jobs.is_empty() || snapshot.steps.iter().any(|step| step.changed);
    if changed && plan.finished.is_none() {
        tx.announce(StoreEvent::RunState(snapshot.id, RunState::Running));
    }
    if let Some(state) = plan.finished {
        sqlx::query(
            "UPDATE workflow_runs SET state = $2, error = $3, finished_at = $4 WHERE id = $1",
        )
        .bind(Id(snapshot.id))
        .bind(state.as_str())
        .bind(&snapshot.error)
        .bind(snapshot.finished_at.map(At))
        .execute(tx.conn())
        .await?;
        tx.announce(StoreEvent::RunState(snapshot.id, state));
    }
    if let Some(since) = evaluate_since(snapshot, plan, now) {
        sqlx::query("UPDATE workflow_runs SET evaluate_since = $2 WHERE id = $1")
            .bind(Id(snapshot.id))
            .bind(since.map(At))
            .execute(tx.conn())
            .await?;
    }
    if plan.awaits_evaluation() {
        tx.announce(StoreEvent::RunAwaitsEvaluation(snapshot.id));
    }
    Ok(())
}

/// Insert jobs whose plugin versions are pinned (a run's steps, a
/// schedule's tick), `available` at `now`, [`ROWS_PER_INSERT`] a statement.
pub(crate) async fn insert_pinned(
    tx: &mut Tx<'_>,
    tenant: &str,
    jobs: &[PinnedJob],
    now: Timestamp,
) -> Result<(), StoreError> {
    for chunk in jobs.chunks(ROWS_PER_INSERT) {
        let mut insert = sqlx::QueryBuilder::new(
            "WITH u (id, plugin, version, queue, priority, input, max_attempts, timeout_ms, run, step, \
                     item, context) AS (",
        );
        insert.push_values(chunk, |mut row, job| {
            row.push_bind(Id(job.id))
                .push_bind(job.plugin.as_str())
                .push_bind(i64::from(job.version))
                .push_bind(job.queue.as_str())
                .push_bind(job.priority)
                .push_bind(Json(job.input.clone()))
                .push_bind(job.max_attempts.map(i64::from))
                .push_bind(job.timeout_ms.map(big))
                .push_bind(job.run.map(Id))
                .push_bind(job.step.as_deref())
                .push_bind(job.item.map(i64::from))
                .push_bind(job.context.clone().map(Json));
        });
        insert.push(
            ") INSERT INTO jobs (id, tenant_id, plugin, plugin_version, digest, queue, priority, state, \
                                 input, attempt, max_attempts, timeout_ms, run_at, created_at, \
                                 workflow_run_id, workflow_step, workflow_item, context) \
               SELECT u.id, p.tenant_id, p.name, p.version, p.digest, u.queue, u.priority, 'available', \
                      u.input, 0, COALESCE(u.max_attempts, p.max_attempts), u.timeout_ms, ",
        );
        insert.push_bind(At(now)).push(", ").push_bind(At(now));
        insert.push(
            ", u.run, u.step, u.item, u.context FROM u JOIN plugins p \
               ON p.name = u.plugin AND p.version = u.version AND p.tenant_id = ",
        );
        insert.push_bind(tenant);
        let inserted = insert.build().execute(tx.conn()).await?.rows_affected();
        if inserted != chunk.len() as u64 {
            return Err(StoreError::Conflict(format!(
                "{inserted} of {} jobs found their pinned plugin version",
                chunk.len()
            )));
        }
    }
    tx.announce(StoreEvent::JobsAvailable(Some(tenant.to_string())));
    Ok(())
}

/// Run one advance of the engine on a loaded run and write its plan.
async fn advance(
    tx: &mut Tx<'_>,
    mut snapshot: Snapshot,
    done: &[JobDone],
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<Snapshot, StoreError> {
    snapshot.room = quotas::job_room(tx.conn(), &snapshot.tenant_id, now, charges).await?;
    let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
    let plan = engine::advance(&mut snapshot, done, now);
    apply(tx, &snapshot, &before, &plan, now).await?;
    charges.planned(&snapshot, &plan);
    Ok(snapshot)
}

/// Advance the runs of step jobs that reached a terminal state. The
/// caller's transaction already holds these runs' locks (taken before the
/// jobs were touched); this is its last work before the commit (it ends by
/// counting the new jobs against their tenants' rates).
pub(crate) async fn advance_runs(
    tx: &mut Tx<'_>,
    done: Vec<(RunId, JobDone)>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut by_run: BTreeMap<RunId, Vec<JobDone>> = BTreeMap::new();
    for (run, d) in done {
        by_run.entry(run).or_default().push(d);
    }
    let mut charges = JobCharges::default();
    for (run, done) in by_run {
        let Some((_, mut snapshot)) = load(tx.conn(), None, run, true).await? else {
            continue;
        };
        gather(tx.conn(), &mut snapshot, &done).await?;
        load_next_elements(tx.conn(), &mut snapshot, &done).await?;
        advance(tx, snapshot, &done, now, &mut charges).await?;
    }
    quotas::charge_rates(tx.conn(), &charges, now).await
}

/// Lock runs, in id order (every multi-run writer uses this order).
pub(crate) async fn lock_runs(tx: &mut Tx<'_>, runs: &[RunId]) -> Result<(), StoreError> {
    if dialect::FOR_UPDATE.is_empty() || runs.is_empty() {
        return Ok(());
    }
    let mut runs: Vec<Id> = runs.iter().copied().map(Id).collect();
    runs.sort();
    runs.dedup();
    sqlx::query(&format!(
        "SELECT id FROM workflow_runs WHERE {} ORDER BY id {}",
        dialect::any("id", 1),
        dialect::FOR_UPDATE
    ))
    .bind(List(&runs))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The step jobs among `ids` that are now terminal, as engine events.
pub(crate) async fn finished_step_jobs(
    conn: &mut Conn,
    ids: &[Id],
) -> Result<Vec<(RunId, JobDone)>, StoreError> {
    // The jobs of no run are left out here, not in SQL: `workflow_run_id IS
    // NOT NULL` is the predicate of the index of step jobs, which PostgreSQL
    // could then walk whole instead of finding `ids` by the primary key
    // (see `STILL_WAITING` in `sql/claim.rs`).
    let rows: Vec<DoneRow> = sqlx::query_as(&format!(
        "SELECT id, workflow_run_id, workflow_step, workflow_item, state, result, error FROM jobs \
         WHERE {} AND state IN ('completed', 'dead', 'cancelled')",
        dialect::any("id", 1)
    ))
    .bind(List(ids))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .filter_map(|row| Some((row.workflow_run_id?, row)))
        .map(|(run, row)| {
            Ok((
                run.0,
                JobDone {
                    job_id: row.id.0,
                    step: row.workflow_step.unwrap_or_default(),
                    item: row.workflow_item.map(|n| n.0),
                    state: state(&row.state, JobState::parse)?,
                    result: row.result.map(|r| json_value(&r.0)).transpose()?,
                    error: row.error,
                },
            ))
        })
        .collect()
}

/// Start a run in the caller's transaction (also used by schedules); its
/// first jobs go into `charges`, for the caller to count before it commits.
pub(crate) async fn run_start_in(
    tx: &mut Tx<'_>,
    tenant: &str,
    run: &NewRun<'_>,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<WorkflowRun, StoreError> {
    let now = crate::store::stored_time(now);
    let input = validate_run_input(run.input)?;
    let workflow = workflow_latest(tx.conn(), tenant, run.workflow, run.version)
        .await?
        .ok_or_else(|| missing_workflow(run))?;
    let mut pinned = Pinned::new();
    for (step, plugin, version) in plugins_to_pin(&WorkflowSpec::of(&workflow)) {
        let v = plugin_pin(tx.conn(), tenant, plugin, version)
            .await?
            .ok_or_else(|| unknown_step_plugin(step, plugin, version))?;
        pinned.insert((plugin.to_string(), version), v);
    }
    let snapshot = new_run(tenant, input, &workflow, &pinned);
    sqlx::query(
        "INSERT INTO workflow_runs (id, tenant_id, workflow, workflow_version, state, input, schedule, created_at) \
         VALUES ($1, $2, $3, $4, 'running', $5, $6, $7)",
    )
    .bind(Id(snapshot.id))
    .bind(tenant)
    .bind(&workflow.name)
    .bind(i64::from(workflow.version))
    .bind(Json(run.input.to_string()))
    .bind(run.schedule)
    .bind(At(now))
    .execute(tx.conn())
    .await?;
    let mut steps = sqlx::QueryBuilder::new(
        "INSERT INTO workflow_steps (run_id, step, position, tenant_id, plugin, plugin_version, state) ",
    );
    let rows = snapshot.spec.steps.iter().zip(&snapshot.steps).enumerate();
    steps.push_values(rows, |mut row, (position, (spec, step))| {
        row.push_bind(Id(snapshot.id))
            .push_bind(spec.name.as_str())
            .push_bind(position as i64)
            .push_bind(tenant)
            .push_bind(spec.plugin.as_str())
            .push_bind(i64::from(step.plugin_version))
            .push_bind("pending");
    });
    steps.build().execute(tx.conn()).await?;
    let snapshot = advance(tx, snapshot, &[], now, charges).await?;
    let head = RunHead {
        workflow: workflow.name,
        workflow_version: workflow.version,
        schedule: run.schedule.map(str::to_string),
        created_at: now,
    };
    Ok(run_view(head, &snapshot))
}

#[async_trait]
impl WorkflowStore for Here {
    async fn workflow_insert(
        &self,
        tenant: &str,
        name: &str,
        spec: &WorkflowSpec,
        now: Timestamp,
    ) -> Result<(Workflow, bool), StoreError> {
        let now = crate::store::stored_time(now);
        crate::model::Name::parse("workflow name", name)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        spec.validate()?;
        let mut tx = Tx::begin(self).await?;
        for step in &spec.steps {
            if plugin_pin(tx.conn(), tenant, &step.plugin, step.version)
                .await?
                .is_none()
            {
                return Err(unknown_step_plugin(&step.name, &step.plugin, step.version));
            }
        }
        // Versions of one name are numbered one at a time.
        dialect::lock_name(tx.conn(), &format!("workflow/{tenant}/{name}")).await?;
        let latest = workflow_latest(tx.conn(), tenant, name, None).await?;
        if let Some(latest) = &latest
            && latest.steps == spec.steps
        {
            tx.commit().await?;
            return Ok((latest.clone(), false));
        }
        // A new version, or a new workflow: within the tenant's quotas.
        let (workflows, max_workflows, max_versions): (i64, Option<i64>, Option<i64>) =
            sqlx::query_as(
                "SELECT (SELECT count(DISTINCT name) FROM workflows WHERE tenant_id = $1), \
                    (SELECT CAST(max_workflows AS BIGINT) FROM tenants WHERE id = $1), \
                    (SELECT CAST(max_workflow_versions AS BIGINT) FROM tenants WHERE id = $1)",
            )
            .bind(tenant)
            .fetch_one(tx.conn())
            .await?;
        match &latest {
            Some(latest) => crate::store::within_quota(
                &format!("versions of workflow `{name}`"),
                i64::from(latest.version),
                "max_workflow_versions",
                max_versions,
            )?,
            None => {
                crate::store::within_quota("workflows", workflows, "max_workflows", max_workflows)?
            }
        }
        let definition = serde_json::to_string(spec)
            .map_err(|e| StoreError::Invalid(format!("the definition does not serialize: {e}")))?;
        let inserted = sqlx::query(
            "INSERT INTO workflows (tenant_id, name, version, definition, created_at) \
             SELECT $1, $2, COALESCE(max(version), 0) + 1, $3, $4 FROM workflows \
             WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .bind(Json(definition))
        .bind(At(now))
        .execute(tx.conn())
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::unknown_tenant(tenant));
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Conflict(format!(
                    "workflow `{name}` changed at the same time; send it again"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let stored = workflow_latest(tx.conn(), tenant, name, None)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("workflow `{name}`")))?;
        tx.commit().await?;
        Ok((stored, true))
    }

    async fn workflow_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Workflow>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        workflow_latest(&mut conn, tenant, name, version).await
    }

    async fn workflow_list(&self, tenant: &str) -> Result<Vec<Workflow>, StoreError> {
        let rows: Vec<WorkflowRow> = sqlx::query_as(
            "SELECT name, version, definition, created_at FROM workflows w \
             WHERE tenant_id = $1 AND version = (SELECT max(version) FROM workflows \
                                                 WHERE tenant_id = w.tenant_id AND name = w.name) \
             ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(Workflow::try_from).collect()
    }

    async fn run_start(
        &self,
        tenant: &str,
        run: &NewRun<'_>,
        now: Timestamp,
    ) -> Result<(WorkflowRun, bool), StoreError> {
        let now = crate::store::stored_time(now);
        if let Some(key) = run.key
            && let Some(stored) = request_keys::find(self.reader(), tenant, key).await?
        {
            return crate::store::workflows::replayed_run(self, tenant, key, stored).await;
        }
        let mut tx = Tx::begin(self).await?;
        let mut charges = JobCharges::default();
        let started = run_start_in(&mut tx, tenant, run, now, &mut charges).await?;
        quotas::charge_rates(tx.conn(), &charges, now).await?;
        if let Some(key) = run.key {
            let answer = crate::store::request_keys::answer([started.id]);
            if !request_keys::put(tx.conn(), tenant, key, &answer, now).await? {
                // Another request took the key since it was looked up.
                tx.rollback().await?;
                let stored = request_keys::find(self.reader(), tenant, key)
                    .await?
                    .ok_or_else(|| StoreError::Conflict("an idempotency key vanished".into()))?;
                return crate::store::workflows::replayed_run(self, tenant, key, stored).await;
            }
        }
        tx.commit().await?;
        Ok((started, true))
    }

    async fn run_get(&self, tenant: &str, id: RunId) -> Result<Option<WorkflowRun>, StoreError> {
        // One read transaction: on SQLite the run and its steps come from
        // one snapshot; on PostgreSQL (read committed) the steps are read
        // after the run, and a step only moves forward, so the view is at
        // worst a moment newer.
        let mut tx = self.reader().begin().await?;
        let found = load(&mut tx, Some(tenant), id, false).await?;
        tx.commit().await?;
        Ok(found.map(|(head, snapshot)| run_view(head, &snapshot)))
    }

    async fn run_list(
        &self,
        tenant: &str,
        filter: &RunFilter,
        after: Option<RunId>,
        limit: u32,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(
            "SELECT id, workflow, workflow_version, state, error, schedule, created_at, finished_at \
             FROM workflow_runs WHERE tenant_id = $1 AND ($2 IS NULL OR workflow = $2) \
             AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
        )
        .bind(tenant)
        .bind(&filter.workflow)
        .bind(filter.state.map(|s| s.as_str()))
        .bind(after.map(Id))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(RunSummary {
                    id: row.id.0,
                    workflow: row.workflow,
                    workflow_version: row.workflow_version.0,
                    state: state(&row.state, RunState::parse)?,
                    error: row.error,
                    schedule: row.schedule,
                    created_at: row.created_at.0,
                    finished_at: time(row.finished_at),
                })
            })
            .collect()
    }

    async fn run_cancel(
        &self,
        tenant: &str,
        id: RunId,
        now: Timestamp,
    ) -> Result<RunCancel, StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = Tx::begin(self).await?;
        let Some((_, mut snapshot)) = load(tx.conn(), Some(tenant), id, true).await? else {
            return Ok(RunCancel::NotFound);
        };
        let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
        let Some(plan) = engine::cancel(&mut snapshot, now) else {
            return Ok(RunCancel::AlreadyFinished(snapshot.state));
        };
        apply(&mut tx, &snapshot, &before, &plan, now).await?;
        tx.commit().await?;
        Ok(RunCancel::Cancelled)
    }

    async fn runs_awaiting_evaluation(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<RunId>, StoreError> {
        let ids: Vec<Id> = sqlx::query_scalar(
            "SELECT id FROM workflow_runs WHERE evaluate_since <= $1 \
             ORDER BY evaluate_since LIMIT $2",
        )
        .bind(At(since))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    async fn run_evaluations_needed(
        &self,
        id: RunId,
    ) -> Result<Option<Vec<engine::EvaluationNeeded>>, StoreError> {
        // A read transaction: the run and its steps from one snapshot (on
        // SQLite), and the writer stays free while expressions are evaluated.
        let mut tx = self.reader().begin().await?;
        let found = load(&mut tx, None, id, false).await?;
        tx.commit().await?;
        Ok(
            found
                .and_then(|(_, snapshot)| engine::evaluations_needed(snapshot, chrono::Utc::now())),
        )
    }

    async fn run_advance_evaluated(
        &self,
        id: RunId,
        evaluated: engine::Evaluations,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = Tx::begin(self).await?;
        let mut charges = JobCharges::default();
        if let Some((_, mut snapshot)) = load(tx.conn(), None, id, true).await? {
            snapshot.evaluated = evaluated;
            advance(&mut tx, snapshot, &[], now, &mut charges).await?;
        }
        quotas::charge_rates(tx.conn(), &charges, now).await?;
        tx.commit().await?;
        Ok(!charges.awaiting().is_empty())
    }
}
