//! Schedules: a cron expression in a time zone that starts a job or a
//! workflow run at each tick.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Timestamp;

/// A schedule as a tenant writes it (`PUT /v1/schedules/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with
    /// seconds first.
    pub cron: String,
    /// An IANA time zone (`Europe/Berlin`); `UTC` when absent.
    #[serde(default = "utc")]
    pub timezone: String,
    /// What each tick starts.
    pub target: Target,
    /// A paused schedule fires nothing; resuming does not fire the ticks missed.
    #[serde(default)]
    pub paused: bool,
    /// After downtime: fire every missed tick (oldest first), not only the latest.
    #[serde(default)]
    pub catch_up: bool,
}

fn utc() -> String {
    "UTC".into()
}

/// What a tick starts: a job of a plugin, or a run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A plugin: each tick enqueues a job of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// A workflow: each tick starts a run of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The version to use; the latest at each tick when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The job's (or run's) input; `{}` when absent.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// What a target names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind<'a> {
    Plugin(&'a str),
    Workflow(&'a str),
}

impl Target {
    pub fn kind(&self) -> Result<TargetKind<'_>, String> {
        match (&self.plugin, &self.workflow) {
            (Some(plugin), None) => Ok(TargetKind::Plugin(plugin)),
            (None, Some(workflow)) => Ok(TargetKind::Workflow(workflow)),
            _ => Err("target needs exactly one of `plugin` and `workflow`".into()),
        }
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub target: Target,
    pub paused: bool,
    pub catch_up: bool,
    /// The next tick to fire (none while paused).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_tick: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// The latest fired ticks, newest first (only when one schedule is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_ticks: Option<Vec<Tick>>,
}

impl Schedule {
    /// A stored schedule of this definition (no ticks).
    pub fn new(
        name: String,
        spec: ScheduleSpec,
        next_tick: Option<Timestamp>,
        created_at: Timestamp,
        updated_at: Timestamp,
    ) -> Schedule {
        Schedule {
            name,
            cron: spec.cron,
            timezone: spec.timezone,
            target: spec.target,
            paused: spec.paused,
            catch_up: spec.catch_up,
            next_tick,
            created_at,
            updated_at,
            recent_ticks: None,
        }
    }
}

/// A fired tick: what it started, or why it started nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tick {
    /// The tick's time (UTC).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub tick: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub job_id: Option<uuid::Uuid>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub run_id: Option<uuid::Uuid>,
    /// Why the tick started nothing (the plugin was deleted, the queue is full, …).
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub fired_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// By name.
    pub schedules: Vec<Schedule>,
}
