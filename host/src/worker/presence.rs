//! The host's row in the registry of hosts (`hosts`): written when the
//! worker starts and every [`HOST_BEAT`] while it runs, deleted when it
//! stops gracefully. The dashboard lists the hosts seen within
//! [`HOST_ALIVE`], idle ones included; the janitor deletes rows unseen for
//! [`HOST_FORGET`] (hosts that died without leaving).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::{HostSeen, Store};

/// How often a worker host says it is alive. One small write per host and
/// beat, off the path of jobs.
pub const HOST_BEAT: Duration = Duration::from_secs(5);
/// A host unseen for this long (three beats missed) is no longer listed
/// as alive.
pub const HOST_ALIVE: Duration = Duration::from_secs(15);
/// A host unseen for this long is deleted from the registry.
pub const HOST_FORGET: Duration = Duration::from_secs(3600);

/// Write this host's row, before the worker claims anything: a host that
/// has run a job is listed.
pub async fn arrive(store: &dyn Store, host_id: String, concurrency: usize) -> HostSeen {
    let now = Utc::now();
    let seen = HostSeen {
        host_id,
        concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
        started_at: now,
        seen_at: now,
    };
    if let Err(e) = store.host_beat(&seen).await {
        tracing::warn!(error = %e, "could not record that this host is alive");
    }
    seen
}

/// Keep this host's row fresh until `stop`, then delete it.
pub async fn keep(store: Arc<dyn Store>, mut seen: HostSeen, stop: CancellationToken) {
    let start = tokio::time::Instant::now() + HOST_BEAT;
    let mut tick = tokio::time::interval_at(start, HOST_BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        seen.seen_at = Utc::now();
        if let Err(e) = store.host_beat(&seen).await {
            tracing::warn!(error = %e, "could not record that this host is alive");
        }
    }
    if let Err(e) = store.host_leave(&seen.host_id).await {
        tracing::warn!(error = %e, "could not remove this host from the registry; it will be forgotten");
    }
}
