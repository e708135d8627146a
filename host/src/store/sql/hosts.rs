//! The registry of worker hosts: each writes its row while it runs, so
//! that the dashboard can list the hosts alive, idle ones included.

use super::super::Here;
use crate::model::Timestamp;
use crate::store::codec::{At, Nat};
use crate::store::{HostSeen, MAX_HOSTS_LISTED, StoreError};

pub(crate) async fn beat(store: &Here, host: &HostSeen) -> Result<(), StoreError> {
    // A host restarted under the same id starts afresh.
    sqlx::query(
        "INSERT INTO hosts (host_id, concurrency, started_at, seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (host_id) DO UPDATE SET concurrency = excluded.concurrency, \
           started_at = excluded.started_at, seen_at = excluded.seen_at",
    )
    .bind(&host.host_id)
    .bind(i64::from(host.concurrency))
    .bind(At(host.started_at))
    .bind(At(host.seen_at))
    .execute(store.writer())
    .await?;
    Ok(())
}

pub(crate) async fn leave(store: &Here, host_id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM hosts WHERE host_id = $1")
        .bind(host_id)
        .execute(store.writer())
        .await?;
    Ok(())
}

pub(crate) async fn list(store: &Here, since: Timestamp) -> Result<Vec<HostSeen>, StoreError> {
    let rows: Vec<(String, Nat<u32>, At, At)> = sqlx::query_as(
        "SELECT host_id, concurrency, started_at, seen_at FROM hosts \
         WHERE seen_at >= $1 ORDER BY host_id LIMIT $2",
    )
    .bind(At(since))
    .bind(i64::from(MAX_HOSTS_LISTED))
    .fetch_all(store.reader())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(host_id, concurrency, started_at, seen_at)| HostSeen {
            host_id,
            concurrency: concurrency.0,
            started_at: started_at.0,
            seen_at: seen_at.0,
        })
        .collect())
}

pub(crate) async fn prune(store: &Here, before: Timestamp) -> Result<u64, StoreError> {
    Ok(sqlx::query("DELETE FROM hosts WHERE seen_at < $1")
        .bind(At(before))
        .execute(store.writer())
        .await?
        .rows_affected())
}
