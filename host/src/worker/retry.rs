//! What happens to a job after an attempt: the outcome, the attempts left
//! and the backoff decide (docs/job-states.md, "Which outcome goes where").

use std::time::Duration;

use crate::model::{OutcomeKind, Timestamp, Transition};

/// Exponential backoff with a cap and jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failed attempt (before jitter).
    pub base: Duration,
    /// No wait is longer than this (before jitter).
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt `attempt` (1-based), before jitter:
    /// `min(cap, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap)
    }

    /// The wait with jitter: a random point in [ceiling/2, ceiling], so
    /// jobs that failed together do not all come back together.
    /// `unit` is a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt)
            .mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
    }
}

/// When a retry would run: `now` plus the backoff for the attempt, with
/// `unit` (a random number in [0, 1)) choosing the jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryClock<'a> {
    pub now: Timestamp,
    pub backoff: &'a Backoff,
    pub unit: f64,
}

/// The job's next state after attempt `attempt` (of `max_attempts`) ended
/// with `outcome`.
pub fn transition(
    outcome: OutcomeKind,
    result: Option<String>,
    message: Option<&str>,
    attempt: u32,
    max_attempts: u32,
    clock: RetryClock<'_>,
) -> Transition {
    let RetryClock { now, backoff, unit } = clock;
    let error = || message.unwrap_or(outcome.as_str()).to_string();
    match outcome {
        OutcomeKind::Completed => match result {
            Some(result) => Transition::Complete { result },
            None => Transition::Dead {
                error: "completed without a result".into(),
            },
        },
        OutcomeKind::Cancelled => Transition::Cancel,
        kind if kind.is_retryable() && attempt < max_attempts => Transition::Retry {
            run_at: now + backoff.delay(attempt, unit),
            error: error(),
        },
        _ => Transition::Dead { error: error() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(
            b.delay(3, 0.999_999_999),
            b.ceiling(3).mul_f64(0.5 + 0.999_999_999 / 2.0)
        );
        assert!(b.delay(3, 0.7) <= b.ceiling(3));
    }

    #[test]
    fn outcomes_map_to_states() {
        let b = Backoff::default();
        let clock = RetryClock {
            now: at(100),
            backoff: &b,
            unit: 0.0,
        };
        let t = |kind, attempt| transition(kind, Some("1".into()), Some("boom"), attempt, 3, clock);
        assert_eq!(
            t(OutcomeKind::Completed, 1),
            Transition::Complete { result: "1".into() }
        );
        assert_eq!(
            t(OutcomeKind::Failed, 1),
            Transition::Retry {
                run_at: at(100) + Duration::from_millis(500),
                error: "boom".into()
            }
        );
        assert_eq!(
            t(OutcomeKind::Failed, 3),
            Transition::Dead {
                error: "boom".into()
            }
        );
        for deterministic in [
            OutcomeKind::Fatal,
            OutcomeKind::InvalidResult,
            OutcomeKind::FuelExhausted,
            OutcomeKind::MemoryExceeded,
            OutcomeKind::OutputTooLarge,
        ] {
            assert!(
                matches!(t(deterministic, 1), Transition::Dead { .. }),
                "{deterministic}"
            );
        }
        for retryable in [
            OutcomeKind::Trapped,
            OutcomeKind::Timeout,
            OutcomeKind::LeaseExpired,
        ] {
            assert!(
                matches!(t(retryable, 1), Transition::Retry { .. }),
                "{retryable}"
            );
        }
        assert_eq!(t(OutcomeKind::Cancelled, 1), Transition::Cancel);
    }
}
