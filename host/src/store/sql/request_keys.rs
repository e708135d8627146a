//! Idempotency keys as stored (the rules are in [`crate::store::request_keys`]).

use super::Conn;
use crate::model::Timestamp;
use crate::store::StoreError;
use crate::store::codec::{At, Json};
use crate::store::request_keys::{RequestKey, StoredKey};

/// The row of a tenant's idempotency key, if the key was used.
pub(crate) async fn find<'e>(
    executor: impl sqlx::Executor<'e, Database = super::super::Db>,
    tenant: &str,
    key: &RequestKey,
) -> Result<Option<StoredKey>, StoreError> {
    let row: Option<(String, Json)> = sqlx::query_as(
        "SELECT fingerprint, answer FROM request_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key.key())
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|(fingerprint, answer)| StoredKey {
        fingerprint,
        answer: answer.0,
    }))
}

/// Store a key with its answer; false when another request took it first.
pub(crate) async fn put(
    conn: &mut Conn,
    tenant: &str,
    key: &RequestKey,
    answer: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO request_keys (tenant_id, key, fingerprint, answer, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(key.key())
    .bind(key.fingerprint())
    .bind(Json(answer.to_string()))
    .bind(At(now))
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}
