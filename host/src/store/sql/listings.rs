//! What a person reading a tenant's jobs asks (the jobs list and its
//! filters, the counts and groups of the dashboard), written once.
//!
//! Every read here is bounded by the rows it examines, not only by the rows
//! it returns: a filter is a walk down the time-ordered ids of the tenant's
//! jobs that stops after a fixed number of them (the *floor*), so a filter
//! that matches nothing in a million jobs costs the same as one that
//! matches every job.

use uuid::Uuid;

use super::super::{Here, dialect};
use super::batches;
use crate::model::{JobId, JobState, Timestamp};
use crate::store::codec::{At, Id, Nat};
use crate::store::rows::{JOB_COLUMNS, JobRow, LISTED_JOB_COLUMNS};
use crate::store::{
    DEAD_GROUP_ERROR_CHARS, DEAD_GROUP_SCAN, DeadGroup, FinishedMinute, JobCount, JobFilter,
    JobOverview, JobPage, MAX_DEAD_GROUPS, MAX_SCANNED_PER_COUNT, MAX_SCANNED_PER_PAGE,
    OVERVIEW_MINUTES, StoreError, first_id_at,
};

/// The ids a filter may reach: `lo <= id < hi`.
#[derive(Clone, Copy)]
struct Range {
    lo: Option<Uuid>,
    hi: Option<Uuid>,
}

impl Range {
    /// The filter's time bounds, below the cursor `after` (exclusive).
    fn of(filter: &JobFilter, after: Option<JobId>) -> Range {
        let hi = [after, filter.created_before.map(first_id_at)]
            .into_iter()
            .flatten()
            .min();
        Range {
            lo: filter.created_after.map(first_id_at),
            hi,
        }
    }
}

/// Index and condition of a walk down a tenant's jobs (the floor's and the
/// read's): a state with a partial index of its own (dead letters, running
/// jobs) is walked there, so the bound counts jobs of that state and the
/// read skips the rest; any other filter walks every job of the tenant.
fn walk(filter: &JobFilter) -> (String, &'static str) {
    match filter.state {
        Some(JobState::Dead) => (dialect::indexed_by("jobs_dead"), "AND state = 'dead'"),
        Some(JobState::Running) => (dialect::indexed_by("jobs_running"), "AND state = 'running'"),
        _ => (dialect::indexed_by("jobs_tenant_id"), ""),
    }
}

/// The id of the `scan`-th job of the walk (newest first) within `range`:
/// the lowest id a bounded read may examine. None when fewer remain (the
/// read may go to the range's end).
async fn floor(
    store: &Here,
    tenant: &str,
    filter: &JobFilter,
    range: Range,
    scan: u32,
) -> Result<Option<Uuid>, StoreError> {
    let (index, state) = walk(filter);
    let hi = if range.hi.is_some() {
        "AND id < $2"
    } else {
        ""
    };
    let lo = if range.lo.is_some() {
        "AND id >= $3"
    } else {
        ""
    };
    let id: Option<Id> = sqlx::query_scalar(&format!(
        "SELECT id FROM jobs {index} WHERE tenant_id = $1 {state} {hi} {lo} \
         ORDER BY id DESC LIMIT 1 OFFSET $4"
    ))
    .bind(tenant)
    .bind(range.hi.map(Id))
    .bind(range.lo.map(Id))
    .bind(i64::from(scan) - 1)
    .fetch_optional(store.reader())
    .await?;
    Ok(id.map(|id| id.0))
}

/// The conditions of `filter` within `range` on `jobs j`, on the parameters
/// [`bind_filter!`] binds (`$1` the tenant, then `$2` to `$7`). Only the
/// conditions that are set are written: `($n IS NULL OR …)` would keep a
/// cached plan from seeking the index to the cursor, and deep pages would
/// walk every newer job first.
fn conditions(filter: &JobFilter, range: Range) -> String {
    let mut all = vec!["j.tenant_id = $1".to_string()];
    let set = [
        (filter.state.is_some(), "j.state = $2".to_string()),
        (filter.queue.is_some(), "j.queue = $3".to_string()),
        (filter.plugin.is_some(), "j.plugin = $4".to_string()),
        (range.hi.is_some(), "j.id < $5".to_string()),
        (range.lo.is_some(), "j.id >= $6".to_string()),
        (
            filter.error_contains.is_some(),
            dialect::contains("j.error", 7),
        ),
        (
            filter.unreplayed,
            "NOT EXISTS (SELECT 1 FROM jobs r WHERE r.tenant_id = j.tenant_id AND r.replay_of = j.id)"
                .to_string(),
        ),
        (filter.unfinished, "j.finished_at IS NULL".to_string()),
    ];
    all.extend(set.into_iter().filter(|(on, _)| *on).map(|(_, c)| c));
    all.join(" AND ")
}

macro_rules! bind_filter {
    ($query:expr, $tenant:expr, $filter:expr, $range:expr) => {
        $query
            .bind($tenant)
            .bind($filter.state.map(|s| s.as_str()))
            .bind(&$filter.queue)
            .bind(&$filter.plugin)
            .bind($range.hi.map(Id))
            .bind($range.lo.map(Id))
            .bind(&$filter.error_contains)
    };
}

/// The range narrowed to what a bounded read may examine, and whether the
/// bound cut it.
async fn bounded(
    store: &Here,
    tenant: &str,
    filter: &JobFilter,
    mut range: Range,
    scan: u32,
) -> Result<(Range, Option<Uuid>), StoreError> {
    if !filter.filters_rows() {
        return Ok((range, None));
    }
    let floor = floor(store, tenant, filter, range, scan).await?;
    if floor.is_some() {
        range.lo = floor;
    }
    Ok((range, floor))
}

pub(super) async fn job_list(
    store: &Here,
    tenant: &str,
    filter: &JobFilter,
    after: Option<JobId>,
    limit: u32,
) -> Result<JobPage, StoreError> {
    let columns = if filter.bodies {
        JOB_COLUMNS
    } else {
        LISTED_JOB_COLUMNS
    };
    let (range, floor) = bounded(
        store,
        tenant,
        filter,
        Range::of(filter, after),
        MAX_SCANNED_PER_PAGE,
    )
    .await?;
    // Ids are UUIDv7: ordered by time, as uuid and as hyphenated text.
    let (index, state) = walk(filter);
    let query = format!(
        "SELECT {columns} FROM jobs j {index} WHERE {} {state} ORDER BY j.id DESC LIMIT $8",
        conditions(filter, range)
    );
    let rows = bind_filter!(sqlx::query_as::<_, JobRow>(&query), tenant, filter, range)
        .bind(i64::from(limit))
        .fetch(store.reader());
    let jobs = futures_util::StreamExt::map(rows, |row| {
        row.map_err(StoreError::from)
            .and_then(crate::model::Job::try_from)
    });
    let jobs = crate::store::collect_page(jobs, filter.bodies).await?;
    // A page that came back short stopped at the floor, not at the end.
    let scanned_to = floor.filter(|_| jobs.len() < limit as usize);
    Ok(JobPage { jobs, scanned_to })
}

pub(super) async fn job_count(
    store: &Here,
    tenant: &str,
    filter: &JobFilter,
) -> Result<JobCount, StoreError> {
    let (range, floor) = bounded(
        store,
        tenant,
        filter,
        Range::of(filter, None),
        MAX_SCANNED_PER_COUNT,
    )
    .await?;
    let (index, state) = walk(filter);
    let query = format!(
        "SELECT count(*) FROM jobs j {index} WHERE {} {state}",
        conditions(filter, range)
    );
    let matched: Nat<u64> = bind_filter!(sqlx::query_scalar(&query), tenant, filter, range)
        .fetch_one(store.reader())
        .await?;
    Ok(JobCount {
        matched: matched.0,
        lower_bound: floor.is_some(),
    })
}

pub(super) async fn job_dead_groups(
    store: &Here,
    tenant: &str,
) -> Result<Vec<DeadGroup>, StoreError> {
    let filter = JobFilter {
        state: Some(JobState::Dead),
        unreplayed: true,
        ..JobFilter::default()
    };
    let (range, _) = bounded(
        store,
        tenant,
        &filter,
        Range::of(&filter, None),
        DEAD_GROUP_SCAN,
    )
    .await?;
    let (index, state) = walk(&filter);
    let query = format!(
        "SELECT j.plugin, substr(COALESCE(j.error, ''), 1, $8) AS e, count(*) AS n, max(j.finished_at) AS newest \
         FROM jobs j {index} WHERE {} {state} GROUP BY j.plugin, e ORDER BY n DESC, j.plugin, e LIMIT $9",
        conditions(&filter, range)
    );
    let rows: Vec<(String, String, Nat<u64>, At)> =
        bind_filter!(sqlx::query_as(&query), tenant, filter, range)
            .bind(DEAD_GROUP_ERROR_CHARS as i32)
            .bind(i64::from(MAX_DEAD_GROUPS))
            .fetch_all(store.reader())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(plugin, error, count, newest)| DeadGroup {
            plugin,
            error,
            count: count.0,
            newest_at: newest.0,
        })
        .collect())
}

pub(super) async fn job_overview(
    store: &Here,
    tenant: &str,
    now: Timestamp,
) -> Result<JobOverview, StoreError> {
    // The live counts read the partial indexes of waiting and running jobs
    // (at most the tenant's `max_queued_jobs` and its running attempts).
    let (waiting, running) = (
        dialect::indexed_by("jobs_waiting"),
        dialect::indexed_by("jobs_running"),
    );
    let live: Vec<(String, Nat<u64>)> = sqlx::query_as(&format!(
        "SELECT state, count(*) FROM jobs {waiting} \
         WHERE tenant_id = $1 AND state IN ('scheduled', 'available', 'retrying') GROUP BY state \
         UNION ALL SELECT 'running', count(*) FROM jobs {running} WHERE tenant_id = $1 AND state = 'running'"
    ))
    .bind(tenant)
    .fetch_all(store.reader())
    .await?;
    let oldest_due: Option<At> = sqlx::query_scalar(&format!(
        "SELECT min(run_at) FROM jobs {waiting} \
         WHERE tenant_id = $1 AND state IN ('scheduled', 'available', 'retrying') AND run_at <= $2"
    ))
    .bind(tenant)
    .bind(At(now))
    .fetch_one(store.reader())
    .await?;
    let by_host: Vec<(String, Nat<u64>)> = sqlx::query_as(&format!(
        "SELECT leased_by, count(*) FROM jobs {running} \
         WHERE tenant_id = $1 AND state = 'running' GROUP BY leased_by ORDER BY leased_by"
    ))
    .bind(tenant)
    .fetch_all(store.reader())
    .await?;
    // One range of the tenant's finished jobs per minute, read from the
    // index alone (tenant, time, state): its cost is the tenant's jobs that
    // finished in the hour, never the table nor another tenant's jobs.
    let start = now - chrono::Duration::minutes(i64::from(OVERVIEW_MINUTES));
    let minutes: Vec<FinishedMinute> = (0..OVERVIEW_MINUTES)
        .map(|m| FinishedMinute {
            start: start + chrono::Duration::minutes(i64::from(m)),
            ..FinishedMinute::default()
        })
        .collect();
    let buckets: Vec<serde_json::Value> = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({
                "i": i,
                "lo": dialect::json_at(m.start),
                "hi": dialect::json_at(m.start + chrono::Duration::minutes(1)),
            })
        })
        .collect();
    let rows: Vec<(Nat<u32>, String, Nat<u64>)> = sqlx::query_as(&format!(
        "WITH {} SELECT b.i, j.state, count(*) FROM b JOIN jobs j {} \
         ON j.tenant_id = $2 AND j.finished_at >= b.lo AND j.finished_at < b.hi \
         GROUP BY b.i, j.state",
        batches::batch_cte(
            "b",
            1,
            &[("i", "int"), ("lo", "timestamptz"), ("hi", "timestamptz")]
        ),
        dialect::indexed_by("jobs_finished"),
    ))
    .bind(batches::batch(&buckets)?)
    .bind(tenant)
    .fetch_all(store.reader())
    .await?;
    let mut overview = JobOverview {
        live: super::store::counts(live),
        oldest_due: oldest_due.map(|at| at.0),
        running_by_host: by_host.into_iter().map(|(host, n)| (host, n.0)).collect(),
        finished_per_minute: minutes,
    };
    for (i, state, n) in rows {
        let Some(minute) = overview.finished_per_minute.get_mut(i.0 as usize) else {
            continue;
        };
        match JobState::parse(&state) {
            Some(JobState::Completed) => minute.completed = n.0,
            Some(JobState::Dead) => minute.dead = n.0,
            Some(JobState::Cancelled) => minute.cancelled = n.0,
            _ => {}
        }
    }
    Ok(overview)
}
