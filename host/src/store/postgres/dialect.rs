//! What PostgreSQL says differently: the items `sql/` asks of a dialect.

use sqlx::PgConnection;

use super::{CANCEL_CHANNEL, PROGRESS_CHANNEL, PROGRESS_IDS_PER_NOTIFY, RUN_CHANNEL};
use crate::model::Timestamp;
use crate::store::{Backend, StoreError, StoreEvent};

/// Locks the rows a statement reads until the transaction ends.
pub(crate) const FOR_UPDATE: &str = "FOR UPDATE";
/// Keeps the rows a statement reads from being changed or deleted until
/// the transaction ends (a plugin version being pinned).
/// Locks rows against other writers, but not against foreign-key checks.
pub(crate) const FOR_NO_KEY_UPDATE: &str = "FOR NO KEY UPDATE";
pub(crate) const FOR_SHARE: &str = "FOR SHARE";

/// `column` is one of the [`crate::store::codec::List`] bound as `$n`.
pub(crate) fn any(column: &str, n: u8) -> String {
    format!("{column} = ANY(${n})")
}

/// The [`crate::store::codec::List`] bound as `$n`, as a table `alias`
/// with one column `column` (joined row by row through an index, where
/// `= ANY` over a long list may make the planner scan).
pub(crate) fn list_table(n: u8, alias: &str, column: &str) -> String {
    format!("UNNEST(${n}) AS {alias}({column})")
}

/// [`list_table`], with a second column `ord` numbering the elements in
/// their order in the list.
pub(crate) fn ordered_list_table(n: u8, alias: &str, column: &str, ord: &str) -> String {
    format!("UNNEST(${n}) WITH ORDINALITY AS {alias}({column}, {ord})")
}

/// Send, inside the transaction (so listeners hear them at its commit, on
/// every host; at once outside one), the events no trigger announces:
/// cancel requests, progress (up to 100 job ids a notification, as payloads
/// are limited to 8000 bytes) and finished runs (PostgreSQL folds a
/// transaction's identical notifications into one). The `jobs` triggers
/// announce jobs changing state and jobs made to wait (migration 0018), in
/// the statement that changed them, so a statement alone needs no NOTIFY.
pub(crate) async fn notify(
    conn: &mut PgConnection,
    events: &[StoreEvent],
) -> Result<(), StoreError> {
    let (mut channels, mut payloads) = (Vec::new(), Vec::new());
    let mut progress = Vec::new();
    for event in events {
        let (channel, payload) = match event {
            StoreEvent::JobProgress(id) => {
                progress.push(id.to_string());
                continue;
            }
            StoreEvent::CancelRequested(id) => (CANCEL_CHANNEL, id.to_string()),
            StoreEvent::RunState(id, state) => (RUN_CHANNEL, format!("{id} {}", state.as_str())),
            _ => continue,
        };
        channels.push(channel);
        payloads.push(payload);
    }
    for ids in progress.chunks(PROGRESS_IDS_PER_NOTIFY) {
        channels.push(PROGRESS_CHANNEL);
        payloads.push(ids.join("\n"));
    }
    if !channels.is_empty() {
        sqlx::query("SELECT pg_notify(c, p) FROM UNNEST($1::text[], $2::text[]) AS n(c, p)")
            .bind(&channels)
            .bind(&payloads)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Whether an event is sent to this process's subscribers directly: only
/// what no other host needs (a run awaiting this host's evaluator); the
/// rest comes back through `LISTEN`.
pub(crate) fn announced_here(event: &StoreEvent) -> bool {
    matches!(event, StoreEvent::RunAwaitsEvaluation(_))
}

/// Skips the rows other transactions hold (hosts share due work).
pub(crate) const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";
/// Locks the row of `workflow_runs r` only, not of what it joins.
pub(crate) const FOR_UPDATE_OF_R: &str = "FOR UPDATE OF r";

/// The bytes of a JSON column's text.
pub(crate) fn json_bytes(column: &str) -> String {
    format!("octet_length({column}::text)")
}

/// Element `$n` (an `int4`) of a JSON array column.
pub(crate) fn json_element(column: &str, n: u8) -> String {
    format!("({column} -> ${n})")
}

/// Serialize the transactions that take this name until they end (a
/// transaction-scoped advisory lock on its hash).
pub(crate) async fn lock_name(conn: &mut PgConnection, name: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) const BACKEND: Backend = Backend::Postgres;

/// The migrations of this backend's schema.
pub(crate) fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../migrations/postgres")
}

/// A lost count of the enqueue rate after a crash is harmless, so its
/// statement's transaction does not wait for the disk: the row lock it
/// takes is held for microseconds, and one tenant's enqueues do not queue
/// behind each other's fsyncs.
pub(crate) const QUICK_COMMIT: &str =
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick";

/// An enqueue counts its tenant's rate in a statement of its own, before
/// the insert's: in the insert's transaction the rate row would stay
/// locked through its commit (see `QUICK_COMMIT`).
pub(crate) const RATE_IN_INSERT_TRANSACTION: bool = false;

/// PostgreSQL picks the partial index itself.
pub(crate) fn indexed_by(_index: &str) -> String {
    String::new()
}

/// Takes rows for this transaction, skipping those others hold, without
/// blocking foreign-key checks (the claim ring's turn).
pub(crate) const NO_KEY_SKIP_LOCKED: &str = "FOR NO KEY UPDATE SKIP LOCKED";

/// A fresh random lease token.
pub(crate) const NEW_TOKEN: &str = "gen_random_uuid()";

/// Joins `j` (`id`, `priority`, `run_at`): per row of the query, the jobs
/// that match `filter`, best first, at most `cap` and `limit` of them (a
/// `LATERAL` subquery, which stops at its `LIMIT`).
pub(crate) fn best_jobs(filter: &str, cap: &str, limit: &str) -> String {
    format!(
        "CROSS JOIN LATERAL (SELECT id, priority, run_at FROM jobs WHERE {filter} \
         ORDER BY priority DESC, run_at, id LIMIT LEAST(GREATEST({cap}, 0), {limit})) j"
    )
}

/// Statements may write in `WITH` (a batch's outcomes and its attempt rows
/// are one statement).
pub(crate) const WRITES_IN_WITH: bool = true;

/// A time in a batch of rows: RFC 3339 text to the microsecond.
pub(crate) type JsonAt = String;

pub(crate) fn json_at(t: Timestamp) -> JsonAt {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The batch bound as `$n` (a JSON array of objects), as a table `alias`
/// with `columns` (name, type); a `json` column arrives as JSON text and is
/// kept as `jsonb`.
pub(crate) fn rows(n: u8, alias: &str, columns: &[(&str, &str)]) -> String {
    let (mut select, mut record) = (Vec::new(), Vec::new());
    for &(column, ty) in columns {
        if ty == "json" {
            select.push(format!("{column}::jsonb AS {column}"));
            record.push(format!("{column} text"));
        } else {
            select.push(column.to_string());
            record.push(format!("{column} {ty}"));
        }
    }
    format!(
        "(SELECT {} FROM jsonb_to_recordset(${n}) AS x({})) AS {alias}",
        select.join(", "),
        record.join(", ")
    )
}

/// Write transactions begin as any other (row locks order them).
pub(crate) const BEGIN: &str = "BEGIN";

/// `column` holds the text bound as `$n` (case-sensitive).
pub(crate) fn contains(column: &str, n: u8) -> String {
    format!("strpos({column}, ${n}) > 0")
}

/// Whether an enqueue that finds its tenant's ring row asleep, or held by a
/// claim putting it to sleep, adds a wake (`claim_ring_wakes`, migration
/// 0020) for the turn to take: on PostgreSQL, so that it waits for no
/// claim and no other enqueue.
pub(crate) const RING_WAKES: bool = true;

/// A claim runs as one call of a function made on each connection from
/// its statements (`sql/claim.rs`): one round trip instead of six.
pub(crate) const CLAIM_IN_ONE_CALL: bool = true;
