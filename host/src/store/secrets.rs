//! What the store keeps of tenant secrets: sealed values only (see
//! [`crate::secrets`]); the store never sees a plaintext. Each backend
//! implements it in its `secrets.rs`.

use async_trait::async_trait;

use super::StoreError;
use crate::model::Timestamp;
use crate::secrets::Sealed;

/// A secret as listed: its name and times, never its value.
pub use corral_client::api::SecretInfo;

#[async_trait]
pub trait SecretStore {
    /// Create or replace a secret. A new one past the tenant's
    /// `MAX_SECRETS_PER_TENANT` is refused (`OverQuota`). True when created.
    async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
        now: Timestamp,
    ) -> Result<(SecretInfo, bool), StoreError>;
    /// The tenant's secrets, by name.
    async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretInfo>, StoreError>;
    /// True when it existed.
    async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;
    /// The sealed values of those of `names` the tenant has.
    async fn secrets_sealed(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<Vec<(String, Sealed)>, StoreError>;
    /// Up to `limit` secrets sealed under a key other than `key_id`, of any
    /// tenant, in (tenant, name) order after `after` (for rotating the key).
    async fn secrets_sealed_elsewhere(
        &self,
        key_id: &str,
        after: (&str, &str),
        limit: u32,
    ) -> Result<Vec<(String, String, Sealed)>, StoreError>;
    /// Replace a secret's sealed value while it is still `old` (a value put
    /// meanwhile wins). True when replaced.
    async fn secret_reseal(
        &self,
        tenant: &str,
        name: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool, StoreError>;
}
