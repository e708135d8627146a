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

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Sqlite};
use tokio::sync::broadcast;

use super::{StoreError, StoreEvent};

/// Reader connections. Reads never block the writer in WAL mode.
const READERS: u32 = 4;
/// How long a statement waits for a lock held by another process (a second
/// `corral` on the same file, or `sqlite3`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffered wake-ups per subscriber.
const EVENT_BUFFER: usize = 1024;
/// How often a connection of its own moves what the WAL holds into the
/// database file (a `PASSIVE` checkpoint: it waits for no reader or writer,
/// and the writer goes on appending while it runs). A checkpoint costs
/// milliseconds of copying and two fsyncs; left to SQLite's default, the
/// writer ran it inside the commit that crossed 1,000 WAL pages, and every
/// write of the host waited (a claim's commit took 8 ms instead of 0.8,
/// docs/benchmarks.md). With nothing new in the WAL a checkpoint is a
/// no-op.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages past which the writer still checkpoints inside a commit
/// (`wal_autocheckpoint`): the backstop should the checkpointer fall
/// behind or fail, so that however fast tenants write, the WAL the next
/// checkpoint must copy stays bounded (about 64 MiB of 4 KiB pages).
/// Public so the store test can check that a burst of writes stays below it.
pub const WAL_BACKSTOP_PAGES: u32 = 16_384;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    events: broadcast::Sender<StoreEvent>,
    /// The task running the checkpoints; it ends with the store.
    checkpointer: tokio::task::JoinHandle<()>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
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

    /// Claims write through the one writer too.
    fn claimer(&self) -> &SqlitePool {
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
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES.to_string()),
            )
            .await?;
        let checkpoints = options.connect().await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_lazy_with(options.read_only(true));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(SqliteStore {
            writer,
            reader,
            events,
            checkpointer: tokio::spawn(checkpoint_every(checkpoints, CHECKPOINT_EVERY)),
        })
    }

    fn announce(&self, event: StoreEvent) {
        let _ = self.events.send(event);
    }
}

/// Checkpoints the WAL on `conn` every `period`, off the writer's path.
async fn checkpoint_every(mut conn: SqliteConnection, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            // Said once per run of failures, not four times a second; the
            // writer's backstop bounds the WAL meanwhile.
            Err(error) if !failing => {
                tracing::warn!(%error, "SQLite WAL checkpoints failing; the writer checkpoints past its backstop");
                failing = true;
            }
            Err(_) => {}
            Ok(_) if failing => {
                tracing::info!("SQLite WAL checkpoints working again");
                failing = false;
            }
            Ok(_) => {}
        }
    }
}
