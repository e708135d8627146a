//! The one-time sign-in code of `corral serve --open`: the server opens the
//! dashboard in the operator's browser at `/ui#code=…`, and the page trades
//! the code for the session of the admin key the server knows (the one it
//! generated at first start, or `CORRAL_ADMIN_TOKEN`).
//!
//! Why a code and not the key in the address: the address is on the
//! browser's command line (which other local users can read) and may stay
//! in its history; the code works once, for [`LAUNCH_CODE_TTL`], and the
//! page removes it from the address before using it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// How long the code of `--open` signs in.
pub const LAUNCH_CODE_TTL: Duration = Duration::from_secs(600);

/// Random bytes of a code (hex in the address): not guessable within the
/// failed-attempt limits.
const CODE_BYTES: usize = 16;

struct Pending {
    code_hash: String,
    key: String,
    expires: Instant,
}

/// The code not yet used, if any.
#[derive(Default)]
pub struct LaunchCode {
    pending: Mutex<Option<Pending>>,
}

impl LaunchCode {
    /// A new code that signs in with `key`, replacing any earlier one.
    pub fn issue(&self, key: &str, now: Instant) -> Result<String, crate::keys::RandomError> {
        let mut bytes = [0u8; CODE_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| crate::keys::RandomError(e.to_string()))?;
        let code = hex::encode(bytes);
        *self.lock() = Some(Pending {
            code_hash: crate::keys::hash(&code),
            key: key.to_string(),
            expires: now + LAUNCH_CODE_TTL,
        });
        Ok(code)
    }

    /// The key `code` signs in with, once: a right code is used up; an
    /// expired one is forgotten.
    pub fn redeem(&self, code: &str, now: Instant) -> Option<String> {
        let mut pending = self.lock();
        if pending.as_ref().is_some_and(|p| p.expires <= now) {
            *pending = None;
        }
        let hash = crate::keys::hash(code);
        let matches = pending
            .as_ref()
            .is_some_and(|p| bool::from(p.code_hash.as_bytes().ct_eq(hash.as_bytes())));
        if matches {
            pending.take().map(|p| p.key)
        } else {
            None
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_signs_in_once_before_it_expires() {
        let launch = LaunchCode::default();
        let now = Instant::now();
        let code = launch.issue("corral_key", now).unwrap();
        assert_eq!(launch.redeem("0000", now), None, "a wrong code");
        assert_eq!(launch.redeem(&code, now).as_deref(), Some("corral_key"));
        assert_eq!(launch.redeem(&code, now), None, "used up");
        let late = launch.issue("corral_key", now).unwrap();
        assert_eq!(launch.redeem(&late, now + LAUNCH_CODE_TTL), None, "expired");
        // A newer code replaces the older.
        let first = launch.issue("corral_key", now).unwrap();
        let second = launch.issue("corral_key", now).unwrap();
        assert_eq!(launch.redeem(&first, now), None);
        assert!(launch.redeem(&second, now).is_some());
    }
}
