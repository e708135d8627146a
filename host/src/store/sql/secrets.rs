//! Tenant secrets (sealed values only; see [`crate::store::secrets`]).

use async_trait::async_trait;

use super::super::{Here, dialect};
use super::{Tx, quotas};
use crate::model::Timestamp;
use crate::secrets::{MAX_SECRETS_PER_TENANT, Sealed};
use crate::store::codec::{At, List};
use crate::store::secrets::{SecretInfo, SecretStore};
use crate::store::{StoreError, within_quota};

#[derive(sqlx::FromRow)]
struct Listed {
    name: String,
    created_at: At,
    updated_at: At,
}

#[derive(sqlx::FromRow)]
struct Named {
    tenant_id: String,
    name: String,
    #[sqlx(flatten)]
    sealed: Sealed,
}

#[async_trait]
impl SecretStore for Here {
    async fn secret_put(
        &self,
        tenant: &str,
        name: &str,
        sealed: &Sealed,
        now: Timestamp,
    ) -> Result<(SecretInfo, bool), StoreError> {
        let now = crate::store::stored_time(now);
        let mut tx = Tx::begin(self).await?;
        // The tenant's row serializes its puts, so the quota holds.
        quotas::lock_tenant(tx.conn(), tenant).await?;
        let (others, exists): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM secrets WHERE tenant_id = $1 AND name <> $2), \
                    EXISTS (SELECT 1 FROM secrets WHERE tenant_id = $1 AND name = $2)",
        )
        .bind(tenant)
        .bind(name)
        .fetch_one(tx.conn())
        .await?;
        if !exists {
            within_quota(
                "secrets",
                others,
                "MAX_SECRETS_PER_TENANT",
                Some(MAX_SECRETS_PER_TENANT as i64),
            )?;
        }
        let created_at: At = sqlx::query_scalar(
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
        .bind(At(now))
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        let info = SecretInfo {
            name: name.to_string(),
            created_at: created_at.0,
            updated_at: now,
        };
        Ok((info, !exists))
    }

    async fn secret_list(&self, tenant: &str) -> Result<Vec<SecretInfo>, StoreError> {
        let rows: Vec<Listed> = sqlx::query_as(
            "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| SecretInfo {
                name: row.name,
                created_at: row.created_at.0,
                updated_at: row.updated_at.0,
            })
            .collect())
    }

    async fn secret_delete(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn secrets_sealed(
        &self,
        tenant: &str,
        names: &[String],
    ) -> Result<Vec<(String, Sealed)>, StoreError> {
        let rows: Vec<Named> = sqlx::query_as(&format!(
            "SELECT tenant_id, name, ciphertext, nonce, key_id FROM secrets \
             WHERE tenant_id = $1 AND {}",
            dialect::any("name", 2)
        ))
        .bind(tenant)
        .bind(List(names))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|r| (r.name, r.sealed)).collect())
    }

    async fn secrets_sealed_elsewhere(
        &self,
        key_id: &str,
        after: (&str, &str),
        limit: u32,
    ) -> Result<Vec<(String, String, Sealed)>, StoreError> {
        let rows: Vec<Named> = sqlx::query_as(
            "SELECT tenant_id, name, ciphertext, nonce, key_id FROM secrets \
             WHERE key_id <> $1 AND (tenant_id, name) > ($2, $3) \
             ORDER BY tenant_id, name LIMIT $4",
        )
        .bind(key_id)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.tenant_id, r.name, r.sealed))
            .collect())
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
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(replaced > 0)
    }
}
