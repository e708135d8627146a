//! Tenant secrets on PostgreSQL (sealed values only).

use async_trait::async_trait;
use sqlx::Row;

use super::PostgresStore;
use crate::model::Timestamp;
use crate::secrets::{MAX_SECRETS_PER_TENANT, Sealed};
use crate::store::secrets::{SecretInfo, SecretStore};
use crate::store::{StoreError, within_quota};

#[async_trait]
impl SecretStore for PostgresStore {
    async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
        now: Timestamp,
    ) -> Result<(SecretInfo, bool), StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = self.pool.begin().await?;
        // The tenant's row serializes its puts, so the quota holds.
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Err(StoreError::unknown_tenant(tenant));
        }
        let (others, exists): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM secrets WHERE tenant_id = $1 AND name <> $2), \
                    EXISTS (SELECT 1 FROM secrets WHERE tenant_id = $1 AND name = $2)",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if !exists {
            within_quota(
                "secrets",
                others,
                "MAX_SECRETS_PER_TENANT",
                Some(MAX_SECRETS_PER_TENANT as i64),
            )?;
        }
        let row = sqlx::query(
            "INSERT INTO secrets (tenant_id, name, ciphertext, nonce, key_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, \
                 nonce = EXCLUDED.nonce, key_id = EXCLUDED.key_id, updated_at = EXCLUDED.updated_at \
             RETURNING created_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.key_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            SecretInfo {
                name: name.to_string(),
                created_at: row.try_get("created_at")?,
                updated_at: now,
            },
            !exists,
        ))
    }

    async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretInfo {
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn secrets_sealed(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<Vec<(String, Sealed)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, ciphertext, nonce, key_id FROM secrets WHERE tenant_id = $1 AND name = ANY($2)",
        )
        .bind(tenant)
        .bind(names)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("name")?,
                    Sealed {
                        ciphertext: row.try_get("ciphertext")?,
                        nonce: row.try_get("nonce")?,
                        key_id: row.try_get("key_id")?,
                    },
                ))
            })
            .collect()
    }

    async fn secrets_sealed_elsewhere(
        &self,
        key_id: &str,
        after: (&str, &str),
        limit: u32,
    ) -> Result<Vec<(String, String, Sealed)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, ciphertext, nonce, key_id FROM secrets \
             WHERE key_id <> $1 AND (tenant_id, name) > ($2, $3) \
             ORDER BY tenant_id, name LIMIT $4",
        )
        .bind(key_id)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("tenant_id")?,
                    row.try_get("name")?,
                    Sealed {
                        ciphertext: row.try_get("ciphertext")?,
                        nonce: row.try_get("nonce")?,
                        key_id: row.try_get("key_id")?,
                    },
                ))
            })
            .collect()
    }

    async fn secret_reseal(
        &self,
        tenant: &str,
        name: &str,
        old: &Sealed,
        new: &Sealed,
    ) -> Result<bool, StoreError> {
        let replaced = sqlx::query(
            "UPDATE secrets SET ciphertext = $4, nonce = $5, key_id = $6 \
             WHERE tenant_id = $1 AND name = $2 AND nonce = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(&old.nonce)
        .bind(&new.ciphertext)
        .bind(&new.nonce)
        .bind(&new.key_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(replaced > 0)
    }
}
