//! Cron schedules, written once.
//!
//! Firing: one transaction per pass claims due schedules (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL, so hosts firing at once share the work instead of
//! waiting on each other; SQLite's one writer serializes passes), inserts
//! one `schedule_ticks` row per tick (`ON CONFLICT DO NOTHING`: the row's
//! key, schedule and tick, is what makes a tick fire exactly once, whatever
//! the number of hosts and however often they try), and enqueues the tick's
//! job or starts its run in the same transaction. A target that cannot be
//! started (its plugin deleted, the queue full) rolls back to a savepoint
//! and records why on the tick.

use async_trait::async_trait;
use uuid::Uuid;

use super::super::{Here, dialect};
use super::workflows::{insert_pinned, plugin_pin, run_start_in, workflow_latest};
use super::{Conn, Tx, quotas};
use crate::model::PinnedJob;
use crate::model::Timestamp;
use crate::store::StoreError;
use crate::store::codec::{At, Id, Json, big};
use crate::store::schedules::{KEPT_TICKS, ScheduleStore, queue_full, rate_used_up, validate};
use crate::store::workflows::{JobCharges, NewRun};
use crate::workflow::RunId;
use crate::workflow::schedule::{
    Cron, FiredTick, RECENT_TICKS, Schedule, ScheduleSpec, Target, TargetKind, Tick,
};

const SCHEDULE_COLUMNS: &str =
    "name, cron, timezone, target, paused, catch_up, next_tick, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    name: String,
    cron: String,
    timezone: String,
    target: Json,
    paused: bool,
    catch_up: bool,
    next_tick: Option<At>,
    created_at: At,
    updated_at: At,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = StoreError;
    fn try_from(row: ScheduleRow) -> Result<Schedule, StoreError> {
        let target: Target = serde_json::from_str(&row.target.0).map_err(|e| {
            StoreError::corrupt(format!("stored schedule target does not parse: {e}"))
        })?;
        let spec = ScheduleSpec {
            cron: row.cron,
            timezone: row.timezone,
            target,
            paused: row.paused,
            catch_up: row.catch_up,
        };
        let next = row.next_tick.map(|t| t.0);
        Ok(Schedule::new(
            row.name,
            spec,
            next,
            row.created_at.0,
            row.updated_at.0,
        ))
    }
}

#[derive(sqlx::FromRow)]
struct TickRow {
    tick: At,
    job_id: Option<Id>,
    run_id: Option<Id>,
    error: Option<String>,
    fired_at: At,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    tenant_id: String,
    name: String,
    cron: String,
    timezone: String,
    target: Json,
    catch_up: bool,
    next_tick: At,
}

/// Whether the target exists for `tenant` (in the caller's transaction).
async fn check_target(conn: &mut Conn, tenant: &str, target: &Target) -> Result<(), StoreError> {
    let found = match target.kind().map_err(StoreError::Invalid)? {
        TargetKind::Plugin(plugin) => plugin_pin(conn, tenant, plugin, target.version)
            .await?
            .is_some(),
        TargetKind::Workflow(workflow) => workflow_latest(conn, tenant, workflow, target.version)
            .await?
            .is_some(),
    };
    if found {
        Ok(())
    } else {
        Err(StoreError::Invalid(missing_target(target)))
    }
}

fn missing_target(target: &Target) -> String {
    let (what, name) = match target.kind() {
        Ok(TargetKind::Plugin(name)) => ("plugin", name),
        Ok(TargetKind::Workflow(name)) => ("workflow", name),
        Err(e) => return e,
    };
    match target.version {
        Some(v) => format!("target {what} `{name}` has no version {v}"),
        None => format!("target {what} `{name}` does not exist"),
    }
}

/// Start one tick's target in a savepoint: the job's or run's id, or why
/// nothing was started (then nothing of it is kept).
async fn fire_target(
    tx: &mut Tx<'_>,
    tenant: &str,
    schedule: &str,
    target: &Target,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<Result<(Option<Uuid>, Option<RunId>), String>, StoreError> {
    let savepoint = tx.savepoint().await?;
    // Counted only if the savepoint holds.
    let mut created = charges.clone();
    match start_target(tx, tenant, schedule, target, now, &mut created).await {
        Ok(ids) => {
            tx.release(savepoint).await?;
            *charges = created;
            Ok(Ok(ids))
        }
        Err(e) => {
            let why = e.into_tick_refusal()?;
            tx.rollback_to(savepoint).await?;
            Ok(Err(why))
        }
    }
}

async fn start_target(
    tx: &mut Tx<'_>,
    tenant: &str,
    schedule: &str,
    target: &Target,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<(Option<Uuid>, Option<RunId>), StoreError> {
    // The tenant's quotas hold for scheduled work too: a schedule firing
    // every second while no worker runs must not pile up a backlog, and
    // its jobs count against the enqueue rate.
    let room = quotas::job_room(tx.conn(), tenant, now, charges).await?;
    if room.rate_left() == 0 {
        return Err(StoreError::Conflict(rate_used_up(room.enqueue_per_minute)));
    }
    let max_queued = big(room.max_queued_jobs);
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE tenant_id = $1 \
         AND state IN ('scheduled', 'available', 'retrying') LIMIT $2) w",
    )
    .bind(tenant)
    .bind(max_queued)
    .fetch_one(tx.conn())
    .await?;
    if waiting >= max_queued {
        return Err(StoreError::QueueFull(queue_full(room.max_queued_jobs)));
    }
    let input = target.input.to_string();
    match target.kind().map_err(StoreError::Invalid)? {
        TargetKind::Plugin(plugin) => {
            let version = plugin_pin(tx.conn(), tenant, plugin, target.version)
                .await?
                .ok_or_else(|| StoreError::Invalid(missing_target(target)))?;
            let id = Uuid::now_v7();
            let job = PinnedJob {
                id,
                plugin: plugin.to_string(),
                version,
                queue: crate::model::default_queue(),
                priority: 0,
                input,
                max_attempts: None,
                timeout_ms: None,
                run: None,
                step: None,
                item: None,
                context: None,
            };
            insert_pinned(tx, tenant, &[job], now).await?;
            charges.add(tenant, 1);
            Ok((Some(id), None))
        }
        TargetKind::Workflow(workflow) => {
            let run = NewRun {
                workflow,
                version: target.version,
                input: &input,
                schedule: Some(schedule),
                key: None,
            };
            let run = run_start_in(tx, tenant, &run, now, charges).await?;
            Ok((None, Some(run.id)))
        }
    }
}

#[async_trait]
impl ScheduleStore for Here {
    async fn schedule_put(
        &self,
        tenant: &str,
        name: &str,
        spec: &ScheduleSpec,
        now: Timestamp,
    ) -> Result<(Schedule, bool), StoreError> {
        let now = crate::store::stored_time(now);
        let cron = validate(name, spec)?;
        let mut tx = Tx::begin(self).await?;
        check_target(tx.conn(), tenant, &spec.target).await?;
        // The tenant's row serializes its puts, so the quota and whether
        // the schedule existed hold.
        quotas::lock_tenant(tx.conn(), tenant).await?;
        let (others, max, existing): (i64, Option<i64>, Option<At>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM schedules WHERE tenant_id = $1 AND name <> $2), \
                    (SELECT CAST(max_schedules AS BIGINT) FROM tenants WHERE id = $1), \
                    (SELECT created_at FROM schedules WHERE tenant_id = $1 AND name = $2)",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(tx.conn())
        .await?;
        if existing.is_none() {
            crate::store::within_quota("schedules", others, "max_schedules", max)?;
        }
        let next_tick = if spec.paused {
            None
        } else {
            cron.next_after(now)
        };
        let target = serde_json::to_string(&spec.target)
            .map_err(|e| StoreError::Invalid(format!("the target does not serialize: {e}")))?;
        sqlx::query(
            "INSERT INTO schedules (tenant_id, name, cron, timezone, target, paused, catch_up, next_tick, \
                                    created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, \
                 target = EXCLUDED.target, paused = EXCLUDED.paused, catch_up = EXCLUDED.catch_up, \
                 next_tick = EXCLUDED.next_tick, updated_at = EXCLUDED.updated_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(&spec.cron)
        .bind(&spec.timezone)
        .bind(Json(target))
        .bind(spec.paused)
        .bind(spec.catch_up)
        .bind(next_tick.map(At))
        .bind(At(now))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        let created_at = existing.map_or(now, |at| at.0);
        let schedule = Schedule::new(name.to_string(), spec.clone(), next_tick, created_at, now);
        Ok((schedule, existing.is_none()))
    }

    async fn schedule_get(&self, tenant: &str, name: &str) -> Result<Option<Schedule>, StoreError> {
        let row: Option<ScheduleRow> = sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut schedule = Schedule::try_from(row)?;
        let ticks: Vec<TickRow> = sqlx::query_as(
            "SELECT tick, job_id, run_id, error, fired_at FROM schedule_ticks \
             WHERE tenant_id = $1 AND schedule = $2 ORDER BY tick DESC LIMIT $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(i64::from(RECENT_TICKS))
        .fetch_all(self.reader())
        .await?;
        let ticks = ticks.into_iter().map(|t| Tick {
            tick: t.tick.0,
            job_id: t.job_id.map(|id| id.0),
            run_id: t.run_id.map(|id| id.0),
            error: t.error,
            fired_at: t.fired_at.0,
        });
        schedule.recent_ticks = Some(ticks.collect());
        Ok(Some(schedule))
    }

    async fn schedule_list(&self, tenant: &str) -> Result<Vec<Schedule>, StoreError> {
        let rows: Vec<ScheduleRow> = sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(Schedule::try_from).collect()
    }

    async fn schedule_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM schedules WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn schedule_pause(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Schedule>, StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = Tx::begin(self).await?;
        let row: Option<ScheduleRow> = sqlx::query_as(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = $1 AND name = $2 {}",
            dialect::FOR_UPDATE
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut schedule = Schedule::try_from(row)?;
        let next_tick = if paused {
            None
        } else {
            Cron::parse(&schedule.cron, &schedule.timezone)
                .map_err(StoreError::Invalid)?
                .next_after(now)
        };
        sqlx::query(
            "UPDATE schedules SET paused = $3, next_tick = $4, updated_at = $5 \
             WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .bind(paused)
        .bind(next_tick.map(At))
        .bind(At(now))
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        schedule.paused = paused;
        schedule.next_tick = next_tick;
        schedule.updated_at = now;
        Ok(Some(schedule))
    }

    async fn schedule_fire(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<FiredTick>, StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = Tx::begin(self).await?;
        let due: Vec<DueRow> = sqlx::query_as(&format!(
            "SELECT tenant_id, name, cron, timezone, target, catch_up, next_tick \
             FROM schedules WHERE NOT paused AND next_tick <= $1 ORDER BY next_tick LIMIT $2 {}",
            dialect::SKIP_LOCKED
        ))
        .bind(At(now))
        .bind(i64::from(limit))
        .fetch_all(tx.conn())
        .await?;
        let mut fired = Vec::new();
        let mut charges = JobCharges::default();
        for row in due {
            let (tenant, name) = (row.tenant_id, row.name);
            let cron = Cron::parse(&row.cron, &row.timezone);
            let target: Result<Target, _> = serde_json::from_str(&row.target.0);
            let (cron, target) = match (cron, target) {
                (Ok(cron), Ok(target)) => (cron, target),
                // Stored before a change of rules (a time zone left the
                // database): stop it, visibly, instead of failing every pass.
                (Err(e), _) => {
                    tracing::warn!(%tenant, schedule = %name, error = %e, "schedule cannot be evaluated; pausing it");
                    pause_broken(tx.conn(), &tenant, &name, now).await?;
                    continue;
                }
                (_, Err(e)) => {
                    tracing::warn!(%tenant, schedule = %name, error = %e, "schedule target does not parse; pausing it");
                    pause_broken(tx.conn(), &tenant, &name, now).await?;
                    continue;
                }
            };
            let (ticks, next_tick) = cron.due(row.next_tick.0, now, row.catch_up);
            for tick in ticks {
                let claimed: Option<At> = sqlx::query_scalar(
                    "INSERT INTO schedule_ticks (tenant_id, schedule, tick, fired_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING RETURNING tick",
                )
                .bind(&tenant)
                .bind(&name)
                .bind(At(tick))
                .bind(At(now))
                .fetch_optional(tx.conn())
                .await?;
                if claimed.is_none() {
                    continue; // Fired already (by another host, or before a restart).
                }
                let outcome =
                    fire_target(&mut tx, &tenant, &name, &target, now, &mut charges).await?;
                let (job_id, run_id, error) = match outcome {
                    Ok((job, run)) => (job, run, None),
                    Err(error) => (None, None, Some(error)),
                };
                sqlx::query(
                    "UPDATE schedule_ticks SET job_id = $4, run_id = $5, error = $6 \
                     WHERE tenant_id = $1 AND schedule = $2 AND tick = $3",
                )
                .bind(&tenant)
                .bind(&name)
                .bind(At(tick))
                .bind(job_id.map(Id))
                .bind(run_id.map(Id))
                .bind(&error)
                .execute(tx.conn())
                .await?;
                sqlx::query(
                    "DELETE FROM schedule_ticks WHERE tenant_id = $1 AND schedule = $2 AND tick < \
                         (SELECT tick FROM schedule_ticks WHERE tenant_id = $1 AND schedule = $2 \
                          ORDER BY tick DESC LIMIT 1 OFFSET $3 - 1)",
                )
                .bind(&tenant)
                .bind(&name)
                .bind(KEPT_TICKS)
                .execute(tx.conn())
                .await?;
                fired.push(FiredTick {
                    tenant_id: tenant.clone(),
                    schedule: name.clone(),
                    tick,
                    job_id,
                    run_id,
                    error,
                });
            }
            sqlx::query("UPDATE schedules SET next_tick = $3 WHERE tenant_id = $1 AND name = $2")
                .bind(&tenant)
                .bind(&name)
                .bind(next_tick.map(At))
                .execute(tx.conn())
                .await?;
        }
        quotas::charge_rates(tx.conn(), &charges, now).await?;
        tx.commit().await?;
        Ok(fired)
    }
}

async fn pause_broken(
    conn: &mut Conn,
    tenant: &str,
    name: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE schedules SET paused = TRUE, next_tick = NULL, updated_at = $3 \
         WHERE tenant_id = $1 AND name = $2",
    )
    .bind(tenant)
    .bind(name)
    .bind(At(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
