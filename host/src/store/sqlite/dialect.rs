//! What SQLite says differently: the items `sql/` asks of a dialect.

use sqlx::SqliteConnection;

use crate::model::Timestamp;
use crate::store::{Backend, StoreError, StoreEvent};

/// No row locks: the one writer connection serializes every write
/// transaction, so what it reads cannot change under it.
pub(crate) const FOR_UPDATE: &str = "";
/// Locks rows against other writers, but not against foreign-key checks.
pub(crate) const FOR_NO_KEY_UPDATE: &str = "";
pub(crate) const FOR_SHARE: &str = "";

/// `column` is one of the [`crate::store::codec::List`] bound as `$n` (a
/// JSON array).
pub(crate) fn any(column: &str, n: u8) -> String {
    format!("{column} IN (SELECT value FROM json_each(${n}))")
}

/// The [`crate::store::codec::List`] bound as `$n`, as a table `alias`
/// with one column `column`.
pub(crate) fn list_table(n: u8, alias: &str, column: &str) -> String {
    format!("(SELECT value AS {column} FROM json_each(${n})) AS {alias}")
}

/// [`list_table`], with a second column `ord` numbering the elements in
/// their order in the list.
pub(crate) fn ordered_list_table(n: u8, alias: &str, column: &str, ord: &str) -> String {
    format!("(SELECT value AS {column}, key AS {ord} FROM json_each(${n})) AS {alias}")
}

/// Nothing goes through the database: events are in-process.
pub(crate) async fn notify(
    _conn: &mut SqliteConnection,
    _events: &[StoreEvent],
) -> Result<(), StoreError> {
    Ok(())
}

/// Every event is announced by this process after the commit.
pub(crate) fn announced_here(_event: &StoreEvent) -> bool {
    true
}

pub(crate) const SKIP_LOCKED: &str = "";
pub(crate) const FOR_UPDATE_OF_R: &str = "";

/// The bytes of a JSON column's text.
pub(crate) fn json_bytes(column: &str) -> String {
    format!("length(CAST({column} AS BLOB))")
}

/// Element `$n` of a JSON array column.
pub(crate) fn json_element(column: &str, n: u8) -> String {
    format!("({column} -> ('$[' || ${n} || ']'))")
}

/// Nothing to take: the one writer already serializes write transactions.
pub(crate) async fn lock_name(_conn: &mut SqliteConnection, _name: &str) -> Result<(), StoreError> {
    Ok(())
}

pub(crate) const BACKEND: Backend = Backend::Sqlite;

/// The migrations of this backend's schema.
pub(crate) fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("../migrations/sqlite")
}

/// Commits wait for nothing more than the WAL's `synchronous = NORMAL`.
pub(crate) const QUICK_COMMIT: &str = "";

/// An enqueue counts its tenant's rate in the insert's transaction: the one
/// writer serializes the two anyway, and one transaction waits for it once.
pub(crate) const RATE_IN_INSERT_TRANSACTION: bool = true;

/// Without statistics SQLite would scan the whole table rather than a
/// small partial index; `INDEXED BY` makes it use `index` (or fail).
pub(crate) fn indexed_by(index: &str) -> String {
    format!("INDEXED BY {index}")
}

pub(crate) const NO_KEY_SKIP_LOCKED: &str = "";

/// A fresh random lease token (32 hex digits, a UUID's simple form).
pub(crate) const NEW_TOKEN: &str = "lower(hex(randomblob(16)))";

/// Joins `j` (a row of `jobs`): per row of the query, the jobs that match
/// `filter`, best first, at most `limit` of them. SQLite has no `LATERAL`
/// and its `LIMIT` cannot name a column, so `cap` is left to the caller's
/// `rank <= free`.
pub(crate) fn best_jobs(filter: &str, _cap: &str, limit: &str) -> String {
    format!(
        "JOIN jobs j ON j.id IN (SELECT id FROM jobs WHERE {filter} \
         ORDER BY priority DESC, run_at, id LIMIT {limit})"
    )
}

/// No writes in `WITH`: a batch's outcomes and its attempt rows are two
/// statements of one transaction.
pub(crate) const WRITES_IN_WITH: bool = false;

/// A time in a batch of rows: microseconds since the epoch, as stored.
pub(crate) type JsonAt = i64;

pub(crate) fn json_at(t: Timestamp) -> JsonAt {
    t.timestamp_micros()
}

/// The batch bound as `$n` (a JSON array of objects), as a table `alias`
/// with `columns` (name, type; SQLite needs no types: a `json` column
/// arrives as JSON text and stays text).
///
/// Each object is taken out of the array once, into a MATERIALIZED `WITH`
/// item, and its fields are read from that. `json_each`'s `value` column
/// turns the object back into text every time it is named, so reading
/// each field from `value` itself wrote the object out once per field: a
/// quarter of the one writer's time in a drain, and a batch of 128
/// outcomes (19 fields) cost 2.0 ms to read where this costs 0.8
/// (docs/benchmarks.md). A plain subquery would not do: SQLite flattens it
/// into `value ->> …` again.
pub(crate) fn rows(n: u8, alias: &str, columns: &[(&str, &str)]) -> String {
    let select: Vec<String> = columns
        .iter()
        .map(|(column, _)| format!("item ->> '$.{column}' AS {column}"))
        .collect();
    format!(
        "(WITH batch AS MATERIALIZED (SELECT value AS item FROM json_each(${n})) \
          SELECT {} FROM batch) AS {alias}",
        select.join(", ")
    )
}

/// Write transactions take the write lock when they begin, so a second
/// process's writer (a second `corral`, `sqlite3`) waits out the busy
/// timeout instead of failing at once: a deferred transaction that has read
/// cannot wait to upgrade to a writer (SQLite answers SQLITE_BUSY, as
/// waiting could deadlock).
pub(crate) const BEGIN: &str = "BEGIN IMMEDIATE";

/// `column` holds the text bound as `$n` (case-sensitive).
pub(crate) fn contains(column: &str, n: u8) -> String {
    format!("instr({column}, ${n}) > 0")
}

/// No wakes of the claim ring: the one writer never has an enqueue wait on
/// a ring row, and its triggers never write `claim_ring_wakes`.
pub(crate) const RING_WAKES: bool = false;

/// A claim runs its statements one by one: they are calls into this
/// process, and SQLite has no functions of statements.
pub(crate) const CLAIM_IN_ONE_CALL: bool = false;
