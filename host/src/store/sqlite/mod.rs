//! The SQLite store: the embedded default, for one host.
//!
//! One writer connection (SQLite allows one writer at a time; funnelling
//! every write through one connection means no write ever fails with
//! SQLITE_BUSY) and a few reader connections (WAL mode lets them read while
//! the writer writes). Every multi-statement operation is one transaction on
//! the writer, so it is atomic and serialized: claims read exact counts of
//! running jobs per tenant. Times are microseconds since the Unix epoch.
//!
//! Durability: WAL with `synchronous = NORMAL` survives a crash of the
//! process (SIGKILL included); a crash of the operating system or a power
//! loss may lose the last transactions. Use PostgreSQL where that matters.
//!
//! Wake-ups are in-process: the store itself announces what it wrote.

mod dialect;
// The statements and flows both backends share, compiled for this one
// (see `sql/mod.rs` for why one source is compiled twice).
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::broadcast;

use super::{StoreError, StoreEvent};

/// Reader connections. Reads never block the writer in WAL mode.
const READERS: u32 = 4;
/// How long a statement waits for a lock held by another process (a second
/// `corral` on the same file, or `sqlite3`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffered wake-ups per subscriber.
const EVENT_BUFFER: usize = 1024;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    events: broadcast::Sender<StoreEvent>,
}

/// What `sql/` calls this backend's database and store.
type Db = Sqlite;
type Here = SqliteStore;

impl SqliteStore {
    /// The WAL readers: reads never wait for the writer.
    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one writer connection.
    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_lazy_with(options.read_only(true));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(SqliteStore {
            writer,
            reader,
            events,
        })
    }

    fn announce(&self, event: StoreEvent) {
        let _ = self.events.send(event);
    }
}
