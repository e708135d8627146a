//! Workflows on SQLite. Every write runs on the one writer connection, in
//! one transaction, so a run's changes are serialized without row locks;
//! wake-ups are announced after the commit. The engine
//! (`crate::workflow::engine`) decides; this file loads and writes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use super::{SqliteStore, micros, opt_time, opt_uuid, time, uuid};
use crate::model::{JobState, Timestamp};
use crate::store::workflows::{
    JobCharges, NewRun, Pinned, PinnedJob, RunCancel, RunFilter, RunHead, WorkflowStore,
    json_value, missing_workflow, new_run, plugins_to_pin, run_view, spec_value, step_jobs,
    too_large, unknown_step_plugin, validate_run_input,
};
use crate::store::{StoreError, StoreEvent, to_i64, to_u32, to_u64};
use crate::workflow::engine::{self, CancelJobs, JobDone, Plan, Snapshot, StepRow};
use crate::workflow::{
    RunId, RunState, RunSummary, StepState, Workflow, WorkflowRun, WorkflowSpec,
};

fn workflow_from_row(row: &SqliteRow) -> Result<Workflow, StoreError> {
    Ok(Workflow {
        name: row.try_get("name")?,
        version: to_u32(row.try_get("version")?),
        steps: spec_value(&row.try_get::<String, _>("definition")?)?.steps,
        created_at: time(row.try_get("created_at")?)?,
    })
}

pub(super) async fn workflow_latest(
    conn: &mut SqliteConnection,
    tenant: &str,
    name: &str,
    version: Option<u32>,
) -> Result<Option<Workflow>, StoreError> {
    let row = sqlx::query(
        "SELECT name, version, definition, created_at FROM workflows \
         WHERE tenant_id = ?1 AND name = ?2 AND (?3 IS NULL OR version = ?3) \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(name)
    .bind(version.map(i64::from))
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(workflow_from_row).transpose()
}

/// The version of `plugin` a step pins: the given one or the latest, not deleted.
pub(super) async fn plugin_pin(
    conn: &mut SqliteConnection,
    tenant: &str,
    plugin: &str,
    version: Option<u32>,
) -> Result<Option<u32>, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT version FROM plugins WHERE tenant_id = ?1 AND name = ?2 \
         AND (?3 IS NULL OR version = ?3) AND deleted_at IS NULL ORDER BY version DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(plugin)
    .bind(version.map(i64::from))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.and_then(|v| u32::try_from(v).ok()))
}

fn decode(what: &str) -> StoreError {
    StoreError::corrupt(format!("unexpected stored value: {what}"))
}

fn int(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
}

/// Load a run, its definition and its steps.
async fn load(
    conn: &mut SqliteConnection,
    tenant: Option<&str>,
    id: RunId,
) -> Result<Option<(RunHead, Snapshot)>, StoreError> {
    let run = sqlx::query(
        "SELECT r.tenant_id, r.workflow, r.workflow_version, r.state, r.input, r.error, r.schedule, \
                r.created_at, r.finished_at, r.job_bytes, r.evaluate_since, w.definition \
         FROM workflow_runs r JOIN workflows w \
           ON w.tenant_id = r.tenant_id AND w.name = r.workflow AND w.version = r.workflow_version \
         WHERE r.id = ?1 AND (?2 IS NULL OR r.tenant_id = ?2)",
    )
    .bind(id.to_string())
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run) = run else { return Ok(None) };
    let state: String = run.try_get("state")?;
    let spec = spec_value(&run.try_get::<String, _>("definition")?)?;
    let rows = sqlx::query(
        "SELECT step, state, plugin_version, job_id, \
                item_count, items_started, items_done, result, error, skipped_by, started_at, finished_at \
         FROM workflow_steps WHERE run_id = ?1 ORDER BY position",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut by_name = BTreeMap::new();
    for row in &rows {
        let state: String = row.try_get("state")?;
        let result: Option<String> = row.try_get("result")?;
        by_name.insert(
            row.try_get::<String, _>("step")?,
            StepRow {
                state: StepState::parse(&state).ok_or_else(|| decode(&state))?,
                plugin_version: int(row, "plugin_version")?,
                job_id: opt_uuid(row, "job_id")?,
                result: result.as_deref().map(json_value).transpose()?,
                error: row.try_get("error")?,
                skipped_by: row.try_get("skipped_by")?,
                items: None,
                next_items: BTreeMap::new(),
                item_count: row
                    .try_get::<Option<i64>, _>("item_count")?
                    .and_then(|n| u32::try_from(n).ok()),
                items_started: int(row, "items_started")?,
                items_done: int(row, "items_done")?,
                started_at: opt_time(row.try_get("started_at")?)?,
                finished_at: opt_time(row.try_get("finished_at")?)?,
                gathered: None,
                changed: false,
            },
        );
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
        workflow: run.try_get("workflow")?,
        workflow_version: int(&run, "workflow_version")?,
        schedule: run.try_get("schedule")?,
        created_at: time(run.try_get("created_at")?)?,
    };
    let snapshot = Snapshot {
        id,
        tenant_id: run.try_get("tenant_id")?,
        state: RunState::parse(&state).ok_or_else(|| decode(&state))?,
        error: run.try_get("error")?,
        input: json_value(&run.try_get::<String, _>("input")?)?,
        spec,
        steps,
        finished_at: opt_time(run.try_get("finished_at")?)?,
        job_bytes: to_u64(run.try_get("job_bytes")?),
        room: engine::JobRoom::UNLIMITED,
        evaluated: engine::Evaluations::new(),
        awaiting_since: opt_time(run.try_get("evaluate_since")?)?,
    };
    Ok(Some((head, snapshot)))
}

/// Fill in the results of fan-out steps whose last element just finished.
async fn gather(
    conn: &mut SqliteConnection,
    snapshot: &mut Snapshot,
    done: &[JobDone],
) -> Result<(), StoreError> {
    for i in engine::to_gather(snapshot, done) {
        // Sum the sizes before loading anything: the results are bounded together.
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT sum(length(CAST(result AS BLOB))) FROM jobs WHERE workflow_run_id = ?1 \
             AND workflow_step = ?2 AND state = 'completed'",
        )
        .bind(snapshot.id.to_string())
        .bind(&snapshot.spec.steps[i].name)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(error) = too_large(bytes) {
            snapshot.steps[i].gathered = Some(Err(error));
            continue;
        }
        let results: Vec<String> = sqlx::query_scalar(
            "SELECT result FROM jobs WHERE workflow_run_id = ?1 AND workflow_step = ?2 \
             AND state = 'completed' ORDER BY workflow_item",
        )
        .bind(snapshot.id.to_string())
        .bind(&snapshot.spec.steps[i].name)
        .fetch_all(&mut *conn)
        .await?;
        snapshot.steps[i].gathered = Some(Ok(results
            .iter()
            .map(|r| json_value(r))
            .collect::<Result<_, _>>()?));
    }
    Ok(())
}

/// Load the elements a throttled fan-out is about to start, one by one
/// (`items -> '$[n]'`): its whole array is never read back.
async fn load_next_elements(
    conn: &mut SqliteConnection,
    snapshot: &mut Snapshot,
    done: &[JobDone],
) -> Result<(), StoreError> {
    for (i, range) in engine::elements_to_load(snapshot, done) {
        for item in range {
            let element: Option<String> = sqlx::query_scalar(
                "SELECT items -> ('$[' || ?3 || ']') FROM workflow_steps WHERE run_id = ?1 AND step = ?2",
            )
            .bind(snapshot.id.to_string())
            .bind(&snapshot.spec.steps[i].name)
            .bind(i64::from(item))
            .fetch_one(&mut *conn)
            .await?;
            if let Some(element) = element {
                snapshot.steps[i]
                    .next_items
                    .insert(item, json_value(&element)?);
            }
        }
    }
    Ok(())
}

/// Write what the engine decided; returns the wake-ups to announce after
/// the commit. `before` holds each step's state as loaded.
async fn apply(
    conn: &mut SqliteConnection,
    snapshot: &Snapshot,
    before: &[StepState],
    plan: &Plan,
    now: Timestamp,
) -> Result<Vec<StoreEvent>, StoreError> {
    let mut events = Vec::new();
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
                .map(|items| serde_json::Value::from(items.clone()).to_string()),
            _ => None,
        };
        sqlx::query(
            "UPDATE workflow_steps SET state = ?3, job_id = ?4, \
                    items = CASE ?5 WHEN 'keep' THEN items WHEN 'set' THEN ?6 END, \
                    item_count = ?7, items_started = ?8, items_done = ?9, result = ?10, error = ?11, \
                    skipped_by = ?12, started_at = ?13, finished_at = ?14 \
             WHERE run_id = ?1 AND step = ?2",
        )
        .bind(snapshot.id.to_string())
        .bind(&snapshot.spec.steps[i].name)
        .bind(step.state.as_str())
        .bind(step.job_id.map(|id| id.to_string()))
        .bind(items_op)
        .bind(items)
        .bind(step.item_count.map(i64::from))
        .bind(i64::from(step.items_started))
        .bind(i64::from(step.items_done))
        .bind(step.result.as_ref().map(|r| r.to_string()))
        .bind(&step.error)
        .bind(&step.skipped_by)
        .bind(step.started_at.map(micros))
        .bind(step.finished_at.map(micros))
        .execute(&mut *conn)
        .await?;
    }
    if !plan.jobs.is_empty() {
        insert_pinned(conn, &snapshot.tenant_id, &step_jobs(snapshot, plan), now).await?;
        sqlx::query("UPDATE workflow_runs SET job_bytes = ?2 WHERE id = ?1")
            .bind(snapshot.id.to_string())
            .bind(to_i64(snapshot.job_bytes))
            .execute(&mut *conn)
            .await?;
        events.push(StoreEvent::JobsAvailable);
    }
    let cancel_steps: Option<Vec<String>> = match &plan.cancel {
        CancelJobs::None => None,
        CancelJobs::Steps(steps) => Some(steps.clone()),
        CancelJobs::All => Some(Vec::new()),
    };
    if let Some(steps) = cancel_steps {
        let steps_json =
            serde_json::to_string(&steps).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let rows = sqlx::query(
            "UPDATE jobs SET \
                state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END, \
                cancel_requested = 1, \
                finished_at = CASE WHEN state = 'running' THEN NULL ELSE ?3 END, \
                error = CASE WHEN state = 'running' THEN error ELSE 'cancelled with its workflow step or run' END \
             WHERE workflow_run_id = ?1 AND (?4 OR workflow_step IN (SELECT value FROM json_each(?2))) \
               AND state NOT IN ('completed', 'dead', 'cancelled') \
             RETURNING id, state",
        )
        .bind(snapshot.id.to_string())
        .bind(steps_json)
        .bind(micros(now))
        .bind(steps.is_empty())
        .fetch_all(&mut *conn)
        .await?;
        for row in &rows {
            let id = uuid(row, "id")?;
            let state: String = row.try_get("state")?;
            events.push(if state == "running" {
                StoreEvent::CancelRequested(id)
            } else {
                StoreEvent::JobState(id, JobState::Cancelled)
            });
        }
    }
    if let Some(state) = plan.finished {
        sqlx::query(
            "UPDATE workflow_runs SET state = ?2, error = ?3, finished_at = ?4 WHERE id = ?1",
        )
        .bind(snapshot.id.to_string())
        .bind(state.as_str())
        .bind(&snapshot.error)
        .bind(snapshot.finished_at.map(micros))
        .execute(&mut *conn)
        .await?;
        events.push(StoreEvent::RunState(snapshot.id, state));
    }
    if let Some(since) = crate::store::workflows::evaluate_since(snapshot, plan, now) {
        sqlx::query("UPDATE workflow_runs SET evaluate_since = ?2 WHERE id = ?1")
            .bind(snapshot.id.to_string())
            .bind(since.map(micros))
            .execute(&mut *conn)
            .await?;
    }
    if plan.awaits_evaluation() {
        events.push(StoreEvent::RunAwaitsEvaluation(snapshot.id));
    }
    Ok(events)
}

/// Insert jobs whose plugin versions are pinned (a run's steps, a
/// schedule's tick); `available` at `now`.
pub(super) async fn insert_pinned(
    conn: &mut SqliteConnection,
    tenant: &str,
    jobs: &[PinnedJob],
    now: Timestamp,
) -> Result<(), StoreError> {
    for job in jobs {
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input, attempt, \
                               max_attempts, timeout_ms, run_at, created_at, workflow_run_id, workflow_step, \
                               workflow_item, context) \
             SELECT ?1, ?2, p.name, p.version, p.digest, ?5, ?6, 'available', ?7, 0, COALESCE(?8, p.max_attempts), \
                    ?9, ?10, ?10, ?11, ?12, ?13, ?14 \
             FROM plugins p WHERE p.tenant_id = ?2 AND p.name = ?3 AND p.version = ?4",
        )
        .bind(job.id.to_string())
        .bind(tenant)
        .bind(&job.plugin)
        .bind(i64::from(job.version))
        .bind(&job.queue)
        .bind(job.priority)
        .bind(&job.input)
        .bind(job.max_attempts.map(i64::from))
        .bind(job.timeout_ms.map(to_i64))
        .bind(micros(now))
        .bind(job.run.map(|id| id.to_string()))
        .bind(&job.step)
        .bind(job.item.map(i64::from))
        .bind(&job.context)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted != 1 {
            return Err(StoreError::Conflict(format!(
                "job of plugin `{}` did not find its pinned version {}",
                job.plugin, job.version
            )));
        }
    }
    Ok(())
}

/// Advance the runs of step jobs that reached a terminal state, in the
/// caller's transaction. Returns the wake-ups to announce after the commit.
pub(super) async fn advance_runs(
    conn: &mut SqliteConnection,
    done: Vec<(RunId, JobDone)>,
    now: Timestamp,
) -> Result<Vec<StoreEvent>, StoreError> {
    let mut by_run: BTreeMap<RunId, Vec<JobDone>> = BTreeMap::new();
    for (run, d) in done {
        by_run.entry(run).or_default().push(d);
    }
    let mut events = Vec::new();
    let mut charges = JobCharges::default();
    for (run, done) in by_run {
        let Some((_, mut snapshot)) = load(conn, None, run).await? else {
            continue;
        };
        gather(conn, &mut snapshot, &done).await?;
        load_next_elements(conn, &mut snapshot, &done).await?;
        snapshot.room = super::job_room(conn, &snapshot.tenant_id, now, &charges).await?;
        let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
        let plan = engine::advance(&mut snapshot, &done, now);
        events.extend(apply(conn, &snapshot, &before, &plan, now).await?);
        charges.planned(&snapshot, &plan);
    }
    super::charge_rates(conn, &charges, now).await?;
    Ok(events)
}

/// Advance a run with evaluations made before this transaction (see
/// [`WorkflowStore::run_advance_evaluated`]); its jobs and whether it waits
/// for more go into `charges`. Returns the wake-ups to announce.
async fn advance_evaluated(
    conn: &mut SqliteConnection,
    id: RunId,
    evaluated: engine::Evaluations,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<Vec<StoreEvent>, StoreError> {
    let Some((_, mut snapshot)) = load(conn, None, id).await? else {
        return Ok(Vec::new());
    };
    snapshot.room = super::job_room(conn, &snapshot.tenant_id, now, charges).await?;
    snapshot.evaluated = evaluated;
    let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
    let plan = engine::advance(&mut snapshot, &[], now);
    let events = apply(conn, &snapshot, &before, &plan, now).await?;
    charges.planned(&snapshot, &plan);
    Ok(events)
}

/// The step jobs among `ids` that are now terminal, as engine events.
pub(super) async fn finished_step_jobs(
    conn: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<Vec<(RunId, JobDone)>, StoreError> {
    let ids = serde_json::to_string(&ids.iter().map(|id| id.to_string()).collect::<Vec<_>>())
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let rows = sqlx::query(
        "SELECT id, workflow_run_id, workflow_step, workflow_item, state, result, error FROM jobs \
         WHERE id IN (SELECT value FROM json_each(?1)) AND workflow_run_id IS NOT NULL \
           AND state IN ('completed', 'dead', 'cancelled')",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut done = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = row.try_get("state")?;
        let result: Option<String> = row.try_get("result")?;
        let Some(run) = opt_uuid(row, "workflow_run_id")? else {
            continue;
        };
        done.push((
            run,
            JobDone {
                job_id: uuid(row, "id")?,
                step: row
                    .try_get::<Option<String>, _>("workflow_step")?
                    .unwrap_or_default(),
                item: row
                    .try_get::<Option<i64>, _>("workflow_item")?
                    .and_then(|n| u32::try_from(n).ok()),
                state: JobState::parse(&state).ok_or_else(|| decode(&state))?,
                result: result.as_deref().map(json_value).transpose()?,
                error: row.try_get("error")?,
            },
        ));
    }
    Ok(done)
}

/// Start a run in the caller's transaction (also used by schedules).
/// Returns the run and the wake-ups to announce after the commit.
pub(super) async fn run_start_in(
    conn: &mut SqliteConnection,
    tenant: &str,
    run: &NewRun<'_>,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<(WorkflowRun, Vec<StoreEvent>), StoreError> {
    let now = crate::store::stored_time(now);
    let input = validate_run_input(run.input)?;
    let workflow = workflow_latest(conn, tenant, run.workflow, run.version)
        .await?
        .ok_or_else(|| missing_workflow(run))?;
    let mut pinned = Pinned::new();
    for (step, plugin, version) in plugins_to_pin(&WorkflowSpec::of(&workflow)) {
        let v = plugin_pin(conn, tenant, plugin, version)
            .await?
            .ok_or_else(|| unknown_step_plugin(step, plugin, version))?;
        pinned.insert((plugin.to_string(), version), v);
    }
    let mut snapshot = new_run(tenant, input, &workflow, &pinned);
    let id = snapshot.id;
    sqlx::query(
        "INSERT INTO workflow_runs (id, tenant_id, workflow, workflow_version, state, input, schedule, created_at) \
         VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7)",
    )
    .bind(id.to_string())
    .bind(tenant)
    .bind(&workflow.name)
    .bind(i64::from(workflow.version))
    .bind(run.input)
    .bind(run.schedule)
    .bind(micros(now))
    .execute(&mut *conn)
    .await?;
    for (position, (spec, row)) in snapshot.spec.steps.iter().zip(&snapshot.steps).enumerate() {
        sqlx::query(
            "INSERT INTO workflow_steps (run_id, step, position, tenant_id, plugin, plugin_version, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
        )
        .bind(id.to_string())
        .bind(&spec.name)
        .bind(position as i64)
        .bind(tenant)
        .bind(&spec.plugin)
        .bind(i64::from(row.plugin_version))
        .execute(&mut *conn)
        .await?;
    }
    snapshot.room = super::job_room(conn, tenant, now, charges).await?;
    let before = vec![StepState::Pending; snapshot.steps.len()];
    let plan = engine::advance(&mut snapshot, &[], now);
    let events = apply(conn, &snapshot, &before, &plan, now).await?;
    charges.planned(&snapshot, &plan);
    let head = RunHead {
        workflow: workflow.name,
        workflow_version: workflow.version,
        schedule: run.schedule.map(str::to_string),
        created_at: now,
    };
    Ok((run_view(head, &snapshot), events))
}

#[async_trait]
impl WorkflowStore for SqliteStore {
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
        let mut tx = self.writer.begin().await?;
        for step in &spec.steps {
            if plugin_pin(&mut tx, tenant, &step.plugin, step.version)
                .await?
                .is_none()
            {
                return Err(unknown_step_plugin(&step.name, &step.plugin, step.version));
            }
        }
        let latest = workflow_latest(&mut tx, tenant, name, None).await?;
        if let Some(latest) = &latest
            && latest.steps == spec.steps
        {
            tx.commit().await?;
            return Ok((latest.clone(), false));
        }
        // A new version, or a new workflow: within the tenant's quotas.
        let (workflows, max_workflows, max_versions): (i64, Option<i64>, Option<i64>) =
            sqlx::query_as(
                "SELECT (SELECT count(DISTINCT name) FROM workflows WHERE tenant_id = ?1), \
                    (SELECT max_workflows FROM tenants WHERE id = ?1), \
                    (SELECT max_workflow_versions FROM tenants WHERE id = ?1)",
            )
            .bind(tenant)
            .fetch_one(&mut *tx)
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
             SELECT ?1, ?2, COALESCE(max(version), 0) + 1, ?3, ?4 FROM workflows \
             WHERE tenant_id = ?1 AND name = ?2",
        )
        .bind(tenant)
        .bind(name)
        .bind(&definition)
        .bind(micros(now))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::unknown_tenant(tenant));
            }
            Err(e) => return Err(e.into()),
        }
        let stored = workflow_latest(&mut tx, tenant, name, None)
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
        let mut conn = self.reader.acquire().await?;
        workflow_latest(&mut conn, tenant, name, version).await
    }

    async fn workflow_list(&self, tenant: &str) -> Result<Vec<Workflow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, definition, created_at FROM workflows w \
             WHERE tenant_id = ?1 AND version = (SELECT max(version) FROM workflows \
                                                 WHERE tenant_id = w.tenant_id AND name = w.name) \
             ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn run_start(
        &self,
        tenant: &str,
        run: &NewRun<'_>,
        now: Timestamp,
    ) -> Result<(WorkflowRun, bool), StoreError> {
        let now = crate::store::stored_time(now);
        if let Some(key) = run.key
            && let Some(stored) = super::request_key_find(&self.reader, tenant, key).await?
        {
            return crate::store::workflows::replayed_run(self, tenant, key, stored).await;
        }
        let mut tx = self.writer.begin().await?;
        let mut charges = JobCharges::default();
        let (started, events) = run_start_in(&mut tx, tenant, run, now, &mut charges).await?;
        super::charge_rates(&mut tx, &charges, now).await?;
        if let Some(key) = run.key {
            let answer = crate::store::request_keys::answer([started.id]);
            if !super::request_key_put(&mut tx, tenant, key, &answer, now).await? {
                // Another request took the key since it was looked up.
                tx.rollback().await?;
                let stored = super::request_key_find(&self.reader, tenant, key)
                    .await?
                    .ok_or_else(|| StoreError::Conflict("an idempotency key vanished".into()))?;
                return crate::store::workflows::replayed_run(self, tenant, key, stored).await;
            }
        }
        tx.commit().await?;
        for event in events {
            self.announce(event);
        }
        Ok((started, true))
    }

    async fn run_get(&self, tenant: &str, id: RunId) -> Result<Option<WorkflowRun>, StoreError> {
        // One read transaction: the run and its steps from one snapshot.
        let mut tx = self.reader.begin().await?;
        let found = load(&mut tx, Some(tenant), id).await?;
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
        let rows = sqlx::query(
            "SELECT id, workflow, workflow_version, state, error, schedule, created_at, finished_at \
             FROM workflow_runs WHERE tenant_id = ?1 AND (?2 IS NULL OR workflow = ?2) \
             AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR id < ?4) \
             ORDER BY id DESC LIMIT ?5",
        )
        .bind(tenant)
        .bind(&filter.workflow)
        .bind(filter.state.map(|s| s.as_str()))
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(RunSummary {
                    id: uuid(row, "id")?,
                    workflow: row.try_get("workflow")?,
                    workflow_version: int(row, "workflow_version")?,
                    state: RunState::parse(&state).ok_or_else(|| decode(&state))?,
                    error: row.try_get("error")?,
                    schedule: row.try_get("schedule")?,
                    created_at: time(row.try_get("created_at")?)?,
                    finished_at: opt_time(row.try_get("finished_at")?)?,
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
        let mut tx = self.writer.begin().await?;
        let Some((_, mut snapshot)) = load(&mut tx, Some(tenant), id).await? else {
            return Ok(RunCancel::NotFound);
        };
        let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
        let Some(plan) = engine::cancel(&mut snapshot, now) else {
            return Ok(RunCancel::AlreadyFinished(snapshot.state));
        };
        let events = apply(&mut tx, &snapshot, &before, &plan, now).await?;
        tx.commit().await?;
        for event in events {
            self.announce(event);
        }
        Ok(RunCancel::Cancelled)
    }

    async fn runs_awaiting_evaluation(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<RunId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM workflow_runs WHERE evaluate_since <= ?1 \
             ORDER BY evaluate_since LIMIT ?2",
        )
        .bind(micros(since))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|row| uuid(row, "id"))
            .collect::<Result<_, _>>()?)
    }

    async fn run_evaluations_needed(
        &self,
        id: RunId,
    ) -> Result<Option<Vec<engine::EvaluationNeeded>>, StoreError> {
        // A read transaction: the run and its steps from one snapshot, and
        // the one writer stays free while the expressions are evaluated.
        let mut tx = self.reader.begin().await?;
        let found = load(&mut tx, None, id).await?;
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
        let mut tx = self.writer.begin().await?;
        let mut charges = JobCharges::default();
        let events = advance_evaluated(&mut tx, id, evaluated, now, &mut charges).await?;
        super::charge_rates(&mut tx, &charges, now).await?;
        tx.commit().await?;
        for event in events {
            self.announce(event);
        }
        Ok(!charges.awaiting().is_empty())
    }
}
