//! Failed authentications per client address: after
//! [`MAX_AUTH_FAILURES`] in one [`AUTH_FAILURE_WINDOW`], the address is
//! answered 429 (with `Retry-After`) before its key is even looked up,
//! until the window ends. Keys have 256 random bits and cannot be guessed;
//! this keeps a client that tries anyway (or a broken one in a loop) from
//! costing the database a lookup per attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed authentications one address may have in a window (the default
/// of `corral serve --max-auth-failures`).
pub const MAX_AUTH_FAILURES: u32 = 20;
/// How long failures are counted, and how long an address that had too
/// many is refused.
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most: bounds the table a client with many
/// addresses (IPv6) can make the host keep. When it is full, expired
/// entries go first, then the oldest.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

pub struct AuthFailures {
    /// Failures per window before an address is refused.
    max: u32,
    table: Mutex<HashMap<IpAddr, Window>>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures::new(MAX_AUTH_FAILURES)
    }
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl AuthFailures {
    pub fn new(max: u32) -> AuthFailures {
        AuthFailures {
            max,
            table: Mutex::default(),
        }
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// None when `address` may try; otherwise the seconds until it may.
    pub fn refused(&self, address: IpAddr, now: Instant) -> Option<u64> {
        let table = self.table();
        let window = table.get(&address)?;
        let elapsed = now.saturating_duration_since(window.started);
        (window.failures >= self.max && elapsed < AUTH_FAILURE_WINDOW)
            .then(|| (AUTH_FAILURE_WINDOW - elapsed).as_secs().max(1))
    }

    /// Count a failed authentication from `address`.
    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut table = self.table();
        if table.len() >= MAX_TRACKED_ADDRESSES && !table.contains_key(&address) {
            table.retain(|_, w| now.saturating_duration_since(w.started) < AUTH_FAILURE_WINDOW);
            if table.len() >= MAX_TRACKED_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, w)| w.started).map(|(a, _)| *a)
            {
                table.remove(&oldest);
            }
        }
        let window = table.entry(address).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.saturating_duration_since(window.started) >= AUTH_FAILURE_WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    pub fn tracked(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let failures = AuthFailures::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_AUTH_FAILURES {
            assert_eq!(failures.refused(a, t0), None);
            failures.failed(a, t0);
        }
        assert_eq!(failures.refused(a, t0), Some(60));
        assert_eq!(failures.refused(b, t0), None, "another address is not");
        assert_eq!(failures.refused(a, t0 + AUTH_FAILURE_WINDOW), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let failures = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            failures.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(failures.tracked(), MAX_TRACKED_ADDRESSES);
    }
}
