//! Tenant secrets at rest: XChaCha20-Poly1305 (the `chacha20poly1305`
//! crate) under the host's secret key, each value bound to its tenant and
//! name (the associated data), so a ciphertext moved to another row does
//! not open. Values are only ever decrypted for an attempt whose plugin's
//! allow-list names them (runtime/outbound), and are never returned,
//! logged or shown in errors (docs/http.md, "Secrets").
//!
//! The key is 32 bytes, given as 64 hex digits in `CORRAL_SECRET_KEY` or in
//! a key file (`--secret-key-file`); for the embedded default a key file is
//! generated beside the SQLite file on first start. Losing the key loses
//! every secret (they must be set again); the database alone never reveals
//! one.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};

/// Bytes of one secret's value. Secrets are tokens and keys; this bounds
/// what every attempt that names one decrypts.
pub const MAX_SECRET_BYTES: usize = 8 * 1024;
/// Secrets per tenant: bounds the rows a tenant stores.
pub const MAX_SECRETS_PER_TENANT: u64 = 100;
/// Bytes of an XChaCha20 nonce.
const NONCE_BYTES: usize = 24;

/// Why a secret could not be sealed or opened, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be 64 hex digits (32 bytes)")]
    BadKey,
    #[error("reading the secret key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("a stored secret does not open with this host's key (key {stored}, host key {host})")]
    WrongKey { stored: String, host: String },
    #[error("encrypting failed")]
    Seal,
    #[error("the random source failed: {0}")]
    Random(String),
}

/// A value as stored: ciphertext (with its tag), nonce, and which key.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    /// The first 16 hex digits of SHA-256 of the key: which key sealed it
    /// (for rotation and for a clear error with the wrong key).
    pub key_id: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// The host's secret key, and during a rotation the key it replaces (which
/// only opens values, never seals them).
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    id: String,
    previous: Option<Box<SecretKey>>,
}

impl std::fmt::Debug for SecretKey {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("id", &self.id).finish()
    }
}

impl SecretKey {
    /// From 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<SecretKey, SecretError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKey)?;
        Ok(SecretKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        let digest = Sha256::digest(bytes);
        SecretKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id: hex::encode(&digest[..8]),
            previous: None,
        }
    }

    /// This key, also opening values sealed under `previous` (the key being
    /// rotated away: docs/http.md, "Rotating the secret key").
    pub fn with_previous(mut self, previous: SecretKey) -> SecretKey {
        if previous.id != self.id {
            self.previous = Some(Box::new(SecretKey {
                previous: None,
                ..previous
            }));
        }
        self
    }

    /// The id of the previous key, when there is one.
    pub fn previous_id(&self) -> Option<&str> {
        self.previous.as_deref().map(SecretKey::id)
    }

    /// A new random key, as hex.
    pub fn generate_hex() -> Result<String, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(hex::encode(bytes))
    }

    /// Read a key file.
    pub fn from_file(path: &Path) -> Result<SecretKey, SecretError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SecretError::KeyFile(path.display().to_string(), e))?;
        SecretKey::from_hex(&text)
    }

    /// Read a key file, or create it with a new key (readable by its owner
    /// only) when there is none.
    pub fn from_file_or_generate(path: &Path) -> Result<SecretKey, SecretError> {
        if path.exists() {
            return SecretKey::from_file(path);
        }
        let key = SecretKey::generate_hex()?;
        write_private(path, &key)
            .map_err(|e| SecretError::KeyFile(path.display().to_string(), e))?;
        tracing::warn!(path = %path.display(),
            "generated a secret key for tenant secrets; back it up: without it, stored secrets cannot be read");
        SecretKey::from_hex(&key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypt `value`, bound to `tenant` and `name`.
    pub fn seal(&self, tenant: &str, name: &str, value: &str) -> Result<Sealed, SecretError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad(tenant, name),
                },
            )
            .map_err(|_| SecretError::Seal)?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
            key_id: self.id.clone(),
        })
    }

    /// Decrypt a value sealed for `tenant` and `name`, under this key or the
    /// previous one.
    pub fn open(&self, tenant: &str, name: &str, sealed: &Sealed) -> Result<String, SecretError> {
        match &self.previous {
            Some(previous) if sealed.key_id == previous.id => previous.open(tenant, name, sealed),
            _ => self.open_own(tenant, name, sealed),
        }
    }

    fn open_own(&self, tenant: &str, name: &str, sealed: &Sealed) -> Result<String, SecretError> {
        let wrong = || SecretError::WrongKey {
            stored: sealed.key_id.clone(),
            host: self.id.clone(),
        };
        if sealed.nonce.len() != NONCE_BYTES {
            return Err(wrong());
        }
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad(tenant, name),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(plain).map_err(|_| wrong())
    }
}

/// The associated data: which row a ciphertext belongs to.
fn aad(tenant: &str, name: &str) -> Vec<u8> {
    format!("corral-secret\0{tenant}\0{name}").into_bytes()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn during_a_rotation_both_keys_open_and_only_the_new_one_seals() {
        let old = SecretKey::from_hex(&"01".repeat(32)).unwrap();
        let before = old.seal("acme", "TOKEN", "v1").unwrap();
        let key = SecretKey::from_hex(&"02".repeat(32))
            .unwrap()
            .with_previous(SecretKey::from_hex(&"01".repeat(32)).unwrap());
        assert_eq!(key.previous_id(), Some(old.id()));
        assert_eq!(key.open("acme", "TOKEN", &before).unwrap(), "v1");
        let after = key.seal("acme", "TOKEN", "v2").unwrap();
        assert_eq!(after.key_id, key.id());
        assert!(old.open("acme", "TOKEN", &after).is_err());
        let stranger = SecretKey::from_hex(&"03".repeat(32)).unwrap();
        let lost = stranger.seal("acme", "TOKEN", "v0").unwrap();
        assert!(matches!(
            key.open("acme", "TOKEN", &lost),
            Err(SecretError::WrongKey { .. })
        ));
        // A "previous" key equal to the current one is no previous key.
        let same = SecretKey::from_hex(&"02".repeat(32))
            .unwrap()
            .with_previous(SecretKey::from_hex(&"02".repeat(32)).unwrap());
        assert_eq!(same.previous_id(), None);
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_row_and_key() {
        let key = SecretKey::from_hex(&SecretKey::generate_hex().unwrap()).unwrap();
        let sealed = key.seal("acme", "TOKEN", "hunter2").unwrap();
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open("acme", "TOKEN", &sealed).unwrap(), "hunter2");
        assert!(
            key.open("other", "TOKEN", &sealed).is_err(),
            "bound to its tenant"
        );
        assert!(
            key.open("acme", "OTHER", &sealed).is_err(),
            "bound to its name"
        );
        let other = SecretKey::from_hex(&SecretKey::generate_hex().unwrap()).unwrap();
        let error = other
            .open("acme", "TOKEN", &sealed)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(key.id()) && !error.contains("hunter2"),
            "{error}"
        );
        assert!(SecretKey::from_hex("abcd").is_err());
    }
}
