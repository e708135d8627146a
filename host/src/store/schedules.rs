//! What the store keeps of cron schedules and their fired ticks
//! (docs/schedules.md). Each backend implements it in its `schedules.rs`.

use async_trait::async_trait;

#[async_trait]
pub trait ScheduleStore {}
