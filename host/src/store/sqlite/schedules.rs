//! Cron schedules on SQLite.

use super::SqliteStore;
use crate::store::ScheduleStore;

impl ScheduleStore for SqliteStore {}
