//! What a tenant may still queue, and counting what runs and ticks queued.

use super::super::dialect;
use super::Conn;
use crate::model::Timestamp;
use crate::store::codec::{At, Nat, big};
use crate::store::workflows::JobCharges;
use crate::store::{StoreError, rate_window};
use crate::workflow::engine::JobRoom;

/// What `tenant` may still queue now (its quotas and this minute's count,
/// with the jobs this transaction has created so far in `pending`): one row
/// each, so a run's advance does not count its tenant's jobs.
pub(crate) async fn job_room(
    conn: &mut Conn,
    tenant: &str,
    now: Timestamp,
    pending: &JobCharges,
) -> Result<JobRoom, StoreError> {
    let (max_queued, per_minute, used): (Nat<u64>, Nat<u64>, Nat<u64>) = sqlx::query_as(
        "SELECT t.max_queued_jobs, t.enqueue_per_minute, \
                COALESCE((SELECT r.jobs FROM tenant_enqueue_rate r \
                          WHERE r.tenant_id = t.id AND r.window_start = $2), 0) \
         FROM tenants t WHERE t.id = $1",
    )
    .bind(tenant)
    .bind(At(rate_window(now)))
    .fetch_one(&mut *conn)
    .await?;
    Ok(JobRoom {
        max_queued_jobs: max_queued.0,
        enqueue_per_minute: per_minute.0,
        enqueued_this_minute: used.0.saturating_add(pending.of(tenant)),
    })
}

/// Count `jobs` against the tenant's enqueue-rate window (the minute holding
/// `now`), unless that would take it over `per_minute`: then nothing is
/// counted and the answer is false. On PostgreSQL the statement does not
/// wait for the disk (`QUICK_COMMIT`, for the whole transaction it is in):
/// run it there on a connection of its own, never in a transaction that
/// writes what must last.
pub(crate) async fn rate_take(
    conn: &mut Conn,
    tenant: &str,
    jobs: u64,
    per_minute: u64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let taken = sqlx::query(&format!(
        "INSERT INTO tenant_enqueue_rate AS r (tenant_id, window_start, jobs) \
         SELECT $1, $2, $3 {} WHERE $3 <= $4 \
         ON CONFLICT (tenant_id) DO UPDATE SET window_start = EXCLUDED.window_start, \
             jobs = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.jobs + EXCLUDED.jobs \
                         ELSE EXCLUDED.jobs END \
         WHERE (CASE WHEN r.window_start = EXCLUDED.window_start THEN r.jobs + EXCLUDED.jobs \
                     ELSE EXCLUDED.jobs END) <= $4",
        dialect::QUICK_COMMIT
    ))
    .bind(tenant)
    .bind(At(rate_window(now)))
    .bind(big(jobs))
    .bind(big(per_minute))
    .execute(&mut *conn)
    .await;
    match taken {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(StoreError::unknown_tenant(tenant))
        }
        Err(e) => Err(e.into()),
    }
}

/// Give back `jobs` of what [`rate_take`] counted in the window holding
/// `now` (jobs that were not created after all).
pub(crate) async fn rate_return(
    conn: &mut Conn,
    tenant: &str,
    jobs: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_enqueue_rate SET jobs = CASE WHEN jobs > $3 THEN jobs - $3 ELSE 0 END \
         WHERE tenant_id = $1 AND window_start = $2",
    )
    .bind(tenant)
    .bind(At(rate_window(now)))
    .bind(big(jobs))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Count jobs that runs and ticks created against their tenants'
/// `enqueue_per_minute` (past it if need be: they are created already), in
/// tenant order: see [`JobCharges`].
pub(crate) async fn charge_rates(
    conn: &mut Conn,
    charges: &JobCharges,
    now: Timestamp,
) -> Result<(), StoreError> {
    for (tenant, jobs) in charges.iter() {
        sqlx::query(
            "INSERT INTO tenant_enqueue_rate AS r (tenant_id, window_start, jobs) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET window_start = EXCLUDED.window_start, \
                 jobs = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.jobs + EXCLUDED.jobs \
                             ELSE EXCLUDED.jobs END",
        )
        .bind(tenant)
        .bind(At(rate_window(now)))
        .bind(big(jobs))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Lock the tenant's row until the transaction ends, so the counts a quota
/// check reads still hold when the write that follows it commits (on
/// PostgreSQL `FOR NO KEY UPDATE`, which the foreign-key checks of
/// enqueues do not wait for; SQLite's one writer serializes anyway). An
/// unknown tenant is refused.
pub(crate) async fn lock_tenant(conn: &mut Conn, tenant: &str) -> Result<(), StoreError> {
    let found: Option<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM tenants WHERE id = $1 {}",
        dialect::FOR_NO_KEY_UPDATE
    ))
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::unknown_tenant(tenant)),
    }
}
