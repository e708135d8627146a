//! Cron schedules (docs/schedules.md): a definition as a tenant writes it,
//! and which ticks are due, computed in the schedule's time zone. Pure: the
//! store fires the ticks in its transactions.
//!
//! Cron expressions are parsed by `croner` (5 fields, or 6 with seconds
//! first; `L`, `W`, `#` and names like `MON` work), time zones by
//! `chrono-tz` (IANA names). Daylight saving time follows croner's rules: a
//! fixed-time tick that falls in a spring-forward gap fires once at the
//! first instant after the gap (02:30 becomes 03:00), one in a fall-back
//! overlap fires once (at its first occurrence); interval patterns (`*/15`,
//! every hour) keep their pace in real time.

use std::str::FromStr;

use chrono::TimeZone;

use crate::model::Timestamp;
use crate::workflow::RunId;

/// Ticks one schedule fires in one pass when catching up. A schedule that
/// fires every second and was down for a day would otherwise make one pass
/// create 86,400 jobs in one transaction; the rest fire in the next passes.
pub const MAX_CATCH_UP_TICKS: usize = 100;
/// Length of a cron expression: bounds the parser's work.
pub const MAX_CRON_BYTES: usize = 256;
/// Fired ticks shown with a schedule (`GET /v1/schedules/{name}`), newest first.
pub const RECENT_TICKS: u32 = 10;

/// A schedule as a tenant writes it and as it is stored, its target and
/// its fired ticks: the API's types.
pub use corral_client::api::{Schedule, ScheduleSpec, Target, TargetKind, Tick};

/// A tick fired by one pass, for the scheduler's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredTick {
    pub tenant_id: String,
    pub schedule: String,
    pub tick: Timestamp,
    pub job_id: Option<uuid::Uuid>,
    pub run_id: Option<RunId>,
    pub error: Option<String>,
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
}

impl Cron {
    /// Parse `expression` in `timezone`; the error names what is wrong.
    pub fn parse(expression: &str, timezone: &str) -> Result<Cron, String> {
        if expression.len() > MAX_CRON_BYTES {
            return Err(format!(
                "cron expression is {} bytes; the limit is {MAX_CRON_BYTES}",
                expression.len()
            ));
        }
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "cron expression `{expression}` has {fields} fields; it needs 5 (minute hour day month weekday) or 6 (seconds first)"
            ));
        }
        let cron = croner::Cron::from_str(expression)
            .map_err(|e| format!("cron expression `{expression}` is not valid: {e}"))?;
        let zone = chrono_tz::Tz::from_str(timezone).map_err(|_| {
            format!(
                "time zone `{timezone}` is not an IANA time zone (like `Europe/Berlin` or `UTC`)"
            )
        })?;
        Ok(Cron { cron, zone })
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The latest tick at or before `t`.
    pub fn latest_at(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.zone), true)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// The ticks to fire at `now` for a schedule whose next unfired tick is
    /// `next` (at or before `now`), and the schedule's next tick after them.
    /// Without catch-up, only the latest tick at or before `now`; with it,
    /// every tick from `next` to `now`, at most [`MAX_CATCH_UP_TICKS`] (the
    /// next tick is then the first one left, already due).
    pub fn due(
        &self,
        next: Timestamp,
        now: Timestamp,
        catch_up: bool,
    ) -> (Vec<Timestamp>, Option<Timestamp>) {
        if !catch_up {
            let latest = self.latest_at(now).filter(|t| *t >= next).unwrap_or(next);
            return (vec![latest], self.next_after(now));
        }
        let mut ticks = Vec::new();
        let mut t = Some(next);
        while let Some(tick) = t {
            if tick > now || ticks.len() == MAX_CATCH_UP_TICKS {
                break;
            }
            ticks.push(tick);
            t = self.next_after(tick);
        }
        (ticks, t)
    }
}

/// Check a schedule's definition (everything but whether its target exists).
pub fn validate(spec: &ScheduleSpec) -> Result<Cron, String> {
    let cron = Cron::parse(&spec.cron, &spec.timezone)?;
    match spec.target.kind()? {
        TargetKind::Plugin(name) | TargetKind::Workflow(name) => {
            crate::model::Name::parse("target", name).map_err(|e| e.to_string())?;
        }
    }
    if spec.target.version == Some(0) {
        return Err("target version must be 1 or more".into());
    }
    Ok(cron)
}

/// A timestamp in a time zone, for messages: `2026-03-29 03:00:00 CEST`.
pub fn local(t: Timestamp, zone: &str) -> String {
    match chrono_tz::Tz::from_str(zone) {
        Ok(tz) => tz.from_utc_datetime(&t.naive_utc()).to_string(),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn daily_ticks_across_daylight_saving_in_berlin() {
        let cron = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // Spring forward (29 March 2026): 02:30 does not exist; it fires at 03:00 CEST.
        assert_eq!(
            cron.next_after(utc(2026, 3, 28, 12, 0)),
            Some(utc(2026, 3, 29, 1, 0))
        );
        assert_eq!(
            cron.next_after(utc(2026, 3, 29, 1, 0)),
            Some(utc(2026, 3, 30, 0, 30))
        );
        // Fall back (25 October 2026): 02:30 happens twice; it fires once.
        assert_eq!(
            cron.next_after(utc(2026, 10, 24, 12, 0)),
            Some(utc(2026, 10, 25, 0, 30))
        );
        assert_eq!(
            cron.next_after(utc(2026, 10, 25, 0, 30)),
            Some(utc(2026, 10, 26, 1, 30))
        );
    }

    #[test]
    fn without_catch_up_only_the_latest_missed_tick_fires() {
        let cron = Cron::parse("0 * * * *", "UTC").unwrap();
        let (ticks, next) = cron.due(utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 5, 30), false);
        assert_eq!(ticks, vec![utc(2026, 1, 1, 5, 0)]);
        assert_eq!(next, Some(utc(2026, 1, 1, 6, 0)));
        let (ticks, next) = cron.due(utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 5, 30), true);
        assert_eq!(ticks.len(), 5);
        assert_eq!(ticks[0], utc(2026, 1, 1, 1, 0));
        assert_eq!(next, Some(utc(2026, 1, 1, 6, 0)));
    }

    #[test]
    fn catch_up_is_bounded_per_pass() {
        let cron = Cron::parse("* * * * *", "UTC").unwrap();
        let (ticks, next) = cron.due(utc(2026, 1, 1, 0, 0), utc(2026, 1, 2, 0, 0), true);
        assert_eq!(ticks.len(), MAX_CATCH_UP_TICKS);
        assert_eq!(
            next,
            Some(utc(2026, 1, 1, 1, 40)),
            "the rest is due at once"
        );
    }

    #[test]
    fn bad_definitions_are_named() {
        for (cron, zone, want) in [
            (
                "61 * * * *",
                "UTC",
                "cron expression `61 * * * *` is not valid",
            ),
            ("* * *", "UTC", "has 3 fields; it needs 5"),
            (
                "* * * * *",
                "Mars/Olympus",
                "time zone `Mars/Olympus` is not an IANA time zone",
            ),
        ] {
            let e = Cron::parse(cron, zone).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let spec: ScheduleSpec = serde_json::from_value(serde_json::json!({
            "cron": "* * * * *", "target": {"plugin": "a", "workflow": "b"}
        }))
        .unwrap();
        assert_eq!(
            validate(&spec).unwrap_err(),
            "target needs exactly one of `plugin` and `workflow`"
        );
    }
}
