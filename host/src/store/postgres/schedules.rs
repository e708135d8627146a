//! Cron schedules on PostgreSQL.

use super::PostgresStore;
use crate::store::ScheduleStore;

impl ScheduleStore for PostgresStore {}
