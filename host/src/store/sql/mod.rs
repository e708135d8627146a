//! The statements and flows of the store, written once and compiled once
//! per dialect: `postgres/mod.rs` and `sqlite/mod.rs` each include this
//! module (`#[path]`), so here `super` is the backend, which provides
//! - `Db` (its `sqlx::Database`) and `Here` (its store, with `reader()`
//!   and `writer()` pools: one pool on PostgreSQL, the WAL readers and the
//!   one writer on SQLite);
//! - `dialect`: the fragments whose SQL differs (row locks, list
//!   membership, JSON paths) and the operations whose statements differ
//!   (claims, batched writes, notifications).
//!
//! Why compiled twice rather than generic over `sqlx::Database`: every
//! generic statement needs `Encode`/`Type`/`Executor` bounds that Rust
//! cannot bundle into one trait (bounds on other types are not implied),
//! so each function would repeat a dozen of them. Here each copy is
//! checked against its backend's concrete types, and a dialect that lacks
//! an item fails to compile.
//!
//! Statements use PostgreSQL's `$n` placeholders, which SQLite binds by
//! number too; values go through [`crate::store::codec`].

pub(super) mod batches;
pub(super) mod claim;
pub(super) mod hosts;
pub(super) mod listings;
pub(super) mod quotas;
pub(super) mod request_keys;
pub(super) mod schedules;
pub(super) mod secrets;
pub(super) mod store;
pub(super) mod workflows;

use sqlx::Database;

use super::{Db, Here, dialect};
use crate::store::{StoreError, StoreEvent};

/// A connection of this backend (a pooled one or a transaction's).
pub(super) type Conn = <Db as Database>::Connection;

/// A point in a [`Tx`]: the events announced before it.
pub(super) struct Savepoint(usize);

/// A write transaction that announces what it changed once it commits:
/// flows call [`Tx::announce`] wherever a state changes, and the dialect
/// decides how each event travels (PostgreSQL: `NOTIFY` sent in the
/// transaction, or its triggers; SQLite: the store's channel after the
/// commit). No signature carries events.
pub(super) struct Tx<'s> {
    tx: sqlx::Transaction<'static, Db>,
    events: Vec<StoreEvent>,
    store: &'s Here,
}

impl<'s> Tx<'s> {
    /// Begin on the store's writer.
    pub(super) async fn begin(store: &'s Here) -> Result<Tx<'s>, StoreError> {
        Ok(Tx {
            tx: store.writer().begin_with(dialect::BEGIN).await?,
            events: Vec::new(),
            store,
        })
    }

    /// The transaction's connection.
    pub(super) fn conn(&mut self) -> &mut Conn {
        &mut self.tx
    }

    /// Announce `event` once this transaction commits (never if it does not).
    pub(super) fn announce(&mut self, event: StoreEvent) {
        self.events.push(event);
    }

    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        dialect::notify(&mut self.tx, &self.events).await?;
        self.tx.commit().await?;
        announce_here(self.store, self.events);
        Ok(())
    }

    /// Mark a point to return to ([`Tx::rollback_to`]) without losing the
    /// rest of the transaction.
    pub(super) async fn savepoint(&mut self) -> Result<Savepoint, StoreError> {
        sqlx::query("SAVEPOINT corral").execute(self.conn()).await?;
        Ok(Savepoint(self.events.len()))
    }

    /// Keep what was done since the savepoint.
    pub(super) async fn release(&mut self, _point: Savepoint) -> Result<(), StoreError> {
        sqlx::query("RELEASE SAVEPOINT corral")
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Undo what was done since the savepoint, its events included.
    pub(super) async fn rollback_to(&mut self, point: Savepoint) -> Result<(), StoreError> {
        sqlx::query("ROLLBACK TO SAVEPOINT corral")
            .execute(self.conn())
            .await?;
        sqlx::query("RELEASE SAVEPOINT corral")
            .execute(self.conn())
            .await?;
        self.events.truncate(point.0);
        Ok(())
    }

    /// Give up: nothing is written, nothing announced.
    pub(super) async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// Announce what a statement outside any transaction (on `conn`, committed
/// already) changed, as [`Tx::commit`] does.
pub(super) async fn announce_now(
    store: &Here,
    conn: &mut Conn,
    events: Vec<StoreEvent>,
) -> Result<(), StoreError> {
    dialect::notify(conn, &events).await?;
    announce_here(store, events);
    Ok(())
}

/// Tell this process's subscribers the events the dialect does not send
/// through the database.
fn announce_here(store: &Here, events: Vec<StoreEvent>) {
    for event in events {
        if dialect::announced_here(&event) {
            store.announce(event);
        }
    }
}
