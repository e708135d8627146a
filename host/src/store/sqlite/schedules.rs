//! Cron schedules on SQLite: the same rules as on PostgreSQL (see
//! `postgres/schedules.rs`); every pass is one transaction on the one writer
//! connection, so passes are serialized without row locks, and a tick's
//! row (`ON CONFLICT DO NOTHING`) still makes it fire once. Wake-ups for the
//! jobs and runs a pass starts are announced after its commit.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, Row, SqliteConnection};
use uuid::Uuid;

use super::{SqliteStore, micros, opt_time, opt_uuid, time};
use crate::model::Timestamp;
use crate::store::schedules::{ScheduleStore, queue_full, rate_used_up, validate};
use crate::store::workflows::{JobCharges, NewRun, PinnedJob};
use crate::store::{StoreError, StoreEvent, to_i64, to_u64};
use crate::workflow::RunId;
use crate::workflow::schedule::{
    Cron, FiredTick, RECENT_TICKS, Schedule, ScheduleSpec, Target, TargetKind, Tick,
};

const SCHEDULE_COLUMNS: &str =
    "name, cron, timezone, target, paused, catch_up, next_tick, created_at, updated_at";

fn schedule_from_row(row: &SqliteRow) -> Result<Schedule, StoreError> {
    let target: String = row.try_get("target")?;
    let target: Target = serde_json::from_str(&target)
        .map_err(|e| StoreError::corrupt(format!("stored schedule target does not parse: {e}")))?;
    Ok(Schedule::new(
        row.try_get("name")?,
        ScheduleSpec {
            cron: row.try_get("cron")?,
            timezone: row.try_get("timezone")?,
            target,
            paused: row.try_get("paused")?,
            catch_up: row.try_get("catch_up")?,
        },
        opt_time(row.try_get("next_tick")?)?,
        time(row.try_get("created_at")?)?,
        time(row.try_get("updated_at")?)?,
    ))
}

/// Whether the target exists for `tenant` (in the caller's transaction).
async fn check_target(
    conn: &mut SqliteConnection,
    tenant: &str,
    target: &Target,
) -> Result<(), StoreError> {
    let found = match target.kind().map_err(StoreError::Invalid)? {
        TargetKind::Plugin(plugin) => {
            super::workflows::plugin_pin(conn, tenant, plugin, target.version)
                .await?
                .is_some()
        }
        TargetKind::Workflow(workflow) => {
            super::workflows::workflow_latest(conn, tenant, workflow, target.version)
                .await?
                .is_some()
        }
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
    conn: &mut SqliteConnection,
    tenant: &str,
    schedule: &str,
    target: &Target,
    now: Timestamp,
    events: &mut Vec<StoreEvent>,
    charges: &mut JobCharges,
) -> Result<Result<(Option<Uuid>, Option<RunId>), String>, StoreError> {
    let mut savepoint = conn.begin().await?;
    // Counted only if the savepoint holds.
    let mut created = charges.clone();
    let started = start_target(&mut savepoint, tenant, schedule, target, now, &mut created).await;
    match started {
        Ok((ids, started_events)) => {
            savepoint.commit().await?;
            events.extend(started_events);
            *charges = created;
            Ok(Ok(ids))
        }
        Err(e) => {
            let why = e.into_tick_refusal()?;
            savepoint.rollback().await?;
            Ok(Err(why))
        }
    }
}

async fn start_target(
    conn: &mut SqliteConnection,
    tenant: &str,
    schedule: &str,
    target: &Target,
    now: Timestamp,
    charges: &mut JobCharges,
) -> Result<((Option<Uuid>, Option<RunId>), Vec<StoreEvent>), StoreError> {
    // The tenant's quotas hold for scheduled work too: a schedule firing
    // every second while no worker runs must not pile up a backlog, and
    // its jobs count against the enqueue rate.
    let room = super::job_room(conn, tenant, now, charges).await?;
    if room.rate_left() == 0 {
        return Err(StoreError::Conflict(rate_used_up(room.enqueue_per_minute)));
    }
    let max_queued = to_i64(room.max_queued_jobs);
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE tenant_id = ?1 \
         AND state IN ('scheduled', 'available', 'retrying') LIMIT ?2) w",
    )
    .bind(tenant)
    .bind(max_queued)
    .fetch_one(&mut *conn)
    .await?;
    if waiting >= max_queued {
        return Err(StoreError::QueueFull(queue_full(to_u64(max_queued))));
    }
    let input = target.input.to_string();
    match target.kind().map_err(StoreError::Invalid)? {
        TargetKind::Plugin(plugin) => {
            let version = super::workflows::plugin_pin(conn, tenant, plugin, target.version)
                .await?
                .ok_or_else(|| StoreError::Invalid(missing_target(target)))?;
            let id = Uuid::now_v7();
            super::workflows::insert_pinned(
                conn,
                tenant,
                &[PinnedJob {
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
                }],
                now,
            )
            .await?;
            charges.add(tenant, 1);
            Ok(((Some(id), None), vec![StoreEvent::JobsAvailable]))
        }
        TargetKind::Workflow(workflow) => {
            let (run, events) = super::workflows::run_start_in(
                conn,
                tenant,
                &NewRun {
                    workflow,
                    version: target.version,
                    input: &input,
                    schedule: Some(schedule),
                    key: None,
                },
                now,
                charges,
            )
            .await?;
            Ok(((None, Some(run.id)), events))
        }
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn schedule_put(
        &self,
        tenant: &str,
        name: &str,
        spec: &ScheduleSpec,
        now: Timestamp,
    ) -> Result<(Schedule, bool), StoreError> {
        let now = crate::store::stored_time(now);
        let cron = validate(name, spec)?;
        let mut tx = self.writer.begin().await?;
        check_target(&mut tx, tenant, &spec.target).await?;
        let (others, max, exists): (i64, Option<i64>, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM schedules WHERE tenant_id = ?1 AND name <> ?2), \
                    (SELECT max_schedules FROM tenants WHERE id = ?1), \
                    EXISTS (SELECT 1 FROM schedules WHERE tenant_id = ?1 AND name = ?2)",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            crate::store::within_quota("schedules", others, "max_schedules", max)?;
        }
        let next_tick = if spec.paused {
            None
        } else {
            cron.next_after(now)
        };
        let target = serde_json::to_string(&spec.target)
            .map_err(|e| StoreError::Invalid(format!("the target does not serialize: {e}")))?;
        // One writer: reading whether it exists, then writing, cannot race.
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM schedules WHERE tenant_id = ?1 AND name = ?2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let written = sqlx::query(
            "INSERT INTO schedules (tenant_id, name, cron, timezone, target, paused, catch_up, next_tick, \
                                    created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
                 target = excluded.target, paused = excluded.paused, catch_up = excluded.catch_up, \
                 next_tick = excluded.next_tick, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(&spec.cron)
        .bind(&spec.timezone)
        .bind(&target)
        .bind(spec.paused)
        .bind(spec.catch_up)
        .bind(next_tick.map(micros))
        .bind(micros(now))
        .execute(&mut *tx)
        .await;
        match written {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::unknown_tenant(tenant));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        let schedule = Schedule::new(
            name.to_string(),
            spec.clone(),
            next_tick,
            existing.map(time).transpose()?.unwrap_or(now),
            now,
        );
        Ok((schedule, existing.is_none()))
    }

    async fn schedule_get(&self, tenant: &str, name: &str) -> Result<Option<Schedule>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = ?1 AND name = ?2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut schedule = schedule_from_row(&row)?;
        let ticks = sqlx::query(
            "SELECT tick, job_id, run_id, error, fired_at FROM schedule_ticks \
             WHERE tenant_id = ?1 AND schedule = ?2 ORDER BY tick DESC LIMIT ?3",
        )
        .bind(tenant)
        .bind(name)
        .bind(i64::from(RECENT_TICKS))
        .fetch_all(&self.reader)
        .await?;
        schedule.recent_ticks = Some(
            ticks
                .iter()
                .map(|t| {
                    Ok(Tick {
                        tick: time(t.try_get("tick")?)?,
                        job_id: opt_uuid(t, "job_id")?,
                        run_id: opt_uuid(t, "run_id")?,
                        error: t.try_get("error")?,
                        fired_at: time(t.try_get("fired_at")?)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?,
        );
        Ok(Some(schedule))
    }

    async fn schedule_list(&self, tenant: &str) -> Result<Vec<Schedule>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = ?1 ORDER BY name"
        ))
        .bind(tenant)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn schedule_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("DELETE FROM schedules WHERE tenant_id = ?1 AND name = ?2")
                .bind(tenant)
                .bind(name)
                .execute(&self.writer)
                .await?
                .rows_affected()
                == 1,
        )
    }

    async fn schedule_pause(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Schedule>, StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE tenant_id = ?1 AND name = ?2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut schedule = schedule_from_row(&row)?;
        let next_tick = if paused {
            None
        } else {
            Cron::parse(&schedule.cron, &schedule.timezone)
                .map_err(StoreError::Invalid)?
                .next_after(now)
        };
        sqlx::query(
            "UPDATE schedules SET paused = ?3, next_tick = ?4, updated_at = ?5 \
             WHERE tenant_id = ?1 AND name = ?2",
        )
        .bind(tenant)
        .bind(name)
        .bind(paused)
        .bind(next_tick.map(micros))
        .bind(micros(now))
        .execute(&mut *tx)
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
        let mut tx = self.writer.begin().await?;
        let due = sqlx::query(
            "SELECT tenant_id, name, cron, timezone, target, catch_up, next_tick \
             FROM schedules WHERE paused = 0 AND next_tick <= ?1 ORDER BY next_tick LIMIT ?2",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut fired = Vec::new();
        let mut charges = JobCharges::default();
        let mut events = Vec::new();
        for row in &due {
            let tenant: String = row.try_get("tenant_id")?;
            let name: String = row.try_get("name")?;
            let next: Timestamp = time(row.try_get("next_tick")?)?;
            let cron = Cron::parse(
                &row.try_get::<String, _>("cron")?,
                &row.try_get::<String, _>("timezone")?,
            );
            let target: Result<Target, _> =
                serde_json::from_str(&row.try_get::<String, _>("target")?);
            let (cron, target) = match (cron, target) {
                (Ok(cron), Ok(target)) => (cron, target),
                // Stored before a change of rules (a time zone left the
                // database): stop it, visibly, instead of failing every pass.
                (Err(e), _) => {
                    tracing::warn!(%tenant, schedule = %name, error = %e, "schedule cannot be evaluated; pausing it");
                    pause_broken(&mut tx, &tenant, &name, now).await?;
                    continue;
                }
                (_, Err(e)) => {
                    tracing::warn!(%tenant, schedule = %name, error = %e, "schedule target does not parse; pausing it");
                    pause_broken(&mut tx, &tenant, &name, now).await?;
                    continue;
                }
            };
            let (ticks, next_tick) = cron.due(next, now, row.try_get("catch_up")?);
            for tick in ticks {
                let claimed: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO schedule_ticks (tenant_id, schedule, tick, fired_at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING RETURNING tick",
                )
                .bind(&tenant)
                .bind(&name)
                .bind(micros(tick))
                .bind(micros(now))
                .fetch_optional(&mut *tx)
                .await?;
                if claimed.is_none() {
                    continue; // Fired already (by another host, or before a restart).
                }
                let outcome = fire_target(
                    &mut tx,
                    &tenant,
                    &name,
                    &target,
                    now,
                    &mut events,
                    &mut charges,
                )
                .await?;
                let (job_id, run_id, error) = match outcome {
                    Ok((job, run)) => (job, run, None),
                    Err(error) => (None, None, Some(error)),
                };
                sqlx::query(
                    "UPDATE schedule_ticks SET job_id = ?4, run_id = ?5, error = ?6 \
                     WHERE tenant_id = ?1 AND schedule = ?2 AND tick = ?3",
                )
                .bind(&tenant)
                .bind(&name)
                .bind(micros(tick))
                .bind(job_id.map(|id| id.to_string()))
                .bind(run_id.map(|id| id.to_string()))
                .bind(&error)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM schedule_ticks WHERE tenant_id = ?1 AND schedule = ?2 AND tick < \
                         (SELECT tick FROM schedule_ticks WHERE tenant_id = ?1 AND schedule = ?2 \
                          ORDER BY tick DESC LIMIT 1 OFFSET ?3 - 1)",
                )
                .bind(&tenant)
                .bind(&name)
                .bind(crate::store::schedules::KEPT_TICKS)
                .execute(&mut *tx)
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
            sqlx::query("UPDATE schedules SET next_tick = ?3 WHERE tenant_id = ?1 AND name = ?2")
                .bind(&tenant)
                .bind(&name)
                .bind(next_tick.map(micros))
                .execute(&mut *tx)
                .await?;
        }
        super::charge_rates(&mut tx, &charges, now).await?;
        tx.commit().await?;
        for event in events {
            self.announce(event);
        }
        Ok(fired)
    }
}

async fn pause_broken(
    conn: &mut SqliteConnection,
    tenant: &str,
    name: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE schedules SET paused = 1, next_tick = NULL, updated_at = ?3 \
         WHERE tenant_id = ?1 AND name = ?2",
    )
    .bind(tenant)
    .bind(name)
    .bind(micros(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
