//! Workflows on PostgreSQL.
//!
//! Locks: a run's row is its lock. Every transaction that changes a run's
//! steps (start, a step job finishing, a step job cancelled, the run
//! cancelled) takes `FOR UPDATE` on the run row *before* touching any of its
//! jobs, so writers of one run never deadlock; a batch of finishes locks its
//! runs in id order. The engine (`crate::workflow::engine`) decides; this
//! file loads, locks and writes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{CANCEL_CHANNEL, PostgresStore, RUN_CHANNEL, is_unique_violation};
use crate::model::{JobState, Timestamp};
use crate::store::workflows::{
    JobCharges, NewRun, Pinned, PinnedJob, RunCancel, RunFilter, RunHead, WorkflowStore,
    json_value, missing_workflow, new_run, plugins_to_pin, run_view, spec_value, step_jobs,
    too_large, unknown_step_plugin, validate_run_input,
};
use crate::store::{StoreError, to_i64, to_u32, to_u64};
use crate::workflow::engine::{self, CancelJobs, JobDone, Plan, Snapshot, StepRow};
use crate::workflow::{
    RunId, RunState, RunSummary, StepState, Workflow, WorkflowRun, WorkflowSpec,
};

fn workflow_from_row(row: &PgRow) -> Result<Workflow, StoreError> {
    Ok(Workflow {
        name: row.try_get("name")?,
        version: to_u32(row.try_get("version")?),
        steps: spec_value(&row.try_get::<String, _>("definition")?)?.steps,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) async fn workflow_latest(
    conn: &mut PgConnection,
    tenant: &str,
    name: &str,
    version: Option<u32>,
) -> Result<Option<Workflow>, StoreError> {
    let row = sqlx::query(
        "SELECT name, version, definition::text AS definition, created_at FROM workflows \
         WHERE tenant_id = $1 AND name = $2 AND ($3::int IS NULL OR version = $3) \
         ORDER BY version DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(name)
    .bind(version.map(|v| v as i32))
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(workflow_from_row).transpose()
}

/// The version of `plugin` a step (or a schedule's tick) pins: the given one or the latest, not
/// deleted, read `FOR SHARE` so a concurrent delete waits for this
/// transaction (and then sees the pinned step).
pub(super) async fn plugin_pin(
    conn: &mut PgConnection,
    tenant: &str,
    plugin: &str,
    version: Option<u32>,
) -> Result<Option<u32>, StoreError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT version FROM plugins WHERE tenant_id = $1 AND name = $2 \
         AND ($3::int IS NULL OR version = $3) AND deleted_at IS NULL \
         ORDER BY version DESC LIMIT 1 FOR SHARE",
    )
    .bind(tenant)
    .bind(plugin)
    .bind(version.map(|v| v as i32))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.map(to_u32))
}

/// Load a run (locking it when `lock`), its definition and its steps.
async fn load(
    conn: &mut PgConnection,
    tenant: Option<&str>,
    id: RunId,
    lock: bool,
) -> Result<Option<(RunHead, Snapshot)>, StoreError> {
    let run = sqlx::query(&format!(
        "SELECT r.tenant_id, r.workflow, r.workflow_version, r.state, r.input::text AS input, r.error, \
                r.schedule, r.created_at, r.finished_at, r.job_bytes, r.evaluate_since, \
                w.definition::text AS definition \
         FROM workflow_runs r JOIN workflows w \
           ON w.tenant_id = r.tenant_id AND w.name = r.workflow AND w.version = r.workflow_version \
         WHERE r.id = $1 AND ($2::text IS NULL OR r.tenant_id = $2) {}",
        if lock { "FOR UPDATE OF r" } else { "" }
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(run) = run else { return Ok(None) };
    let state: String = run.try_get("state")?;
    let spec = spec_value(&run.try_get::<String, _>("definition")?)?;
    let rows = sqlx::query(
        "SELECT step, state, plugin_version, job_id, \
                item_count, items_started, items_done, result::text AS result, error, skipped_by, \
                started_at, finished_at \
         FROM workflow_steps WHERE run_id = $1 ORDER BY position",
    )
    .bind(id)
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
                plugin_version: to_u32(row.try_get("plugin_version")?),
                job_id: row.try_get("job_id")?,
                result: result.as_deref().map(json_value).transpose()?,
                error: row.try_get("error")?,
                skipped_by: row.try_get("skipped_by")?,
                items: None,
                next_items: BTreeMap::new(),
                item_count: row.try_get::<Option<i32>, _>("item_count")?.map(to_u32),
                items_started: to_u32(row.try_get("items_started")?),
                items_done: to_u32(row.try_get("items_done")?),
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
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
        workflow_version: to_u32(run.try_get("workflow_version")?),
        schedule: run.try_get("schedule")?,
        created_at: run.try_get("created_at")?,
    };
    let snapshot = Snapshot {
        id,
        tenant_id: run.try_get("tenant_id")?,
        state: RunState::parse(&state).ok_or_else(|| decode(&state))?,
        error: run.try_get("error")?,
        input: json_value(&run.try_get::<String, _>("input")?)?,
        spec,
        steps,
        finished_at: run.try_get("finished_at")?,
        job_bytes: to_u64(run.try_get("job_bytes")?),
        room: engine::JobRoom::UNLIMITED,
        evaluated: engine::Evaluations::new(),
        awaiting_since: run.try_get("evaluate_since")?,
    };
    Ok(Some((head, snapshot)))
}

fn decode(what: &str) -> StoreError {
    StoreError::corrupt(format!("unexpected stored value: {what}"))
}

/// Fill in the results of fan-out steps whose last element just finished.
async fn gather(
    conn: &mut PgConnection,
    snapshot: &mut Snapshot,
    done: &[JobDone],
) -> Result<(), StoreError> {
    for i in engine::to_gather(snapshot, done) {
        // Sum the sizes before loading anything: the results are bounded together.
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT sum(octet_length(result::text)) FROM jobs WHERE workflow_run_id = $1 \
             AND workflow_step = $2 AND state = 'completed'",
        )
        .bind(snapshot.id)
        .bind(&snapshot.spec.steps[i].name)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(error) = too_large(bytes) {
            snapshot.steps[i].gathered = Some(Err(error));
            continue;
        }
        let results: Vec<String> = sqlx::query_scalar(
            "SELECT result::text FROM jobs WHERE workflow_run_id = $1 AND workflow_step = $2 \
             AND state = 'completed' ORDER BY workflow_item",
        )
        .bind(snapshot.id)
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
/// (`items -> n`): its whole array is never read back.
async fn load_next_elements(
    conn: &mut PgConnection,
    snapshot: &mut Snapshot,
    done: &[JobDone],
) -> Result<(), StoreError> {
    for (i, range) in engine::elements_to_load(snapshot, done) {
        for item in range {
            let element: Option<String> = sqlx::query_scalar(
                "SELECT (items -> $3)::text FROM workflow_steps WHERE run_id = $1 AND step = $2",
            )
            .bind(snapshot.id)
            .bind(&snapshot.spec.steps[i].name)
            .bind(item as i32)
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

/// Write what the engine decided: changed steps, new jobs, cancelled jobs,
/// the run's state. `before` holds each step's state as loaded.
async fn apply(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    before: &[StepState],
    plan: &Plan,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed: Vec<usize> = (0..snapshot.steps.len())
        .filter(|&i| snapshot.steps[i].changed)
        .collect();
    if !changed.is_empty() {
        let text = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        // `items` is written when a fan-out starts, dropped when it ends,
        // and otherwise kept as stored (it can be large).
        let items_op: Vec<&str> = changed
            .iter()
            .map(|&i| {
                let step = &snapshot.steps[i];
                if step.state.is_terminal() {
                    "clear"
                } else if before[i] == StepState::Pending && step.items.is_some() {
                    "set"
                } else {
                    "keep"
                }
            })
            .collect();
        sqlx::query(
            "UPDATE workflow_steps s SET state = u.state, job_id = u.job_id, \
                    items = CASE u.items_op WHEN 'keep' THEN s.items WHEN 'set' THEN u.items::jsonb END, \
                    item_count = u.item_count, items_started = u.items_started, items_done = u.items_done, \
                    result = u.result::jsonb, error = u.error, skipped_by = u.skipped_by, \
                    started_at = u.started_at, finished_at = u.finished_at \
             FROM UNNEST($2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::int[], $8::int[], \
                         $9::int[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[]) \
                  AS u(step, state, job_id, items_op, items, item_count, items_started, items_done, result, \
                       error, skipped_by, started_at, finished_at) \
             WHERE s.run_id = $1 AND s.step = u.step",
        )
        .bind(snapshot.id)
        .bind(changed.iter().map(|&i| snapshot.spec.steps[i].name.clone()).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].state.as_str()).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].job_id).collect::<Vec<_>>())
        .bind(&items_op)
        .bind(
            changed
                .iter()
                .zip(&items_op)
                .map(|(&i, op)| match *op {
                    "set" => snapshot.steps[i]
                        .items
                        .as_ref()
                        .map(|items| serde_json::Value::from(items.clone()).to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )
        .bind(changed.iter().map(|&i| snapshot.steps[i].item_count.map(|n| n as i32)).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].items_started as i32).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].items_done as i32).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| text(&snapshot.steps[i].result)).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].error.clone()).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].skipped_by.clone()).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].started_at).collect::<Vec<_>>())
        .bind(changed.iter().map(|&i| snapshot.steps[i].finished_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !plan.jobs.is_empty() {
        insert_pinned(conn, &snapshot.tenant_id, &step_jobs(snapshot, plan), now).await?;
        sqlx::query("UPDATE workflow_runs SET job_bytes = $2 WHERE id = $1")
            .bind(snapshot.id)
            .bind(to_i64(snapshot.job_bytes))
            .execute(&mut *conn)
            .await?;
    }
    let cancel_steps: Option<Vec<String>> = match &plan.cancel {
        CancelJobs::None => None,
        CancelJobs::Steps(steps) => Some(steps.clone()),
        CancelJobs::All => Some(Vec::new()),
    };
    if let Some(steps) = cancel_steps {
        // Waiting jobs are cancelled now; running ones are asked to stop
        // (their hosts hear it on `corral_cancel` or at the next heartbeat).
        let all = steps.is_empty();
        sqlx::query(
            "WITH cancelled AS ( \
                UPDATE jobs SET \
                    state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END, \
                    cancel_requested = TRUE, \
                    finished_at = CASE WHEN state = 'running' THEN NULL ELSE $3 END, \
                    error = CASE WHEN state = 'running' THEN error ELSE 'cancelled with its workflow step or run' END \
                WHERE workflow_run_id = $1 AND ($4 OR workflow_step = ANY($2)) \
                  AND state NOT IN ('completed', 'dead', 'cancelled') \
                RETURNING id, state \
             ) \
             SELECT pg_notify($5, id::text) FROM cancelled WHERE state = 'running'",
        )
        .bind(snapshot.id)
        .bind(&steps)
        .bind(now)
        .bind(all)
        .bind(CANCEL_CHANNEL)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(state) = plan.finished {
        sqlx::query(
            "UPDATE workflow_runs SET state = $2, error = $3, finished_at = $4 WHERE id = $1",
        )
        .bind(snapshot.id)
        .bind(state.as_str())
        .bind(&snapshot.error)
        .bind(snapshot.finished_at)
        .execute(&mut *conn)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(RUN_CHANNEL)
            .bind(format!("{} {}", snapshot.id, state.as_str()))
            .execute(&mut *conn)
            .await?;
    }
    if let Some(since) = crate::store::workflows::evaluate_since(snapshot, plan, now) {
        sqlx::query("UPDATE workflow_runs SET evaluate_since = $2 WHERE id = $1")
            .bind(snapshot.id)
            .bind(since)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Insert jobs whose plugin versions are pinned (a run's steps, a
/// schedule's tick), in one statement; `available` at `now`.
pub(super) async fn insert_pinned(
    conn: &mut PgConnection,
    tenant: &str,
    jobs: &[PinnedJob],
    now: Timestamp,
) -> Result<(), StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, tenant_id, plugin, plugin_version, digest, queue, priority, state, input, attempt, \
                           max_attempts, timeout_ms, run_at, created_at, workflow_run_id, workflow_step, \
                           workflow_item, context) \
         SELECT u.id, $1, p.name, p.version, p.digest, u.queue, u.priority, 'available', u.input::jsonb, 0, \
                COALESCE(u.max_attempts, p.max_attempts), u.timeout_ms, $2, $2, u.run, u.step, u.item, u.context::jsonb \
         FROM UNNEST($3::uuid[], $4::text[], $5::int[], $6::text[], $7::int[], $8::text[], $9::int[], \
                     $10::bigint[], $11::uuid[], $12::text[], $13::int[], $14::text[]) \
              AS u(id, plugin, version, queue, priority, input, max_attempts, timeout_ms, run, step, item, context) \
         JOIN plugins p ON p.tenant_id = $1 AND p.name = u.plugin AND p.version = u.version",
    )
    .bind(tenant)
    .bind(now)
    .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.plugin.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.version as i32).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.queue.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.input.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.max_attempts.map(|n| n as i32)).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.timeout_ms.map(to_i64)).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.run).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.step.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.item.map(|n| n as i32)).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.context.clone()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted != jobs.len() as u64 {
        return Err(StoreError::Conflict(format!(
            "{} of {} jobs found their pinned plugin version",
            inserted,
            jobs.len()
        )));
    }
    Ok(())
}

/// Advance the runs of step jobs that reached a terminal state. The
/// caller's transaction already holds these runs' locks (taken before the
/// jobs were touched); this is its last work before the commit (it ends by
/// counting the new jobs against their tenants' rates). Returns the runs
/// left waiting for an evaluation, to announce after the commit.
pub(super) async fn advance_runs(
    conn: &mut PgConnection,
    done: Vec<(RunId, JobDone)>,
    now: Timestamp,
) -> Result<Vec<RunId>, StoreError> {
    let mut by_run: BTreeMap<RunId, Vec<JobDone>> = BTreeMap::new();
    for (run, d) in done {
        by_run.entry(run).or_default().push(d);
    }
    let mut charges = JobCharges::default();
    for (run, done) in by_run {
        let Some((_, mut snapshot)) = load(conn, None, run, true).await? else {
            continue;
        };
        gather(conn, &mut snapshot, &done).await?;
        load_next_elements(conn, &mut snapshot, &done).await?;
        snapshot.room = super::job_room(conn, &snapshot.tenant_id, now, &charges).await?;
        let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
        let plan = engine::advance(&mut snapshot, &done, now);
        apply(conn, &snapshot, &before, &plan, now).await?;
        charges.planned(&snapshot, &plan);
    }
    super::charge_rates(conn, &charges, now).await?;
    Ok(charges.awaiting().to_vec())
}

/// Advance a run with evaluations made before this transaction (see
/// [`WorkflowStore::run_advance_evaluated`]); its jobs and whether it waits
/// for more go into `charges`.
async fn advance_evaluated(
    conn: &mut PgConnection,
    id: RunId,
    evaluated: engine::Evaluations,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<(), StoreError> {
    let Some((_, mut snapshot)) = load(conn, None, id, true).await? else {
        return Ok(());
    };
    snapshot.room = super::job_room(conn, &snapshot.tenant_id, now, charges).await?;
    snapshot.evaluated = evaluated;
    let before: Vec<StepState> = snapshot.steps.iter().map(|s| s.state).collect();
    let plan = engine::advance(&mut snapshot, &[], now);
    apply(conn, &snapshot, &before, &plan, now).await?;
    charges.planned(&snapshot, &plan);
    Ok(())
}

/// Lock runs, in id order (every multi-run writer uses this order).
pub(super) async fn lock_runs(conn: &mut PgConnection, runs: &[RunId]) -> Result<(), StoreError> {
    let mut runs = runs.to_vec();
    runs.sort();
    runs.dedup();
    sqlx::query("SELECT id FROM workflow_runs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&runs)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The step jobs among `ids` that are now terminal, as engine events.
pub(super) async fn finished_step_jobs(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(RunId, JobDone)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, workflow_run_id, workflow_step, workflow_item, state, result::text AS result, error \
         FROM jobs WHERE id = ANY($1) AND workflow_run_id IS NOT NULL \
           AND state IN ('completed', 'dead', 'cancelled')",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get("state")?;
            let result: Option<String> = row.try_get("result")?;
            Ok((
                row.try_get("workflow_run_id")?,
                JobDone {
                    job_id: row.try_get("id")?,
                    step: row
                        .try_get::<Option<String>, _>("workflow_step")?
                        .unwrap_or_default(),
                    item: row.try_get::<Option<i32>, _>("workflow_item")?.map(to_u32),
                    state: JobState::parse(&state).ok_or_else(|| decode(&state))?,
                    result: result.as_deref().map(json_value).transpose()?,
                    error: row.try_get("error")?,
                },
            ))
        })
        .collect()
}

/// Start a run in the caller's transaction (also used by schedules); its
/// first jobs go into `charges`, for the caller to count before it commits.
pub(super) async fn run_start_in(
    conn: &mut PgConnection,
    tenant: &str,
    run: &NewRun<'_>,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<WorkflowRun, StoreError> {
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
         VALUES ($1, $2, $3, $4, 'running', $5::jsonb, $6, $7)",
    )
    .bind(id)
    .bind(tenant)
    .bind(&workflow.name)
    .bind(workflow.version as i32)
    .bind(run.input)
    .bind(run.schedule)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO workflow_steps (run_id, step, position, tenant_id, plugin, plugin_version, state) \
         SELECT $1, u.step, u.position, $2, u.plugin, u.version, 'pending' \
         FROM UNNEST($3::text[], $4::int[], $5::text[], $6::int[]) AS u(step, position, plugin, version)",
    )
    .bind(id)
    .bind(tenant)
    .bind(snapshot.spec.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
    .bind((0..snapshot.steps.len() as i32).collect::<Vec<_>>())
    .bind(snapshot.spec.steps.iter().map(|s| s.plugin.clone()).collect::<Vec<_>>())
    .bind(snapshot.steps.iter().map(|s| s.plugin_version as i32).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    snapshot.room = super::job_room(conn, tenant, now, charges).await?;
    let before = vec![StepState::Pending; snapshot.steps.len()];
    let plan = engine::advance(&mut snapshot, &[], now);
    apply(conn, &snapshot, &before, &plan, now).await?;
    charges.planned(&snapshot, &plan);
    let head = RunHead {
        workflow: workflow.name,
        workflow_version: workflow.version,
        schedule: run.schedule.map(str::to_string),
        created_at: now,
    };
    Ok(run_view(head, &snapshot))
}

#[async_trait]
impl WorkflowStore for PostgresStore {
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
        let mut tx = self.pool.begin().await?;
        for step in &spec.steps {
            if plugin_pin(&mut tx, tenant, &step.plugin, step.version)
                .await?
                .is_none()
            {
                return Err(unknown_step_plugin(&step.name, &step.plugin, step.version));
            }
        }
        // Versions of one name are numbered one at a time.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('workflow/' || $1 || '/' || $2, 0))",
        )
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?;
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
                "SELECT (SELECT count(DISTINCT name) FROM workflows WHERE tenant_id = $1), \
                    (SELECT max_workflows::bigint FROM tenants WHERE id = $1), \
                    (SELECT max_workflow_versions::bigint FROM tenants WHERE id = $1)",
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
             SELECT $1, $2, COALESCE(max(version), 0) + 1, $3::jsonb, $4 FROM workflows \
             WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .bind(&definition)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if super::is_foreign_key_violation(&e) => {
                return Err(StoreError::unknown_tenant(tenant));
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "workflow `{name}` changed at the same time; send it again"
                )));
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
        let mut conn = self.pool.acquire().await?;
        workflow_latest(&mut conn, tenant, name, version).await
    }

    async fn workflow_list(&self, tenant: &str) -> Result<Vec<Workflow>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (name) name, version, definition::text AS definition, created_at \
             FROM workflows WHERE tenant_id = $1 ORDER BY name, version DESC",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
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
            && let Some(stored) = super::request_key_find(&self.pool, tenant, key).await?
        {
            return crate::store::workflows::replayed_run(self, tenant, key, stored).await;
        }
        let mut tx = self.pool.begin().await?;
        let mut charges = JobCharges::default();
        let started = run_start_in(&mut tx, tenant, run, now, &mut charges).await?;
        super::charge_rates(&mut tx, &charges, now).await?;
        if let Some(key) = run.key {
            let answer = crate::store::request_keys::answer([started.id]);
            if !super::request_key_put(&mut tx, tenant, key, &answer, now).await? {
                // Another request took the key since it was looked up.
                tx.rollback().await?;
                let stored = super::request_key_find(&self.pool, tenant, key)
                    .await?
                    .ok_or_else(|| StoreError::Conflict("an idempotency key vanished".into()))?;
                return crate::store::workflows::replayed_run(self, tenant, key, stored).await;
            }
        }
        tx.commit().await?;
        self.announce_awaiting(charges.awaiting());
        Ok((started, true))
    }

    async fn run_get(&self, tenant: &str, id: RunId) -> Result<Option<WorkflowRun>, StoreError> {
        // One snapshot of the run and its steps (REPEATABLE READ would be
        // stricter; the steps are read in one statement after the run, and
        // a step only moves forward, so the view is at worst a moment newer).
        let mut conn = self.pool.acquire().await?;
        Ok(load(&mut conn, Some(tenant), id, false)
            .await?
            .map(|(head, snapshot)| run_view(head, &snapshot)))
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
             FROM workflow_runs WHERE tenant_id = $1 AND ($2::text IS NULL OR workflow = $2) \
             AND ($3::text IS NULL OR state = $3) AND ($4::uuid IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
        )
        .bind(tenant)
        .bind(&filter.workflow)
        .bind(filter.state.map(|s| s.as_str()))
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(RunSummary {
                    id: row.try_get("id")?,
                    workflow: row.try_get("workflow")?,
                    workflow_version: to_u32(row.try_get("workflow_version")?),
                    state: RunState::parse(&state).ok_or_else(|| decode(&state))?,
                    error: row.try_get("error")?,
                    schedule: row.try_get("schedule")?,
                    created_at: row.try_get("created_at")?,
                    finished_at: row.try_get("finished_at")?,
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
        let mut tx = self.pool.begin().await?;
        let Some((_, mut snapshot)) = load(&mut tx, Some(tenant), id, true).await? else {
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
        Ok(sqlx::query_scalar(
            "SELECT id FROM workflow_runs WHERE evaluate_since <= $1 \
             ORDER BY evaluate_since LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn run_evaluations_needed(
        &self,
        id: RunId,
    ) -> Result<Option<Vec<engine::EvaluationNeeded>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(load(&mut conn, None, id, false)
            .await?
            .and_then(|(_, snapshot)| engine::evaluations_needed(snapshot, chrono::Utc::now())))
    }

    async fn run_advance_evaluated(
        &self,
        id: RunId,
        evaluated: engine::Evaluations,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = self.pool.begin().await?;
        let mut charges = JobCharges::default();
        advance_evaluated(&mut tx, id, evaluated, now, &mut charges).await?;
        super::charge_rates(&mut tx, &charges, now).await?;
        tx.commit().await?;
        Ok(!charges.awaiting().is_empty())
    }
}
