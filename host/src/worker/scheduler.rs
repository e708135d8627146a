//! The loop that fires due schedules: every host running a worker (`corral
//! serve --mode all|worker`) runs one. Any number may run at once: each tick
//! fires once, whichever host gets it (`Store::schedule_fire`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::schedules::FIRE_BATCH;

/// How often a host looks for due schedules. Cron's finest unit is a
/// second; a tick fires within this of its time. One indexed query a second
/// per host is nothing to the database.
pub const SCHEDULER_INTERVAL: Duration = Duration::from_secs(1);
/// Wait after a database error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// Fire due schedules until `stop`.
pub async fn run(store: Arc<dyn Store>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SCHEDULER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        // A full batch means more may be due: go on at once.
        loop {
            match store.schedule_fire(chrono::Utc::now(), FIRE_BATCH).await {
                Ok(fired) => {
                    for t in &fired {
                        match &t.error {
                            None => tracing::info!(
                                tenant = %t.tenant_id, schedule = %t.schedule, tick = %t.tick,
                                job = ?t.job_id, run = ?t.run_id, "schedule fired"
                            ),
                            Some(error) => tracing::warn!(
                                tenant = %t.tenant_id, schedule = %t.schedule, tick = %t.tick,
                                %error, "schedule tick started nothing"
                            ),
                        }
                    }
                    if fired.len() < FIRE_BATCH as usize || stop.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "firing schedules failed; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(ERROR_BACKOFF) => {}
                        () = stop.cancelled() => return,
                    }
                    break;
                }
            }
        }
    }
}
