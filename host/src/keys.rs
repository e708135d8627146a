//! API keys: `corral_<key id>_<secret>`. The key id (16 hex digits) is
//! public and names the stored row; the secret (64 hex digits, 256 random
//! bits) is shown once and stored only as its SHA-256.
//!
//! Why not a password hash (argon2, bcrypt): those slow down guessing of
//! low-entropy secrets chosen by people. These secrets are 256 random bits,
//! which no amount of guessing reaches, and every API request checks one, so
//! a deliberately slow hash would only slow every request. The comparison is
//! constant-time.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "corral_";
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A freshly made key: what to store, and the token to show once.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub secret_hash: String,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed: {0}")]
pub struct RandomError(pub(crate) String);

/// Make a new key.
pub fn generate() -> Result<NewKey, RandomError> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| RandomError(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| RandomError(e.to_string()))?;
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    Ok(NewKey {
        token: format!("{PREFIX}{id}_{secret}"),
        secret_hash: hash(&secret),
        id,
    })
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Split a presented token into its key id and secret, if it has the shape of one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of =
        |s: &str, bytes: usize| s.len() == bytes * 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, ID_BYTES) && hex_of(secret, SECRET_BYTES)).then_some((id, secret))
}

/// Whether `secret` matches the stored hash, in constant time.
pub fn verify(secret: &str, stored_hash: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_verifies() {
        let key = generate().unwrap();
        let (id, secret) = parse(&key.token).expect("parses");
        assert_eq!(id, key.id);
        assert!(verify(secret, &key.secret_hash));
        assert!(!verify(&"0".repeat(64), &key.secret_hash));
        assert!(
            !key.token.contains(&key.secret_hash),
            "the token is not its hash"
        );
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "corral_",
            "corral_abc_def",
            "bearer x",
            &format!("corral_{}_{}", "g".repeat(16), "0".repeat(64)),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
