//! The PostgreSQL store: any number of hosts share one database.
//!
//! Every operation is written once in `sql/`; this module holds the pool,
//! the notification listener and the `dialect`. Round trips and locks of
//! the hot paths:
//! - **enqueue** (`sql/batches.rs`): one `INSERT … SELECT` for the whole
//!   batch, bound as one JSON array. The plugin versions are read `FOR
//!   SHARE` once per plugin, so a plugin delete (which locks the version
//!   `FOR UPDATE` before counting the jobs pinned to it) and an enqueue
//!   order themselves: no job is ever pinned to a deleted version. A
//!   statement-level trigger NOTIFYs `corral_jobs`.
//! - **claim** (`sql/claim.rs`): the claim ring's front taken `FOR NO KEY
//!   UPDATE SKIP LOCKED`, so claimers on many hosts share out tenants
//!   instead of queueing on one lock; its statements run in one call of a
//!   function each connection of the claims' own pool makes in its
//!   temporary schema.
//! - **finish** (`sql/batches.rs`): one statement for a batch of outcomes: a
//!   fenced `UPDATE` (`lease_token` and `state = 'running'` must still
//!   match) and the `INSERT` of attempt rows for exactly the jobs it
//!   touched; outside workflows it needs no transaction of its own.
//! - **heartbeat** and **progress**: one `UPDATE` of every lease the host
//!   holds, skipping rows another transaction has locked.

mod dialect;
// The statements and flows both backends share, compiled for this one
// (see `sql/mod.rs` for why one source is compiled twice).
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{StoreError, StoreEvent};
use crate::model::JobState;

/// Connections per host for everything but claims: the worker's outcomes,
/// heartbeats and progress, the janitor, the scheduler, the `LISTEN`
/// connection, and the API.
const MAX_CONNECTIONS: u32 = 16;
/// Connections per host for claims (`sql/claim.rs`): a host claims through
/// its claim loop and its fresh lane, so two at once; four leave room for
/// a caller that claims beside them (a test, a tool). Apart from the other
/// connections because each makes the claim function when it opens (five
/// statements, 40-120 ms on a busy machine): in the one pool, an enqueue
/// that found every connection busy paid for it, about 1% of enqueues
/// while a host drained (docs/benchmarks.md, "Pickups on a busy host").
const MAX_CLAIM_CONNECTIONS: u32 = 4;
/// How long a caller waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Channels the listener follows.
const JOBS_CHANNEL: &str = "corral_jobs";
const CANCEL_CHANNEL: &str = "corral_cancel";
const STATE_CHANNEL: &str = "corral_job_state";
const PROGRESS_CHANNEL: &str = "corral_job_progress";
/// `<run id> <state>` when a workflow run finishes.
const RUN_CHANNEL: &str = "corral_run_state";
/// Job ids per progress notification (payloads are limited to 8000 bytes;
/// an id and its newline take 37).
const PROGRESS_IDS_PER_NOTIFY: usize = 100;
/// Pause before re-listening after the listener's connection failed.
const LISTENER_RETRY: Duration = Duration::from_millis(500);
/// Buffered wake-ups per subscriber; a lagging subscriber just polls.
const EVENT_BUFFER: usize = 1024;

pub struct PostgresStore {
    pool: PgPool,
    /// Claims only: each connection has the claim function.
    claims: PgPool,
    events: broadcast::Sender<StoreEvent>,
    listener: JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What `sql/` calls this backend's database and store.
type Db = Postgres;
type Here = PostgresStore;

impl PostgresStore {
    /// Reads and writes share one pool.
    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// The connections that claim (see [`MAX_CLAIM_CONNECTIONS`]).
    fn claimer(&self) -> &PgPool {
        &self.claims
    }

    /// Tell this process's subscribers (see [`dialect::announced_here`]).
    fn announce(&self, event: StoreEvent) {
        let _ = self.events.send(event);
    }

    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        // Opened by the first claim, so after `migrate` on a new database.
        let claims = PgPoolOptions::new()
            .max_connections(MAX_CLAIM_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Each connection's claim function (`sql/claim.rs`). A failure
            // costs nothing but a round trip: the first claim makes it.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    if let Err(e) = sql::claim::prepare_connection(conn).await {
                        tracing::warn!(error = %e, "could not make the claim function yet");
                    }
                    Ok(())
                })
            })
            .connect_lazy(url)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (listening, heard) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(listen(pool.clone(), events.clone(), listening));
        // A store handed out before its LISTEN would miss what is announced
        // meanwhile (a cancel, a job's end that `--wait` follows). If the
        // listener cannot start, it keeps retrying and says so; the store
        // still serves, as heartbeats and polls cover lost notifications.
        if tokio::time::timeout(ACQUIRE_TIMEOUT, heard).await.is_err() {
            tracing::warn!(
                "not yet listening for job notifications; going on without them for now"
            );
        }
        Ok(PostgresStore {
            pool,
            claims,
            events,
            listener,
        })
    }
}

/// Follow the notification channels for as long as the store lives,
/// reconnecting after failures; `listening` is told once the first LISTEN
/// holds. After a reconnect, notifications may have
/// been missed, so it announces `JobsAvailable` once.
async fn listen(
    pool: PgPool,
    events: broadcast::Sender<StoreEvent>,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for job notifications; retrying");
                tokio::time::sleep(LISTENER_RETRY).await;
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([
                JOBS_CHANNEL,
                CANCEL_CHANNEL,
                STATE_CHANNEL,
                PROGRESS_CHANNEL,
                RUN_CHANNEL,
            ])
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(LISTENER_RETRY).await;
            continue;
        }
        if let Some(listening) = listening.take() {
            let _ = listening.send(());
        }
        let _ = events.send(StoreEvent::JobsAvailable(None));
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match notification.channel() {
                    // The tenant whose jobs a statement made wait, or empty
                    // when they were several tenants' (migration 0019).
                    JOBS_CHANNEL => {
                        let tenant = Some(notification.payload())
                            .filter(|t| !t.is_empty())
                            .map(str::to_string);
                        let _ = events.send(StoreEvent::JobsAvailable(tenant));
                    }
                    CANCEL_CHANNEL => {
                        if let Ok(id) = Uuid::parse_str(notification.payload()) {
                            let _ = events.send(StoreEvent::CancelRequested(id));
                        }
                    }
                    // Up to 100 lines `<job id> <state>` (one notification per statement).
                    STATE_CHANNEL => {
                        for line in notification.payload().lines() {
                            let mut parts = line.split(' ');
                            let id = parts.next().and_then(|id| Uuid::parse_str(id).ok());
                            let state = parts.next().and_then(JobState::parse);
                            if let (Some(id), Some(state)) = (id, state) {
                                let _ = events.send(StoreEvent::JobState(id, state));
                            }
                        }
                    }
                    // One job id a line.
                    PROGRESS_CHANNEL => {
                        for id in notification
                            .payload()
                            .lines()
                            .filter_map(|l| Uuid::parse_str(l).ok())
                        {
                            let _ = events.send(StoreEvent::JobProgress(id));
                        }
                    }
                    RUN_CHANNEL => {
                        let mut parts = notification.payload().split(' ');
                        let id = parts.next().and_then(|id| Uuid::parse_str(id).ok());
                        let state = parts.next().and_then(crate::workflow::RunState::parse);
                        if let (Some(id), Some(state)) = (id, state) {
                            let _ = events.send(StoreEvent::RunState(id, state));
                        }
                    }
                    _ => {
                        let _ = events.send(StoreEvent::JobsAvailable(None));
                    }
                },
                // The connection was lost; the next call reconnects.
                Ok(None) => {
                    let _ = events.send(StoreEvent::JobsAvailable(None));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "job notifications interrupted; reconnecting");
                    tokio::time::sleep(LISTENER_RETRY).await;
                    break;
                }
            }
        }
    }
}
