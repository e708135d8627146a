//! What the store keeps of cron schedules and their fired ticks
//! (docs/schedules.md). Each backend implements it in its `schedules.rs`,
//! around the pure rules of [`crate::workflow::schedule`].

use async_trait::async_trait;

use super::StoreError;
use crate::model::Timestamp;
use crate::workflow::schedule::{FiredTick, Schedule, ScheduleSpec};

/// Fired ticks kept per schedule (the newest): what a schedule shows of its
/// history. Older rows are deleted as new ticks fire; a schedule firing
/// every second would otherwise add 86,400 rows a day. (A tick older than
/// the schedule's `next_tick` never fires again, row or not.)
pub const KEPT_TICKS: i64 = 100;

/// Schedules fired by one pass at most: bounds one transaction (the rest
/// are due in the next pass, a moment later).
pub const FIRE_BATCH: u32 = 100;

#[async_trait]
pub trait ScheduleStore {
    /// Create or replace a schedule after checking its cron expression,
    /// time zone, target (the plugin or workflow must exist) and input.
    /// Its next tick is the first after `now`. True when it was created.
    async fn schedule_put(
        &self,
        tenant: &str,
        name: &str,
        spec: &ScheduleSpec,
        now: Timestamp,
    ) -> Result<(Schedule, bool), StoreError>;
    /// A schedule with its latest fired ticks.
    async fn schedule_get(&self, tenant: &str, name: &str) -> Result<Option<Schedule>, StoreError>;
    /// A tenant's schedules, by name (without their ticks).
    async fn schedule_list(&self, tenant: &str) -> Result<Vec<Schedule>, StoreError>;
    /// Delete a schedule and its ticks; false when there is none.
    async fn schedule_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// Pause, or resume (the next tick is then the first after `now`: ticks
    /// missed while paused never fire). None when there is no such schedule.
    async fn schedule_pause(
        &self,
        tenant: &str,
        name: &str,
        paused: bool,
        now: Timestamp,
    ) -> Result<Option<Schedule>, StoreError>;
    /// Fire the ticks due at `now` of up to `limit` schedules, across all
    /// tenants. Each tick is recorded once (its row's key is the schedule
    /// and the tick), in the same transaction as the job or run it starts,
    /// so any number of hosts may call this at once.
    async fn schedule_fire(&self, now: Timestamp, limit: u32)
    -> Result<Vec<FiredTick>, StoreError>;
}

/// Check a schedule before anything is stored: its name, its definition
/// and its input (the same rules as a job's).
pub(crate) fn validate(
    name: &str,
    spec: &ScheduleSpec,
) -> Result<crate::workflow::schedule::Cron, StoreError> {
    crate::model::Name::parse("schedule name", name)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let cron = crate::workflow::schedule::validate(spec).map_err(StoreError::Invalid)?;
    super::workflows::validate_run_input(&spec.target.input.to_string())?;
    Ok(cron)
}

/// Why a tick started nothing because the tenant's queue is full.
pub(crate) fn queue_full(max_queued: u64) -> String {
    format!("skipped: the tenant already has {max_queued} job(s) waiting (its max_queued_jobs)")
}

/// Why a tick started nothing because the tenant's enqueue rate is used up
/// (ticks count against it like enqueued jobs).
pub(crate) fn rate_used_up(per_minute: u64) -> String {
    format!("skipped: the tenant's enqueue_per_minute of {per_minute} was used up for this minute")
}
