//! Tenant secrets on SQLite (sealed values only). The one writer
//! serializes puts, so the quota's count holds.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, micros, time};
use crate::model::Timestamp;
use crate::secrets::{MAX_SECRETS_PER_TENANT, Sealed};
use crate::store::secrets::{SecretInfo, SecretStore};
use crate::store::{StoreError, within_quota};

#[async_trait]
impl SecretStore for SqliteStore {
    async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
        now: Timestamp,
    ) -> Result<(SecretInfo, bool), StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = self.writer.begin().await?;
        let (tenants, others, exists): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenants WHERE id = ?1), \
                    (SELECT count(*) FROM secrets WHERE tenant_id = ?1 AND name <> ?2), \
                    EXISTS (SELECT 1 FROM secrets WHERE tenant_id = ?1 AND name = ?2)",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if tenants == 0 {
            return Err(StoreError::unknown_tenant(tenant));
        }
        let exists = exists != 0;
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, \
                 nonce = excluded.nonce, key_id = excluded.key_id, updated_at = excluded.updated_at \
             RETURNING created_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.key_id)
        .bind(micros(now))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            SecretInfo {
                name: name.to_string(),
                created_at: time(row.try_get("created_at")?)?,
                updated_at: now,
            },
            !exists,
        ))
    }

    async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = ?1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SecretInfo {
                    name: row.try_get("name")?,
                    created_at: time(row.try_get("created_at")?)?,
                    updated_at: time(row.try_get("updated_at")?)?,
                })
            })
            .collect()
    }

    async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM secrets WHERE tenant_id = ?1 AND name = ?2")
            .bind(tenant)
            .bind(name)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn secrets_sealed(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<Vec<(String, Sealed)>, StoreError> {
        let names = serde_json::to_string(names)
            .map_err(|e| StoreError::Invalid(format!("secret names: {e}")))?;
        let rows = sqlx::query(
            "SELECT name, ciphertext, nonce, key_id FROM secrets \
             WHERE tenant_id = ?1 AND name IN (SELECT value FROM json_each(?2))",
        )
        .bind(tenant)
        .bind(names)
        .fetch_all(&self.reader)
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
             WHERE key_id <> ?1 AND (tenant_id, name) > (?2, ?3) \
             ORDER BY tenant_id, name LIMIT ?4",
        )
        .bind(key_id)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
            "UPDATE secrets SET ciphertext = ?4, nonce = ?5, key_id = ?6 \
             WHERE tenant_id = ?1 AND name = ?2 AND nonce = ?3",
        )
        .bind(tenant)
        .bind(name)
        .bind(&old.nonce)
        .bind(&new.ciphertext)
        .bind(&new.nonce)
        .bind(&new.key_id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(replaced > 0)
    }
}
