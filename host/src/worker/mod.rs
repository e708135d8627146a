//! The worker: claim → run → record, with leases kept alive by heartbeats,
//! a janitor for leases that expired on dead hosts, retention, and graceful
//! shutdown.
//!
//! Tasks of one worker:
//! - the **claim loop** claims as many jobs as it has free slots (in batches)
//!   and starts an attempt task for each; it sleeps until woken by the store
//!   (a NOTIFY, or an in-process event on SQLite), by a finished attempt, or
//!   by the polling fallback;
//! - **attempt tasks** run the sandbox and hand the outcome to the recorder,
//!   on threads of their own at a lower CPU priority ([`sandbox_threads`]);
//! - the **recorder** writes outcomes in batches (whatever accumulated while
//!   the previous write was in flight), retrying while the database is away;
//! - the **heartbeat** extends the leases this process holds (by token, so
//!   a host restarted under the same id never renews its dead predecessor's
//!   jobs), from claim until the outcome is written; it learns which jobs a
//!   client asked to cancel (the fallback when a notification was missed) and
//!   which leases were lost (their attempts are stopped and forgotten);
//! - the **janitor** turns expired leases into `lease_expired` attempts and
//!   prunes old finished jobs;
//! - the **event listener** turns cancel notifications into stopped attempts;
//! - the **progress writer** records guests' progress reports, throttled
//!   (see [`progress`]).
//!
//! Beside them, every host runs two loops over workflows and schedules: the
//! [`evaluator`] (a run's `when` and `for_each` expressions, outside
//! transactions) and the [`scheduler`] (due cron ticks).
//!
//! A job holds two permits: a *slot* while its attempt runs (`concurrency`
//! of them), and an *unrecorded* permit from claim until its outcome is
//! written (`concurrency + MAX_FINISH_BATCH`). The second bounds the jobs a
//! host has claimed but not recorded: when the database is slow to take
//! outcomes, the host stops claiming instead of piling up `running` rows
//! that its heartbeat must keep alive.
//!
//! Beside the claim loop, the **fresh lane** answers announcements of new
//! jobs that the loop cannot answer at once (a claim in flight, or no
//! permit free): it claims the announced jobs of the tenants the
//! announcements name ([`announced`]) on permits of its own,
//! [`FRESH_HEADROOM`] slots and as many unrecorded permits. So a host runs
//! at most `concurrency + FRESH_HEADROOM` attempts and holds at most
//! `concurrency + MAX_FINISH_BATCH + FRESH_HEADROOM` unrecorded jobs, and a
//! new job does not wait for a claim in flight, an outcome batch being
//! written, or a long job to end.

mod announced;
pub mod evaluator;
pub mod janitor;
pub mod presence;
pub mod progress;
pub mod retry;
pub mod sandbox_threads;
pub mod scheduler;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use tracing::{Instrument, Span};

use crate::metrics::Metrics;
use crate::model::{Attempt, ClaimedJob, Finish, JobId, JobState, OutcomeKind, Transition};
use crate::runtime::outbound::HttpRules;
use crate::runtime::{AttemptReport, AttemptRequest, JobInput, Plugin, Runtime};
use crate::store::{ClaimRequest, Lease, Store, StoreError, StoreEvent};
pub use retry::Backoff;

/// Jobs one claim takes by default: a claim costs a few round trips
/// whatever its size, so tiny jobs want large batches; a host never claims
/// more than it has free slots, so long jobs are not hoarded.
pub const DEFAULT_CLAIM_BATCH: u32 = 128;
/// The largest claim batch: bounds one claim's statements (the jobs it
/// reads, locks and returns) and the time the claim holds its tenants' turn.
pub const MAX_CLAIM_BATCH: u32 = 1024;
/// Outcomes written in one statement at most. Bounds one statement's size,
/// and (beyond `concurrency`) the jobs a host holds claimed but unrecorded.
/// Under a backlog the claim loop waits for the recorder to free those
/// permits, so one batch's write time is how long a new job can wait for
/// its claim: 512 made pickup p99 behind a 50,000-job backlog 117-147 ms,
/// 128 makes it 42-49 ms, at the same throughput (`just bench-serve`,
/// docs/benchmarks.md). Smaller (64) cost throughput.
pub const MAX_FINISH_BATCH: usize = 128;
/// How long a job the host had no room for (a full instance pool, busy
/// compilers) waits before it may be claimed again, by any host: long
/// enough not to spin on a full pool.
const POOL_FULL_RETRY: Duration = Duration::from_millis(500);
/// The fresh lane's slots, and its claimed-but-unrecorded permits (see
/// the module doc): what announcements of new jobs can make a busy
/// host run and hold beyond `concurrency` and its unrecorded bound. Bounds
/// what a tenant enqueueing in a loop can add to a saturated host: this
/// many attempts, until they are recorded.
pub const FRESH_HEADROOM: usize = 8;
/// Jobs the fresh lane claims per announcement that names no tenant (see
/// [`announced`]), of any tenant's. The ring hands it the tenant whose turn
/// is oldest, often the one that just enqueued. A larger claim filled its
/// rest with the backlog's jobs, whose outcomes then held the lane's
/// permits: a claim of 8 left pickup p99 at 30-50 ms behind a 50,000-job
/// backlog. Announcements that name their tenant are claimed for together,
/// of those tenants only.
const FRESH_LANE_CLAIM: usize = 1;
/// Claims the fresh lane makes again, per wake-up, after one that found
/// nothing while the claim loop's claim was in flight (see
/// [`Worker::fresh_lane`]). One is enough: a claim of the loop that
/// begins after the job was committed sees it. Bounds the lane's extra
/// claims to one per announcement burst.
const FRESH_LANE_RETRIES: usize = 1;
/// Pause between retries of a failed database call.
const DATABASE_RETRY: Duration = Duration::from_millis(250);
/// While attempts run, the claim loop waits up to this long for half a batch
/// of slots to free up, so that it claims in batches rather than one job per
/// finished attempt (each claim is a round trip and a serialized lock).
const CLAIM_COALESCE: Duration = Duration::from_millis(2);

/// The tracing target of every claim and every announcement heard, at
/// `debug` (`RUST_LOG=info,corral::claims=debug`): what a pickup went
/// through, read beside the jobs' times.
pub const CLAIMS_TRACE: &str = "corral::claims";

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this host in leases and attempt records.
    pub host_id: String,
    /// Attempts this host runs at once, beside the fresh lane's
    /// [`FRESH_HEADROOM`].
    pub concurrency: usize,
    /// How long a lease lasts without a heartbeat. A host that dies holds
    /// its jobs this long before the janitor hands them to another.
    pub lease: Duration,
    /// How often leases are extended (and cancel requests polled).
    pub heartbeat: Duration,
    /// The polling fallback when no wake-up arrives (scheduled and retrying
    /// jobs become due this way too).
    pub poll_interval: Duration,
    /// Jobs claimed per round trip at most.
    pub claim_batch: u32,
    /// Threads that run attempts (see [`sandbox_threads`]); 0: attempts
    /// run on the caller's runtime, beside the worker's other tasks.
    pub sandbox_threads: usize,
    pub backoff: Backoff,
    /// How often the janitor looks for expired leases.
    pub janitor_interval: Duration,
    /// Finished jobs older than this are deleted.
    pub retention: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// On shutdown, how long running attempts may take before they are
    /// stopped and handed back.
    pub grace: Duration,
    /// Only jobs of these queues; all when none.
    pub queues: Option<Vec<String>>,
    /// The operator's policy for plugins' outbound HTTP.
    pub outbound: Arc<crate::runtime::outbound::OutboundContext>,
    /// Opens the tenant secrets a plugin's allow-list names; none: no secrets.
    pub secret_key: Option<Arc<crate::secrets::SecretKey>>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            host_id: default_host_id(),
            concurrency: 32,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            poll_interval: Duration::from_secs(1),
            claim_batch: DEFAULT_CLAIM_BATCH,
            sandbox_threads: sandbox_threads::default_count(),
            backoff: Backoff::default(),
            janitor_interval: Duration::from_secs(2),
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_interval: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            queues: None,
            outbound: Arc::default(),
            secret_key: None,
        }
    }
}

/// `hostname-pid`, unique enough among hosts sharing a database.
pub fn default_host_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

/// Why the worker stopped an attempt itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// A client cancelled the job: record `cancelled`.
    CancelRequested,
    /// The host is shutting down: hand the job back without using an attempt.
    Shutdown,
    /// The lease is gone: the janitor took the job after it expired, or
    /// the database lost the claim (docs/queue.md, "Durability"), and the
    /// job may already run again. Forget the attempt.
    LeaseLost,
}

/// Remove `job`'s entry from one of the worker's maps by job if it is `own`
/// (an attempt's, told by its lease token): this host may have claimed the
/// job again, and the newer attempt keeps its entry.
fn remove_own<V>(map: &mut HashMap<JobId, V>, job: JobId, own: impl FnOnce(&V) -> bool) {
    if map.get(&job).is_some_and(own) {
        map.remove(&job);
    }
}

struct Running {
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    claimed_at: Instant,
    /// The attempt's lease: this host may claim the job again while an
    /// older attempt of it still runs here, and each keeps to its own.
    lease_token: uuid::Uuid,
}

impl Running {
    fn stop(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
        self.cancel.cancel();
    }
}

pub struct Worker {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    config: WorkerConfig,
    running: Mutex<HashMap<JobId, Running>>,
    /// Every lease this process holds, from claim until its outcome is
    /// written (or it is handed back or lost): what the heartbeat extends.
    leases: Mutex<HashMap<JobId, uuid::Uuid>>,
    /// Wakes the claim loop: new jobs, or a free slot.
    wake: Notify,
    /// The claim loop's permits: `concurrency` slots, and `concurrency +
    /// MAX_FINISH_BATCH` for jobs whose outcome is not written yet.
    bulk: Permits,
    /// The fresh lane's: [`FRESH_HEADROOM`] of each.
    fresh: Permits,
    /// New jobs were announced: wakes the fresh lane.
    announced: Notify,
    /// Announcements the fresh lane has not answered yet.
    pending: Mutex<announced::Announced>,
    /// The claim loop waits for a wake-up with room to claim: it answers an
    /// announcement itself, and the fresh lane stays out of its way.
    loop_ready: AtomicBool,
    /// The claims of the loop and the lane as they happen. The fresh lane
    /// reads it to tell "nothing to take" from "the loop's claim held the
    /// tenant" (see [`Worker::fresh_lane`]); [`Worker::claims`] lets others
    /// follow it.
    claims: tokio::sync::watch::Sender<Claims>,
    progress: Arc<progress::ProgressBoard>,
    metrics: Arc<Metrics>,
    /// Where attempts run (see [`sandbox_threads`]); none if its threads
    /// could not start, and attempts share the caller's runtime.
    sandbox: Option<sandbox_threads::SandboxThreads>,
}

/// A worker's claims so far (see [`Worker::claims`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims {
    /// Claims the claim loop has begun.
    pub loop_begun: u64,
    /// Claims the claim loop has ended, whatever they took (it makes one
    /// at a time: one is in flight while this is behind `loop_begun`).
    pub loop_ended: u64,
    /// Claims the fresh lane has ended, whatever they took.
    pub lane_ended: u64,
}

impl Claims {
    /// The claim loop has a claim in flight.
    pub fn loop_in_flight(&self) -> bool {
        self.loop_begun > self.loop_ended
    }

    /// The claim loop begins a claim.
    fn begin(&mut self) {
        self.loop_begun += 1;
    }

    /// The claim loop's claim ends.
    fn end(&mut self) {
        self.loop_ended += 1;
    }

    /// Whether the loop has ended each of its first `begun` claims. What
    /// the fresh lane waits for after a claim that found nothing while one
    /// of them held its tenants, rather than for a moment with no claim in
    /// flight: under a backlog the loop claims back to back, the moment
    /// between two claims is shorter than this task takes to wake, and the
    /// lane waited through claim after claim (pickups of 30-55 ms) while
    /// announcements queued behind it (docs/benchmarks.md, "Pickups on a
    /// busy host").
    fn ended_all(&self, begun: u64) -> bool {
        self.loop_ended >= begun
    }
}

/// An outcome on its way to the recorder, with the span of its attempt so
/// that what the recorder logs about it carries the job's fields, and its
/// unrecorded permit, given back once it is written.
type Outcome = (Finish, Span, OwnedSemaphorePermit);

/// The attempt tasks, shared by the claim loop and the fresh lane (aborted
/// if the worker is dropped before it joins them).
type Attempts = Arc<Mutex<tokio::task::JoinSet<()>>>;

fn lock(attempts: &Attempts) -> std::sync::MutexGuard<'_, tokio::task::JoinSet<()>> {
    attempts.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a claimed job holds: a *slot* while its attempt runs, and an
/// *unrecorded* permit until its outcome is written (see the module doc).
struct Permits {
    slots: Arc<Semaphore>,
    unrecorded: Arc<Semaphore>,
}

/// Permits taken for one claim: a slot and an unrecorded permit per job it
/// may take.
struct Taken {
    slots: OwnedSemaphorePermit,
    unrecorded: OwnedSemaphorePermit,
}

impl Permits {
    fn new(slots: usize, unrecorded: usize) -> Permits {
        Permits {
            slots: Arc::new(Semaphore::new(slots)),
            unrecorded: Arc::new(Semaphore::new(unrecorded)),
        }
    }

    /// Jobs a claim could take now: the fewer free of the two.
    fn free(&self) -> usize {
        self.slots
            .available_permits()
            .min(self.unrecorded.available_permits())
    }

    /// `n` of each, or none if either has fewer free (or `n` is 0).
    fn take(&self, n: usize) -> Option<Taken> {
        let n = u32::try_from(n).ok().filter(|n| *n > 0)?;
        Some(Taken {
            slots: self.slots.clone().try_acquire_many_owned(n).ok()?,
            unrecorded: self.unrecorded.clone().try_acquire_many_owned(n).ok()?,
        })
    }
}

impl Worker {
    /// A worker with metrics of its own (nobody serves them).
    pub fn new(store: Arc<dyn Store>, runtime: Arc<Runtime>, config: WorkerConfig) -> Arc<Worker> {
        Worker::with_metrics(store, runtime, config, Arc::new(Metrics::new()))
    }

    /// A worker recording into `metrics` (shared with the process's API).
    pub fn with_metrics(
        store: Arc<dyn Store>,
        runtime: Arc<Runtime>,
        config: WorkerConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Worker> {
        let bulk = Permits::new(config.concurrency, config.concurrency + MAX_FINISH_BATCH);
        let sandbox = match config.sandbox_threads {
            0 => None,
            threads => sandbox_threads::SandboxThreads::start(threads)
                .inspect_err(|e| {
                    tracing::warn!(error = %e, "cannot start the sandbox threads; attempts share the host's")
                })
                .ok(),
        };
        Arc::new(Worker {
            store,
            runtime,
            config,
            running: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            bulk,
            fresh: Permits::new(FRESH_HEADROOM, FRESH_HEADROOM),
            announced: Notify::new(),
            pending: Mutex::default(),
            loop_ready: AtomicBool::new(false),
            claims: tokio::sync::watch::Sender::new(Claims::default()),
            wake: Notify::new(),
            progress: Arc::default(),
            metrics,
            sandbox,
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, uuid::Uuid>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lease `token` of `job` is no longer this process's to extend
    /// (its outcome is written, or it was handed back or lost). A newer
    /// lease of the same job, claimed again by this host, stays.
    fn drop_lease(&self, job: JobId, token: uuid::Uuid) {
        remove_own(&mut self.leases(), job, |held| *held == token);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, announced::Announced> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run until `shutdown` fires, then stop gracefully: no new claims,
    /// running attempts get `grace` to finish, the rest are stopped and handed
    /// back without using an attempt, and every outcome is written.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        self.metrics.worker_running(self.config.concurrency, true);
        let background = CancellationToken::new();
        let (finish_tx, finish_rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().record(finish_rx));
        let events = tokio::spawn(
            self.clone()
                .follow_events(self.store.subscribe(), background.clone()),
        );
        let heartbeat = tokio::spawn(self.clone().heartbeat(background.clone()));
        let seen = presence::arrive(
            self.store.as_ref(),
            self.config.host_id.clone(),
            self.config.concurrency,
        )
        .await;
        let presence = tokio::spawn(presence::keep(self.store.clone(), seen, background.clone()));
        let progress = tokio::spawn(
            self.progress
                .clone()
                .run(self.store.clone(), background.clone()),
        );
        let janitor = tokio::spawn(janitor::run(
            self.store.clone(),
            self.config.clone(),
            self.metrics.clone(),
            background.clone(),
        ));
        let attempts: Attempts = Arc::default();
        let lane = tokio::spawn(self.clone().fresh_lane(
            shutdown.clone(),
            finish_tx.clone(),
            attempts.clone(),
        ));

        self.claim_loop(&shutdown, &finish_tx, &attempts).await;
        // No claim is in flight once both have returned.
        let _ = lane.await;
        let mut attempts = std::mem::take(&mut *lock(&attempts));

        // Shutdown: give running attempts their grace, then stop the rest.
        let all_done = async { while attempts.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.grace, all_done)
            .await
            .is_err()
        {
            let stopped = {
                let running = self.running();
                for attempt in running.values() {
                    attempt.stop(StopReason::Shutdown);
                }
                running.len()
            };
            tracing::info!(stopped, "grace period over; handing running jobs back");
            while attempts.join_next().await.is_some() {}
        }
        drop(finish_tx);
        let _ = recorder.await;
        background.cancel();
        let _ = tokio::join!(events, heartbeat, janitor, progress, presence);
        self.metrics.worker_running(self.config.concurrency, false);
    }

    async fn claim_loop(
        self: &Arc<Self>,
        shutdown: &CancellationToken,
        finish_tx: &mpsc::UnboundedSender<Outcome>,
        attempts: &Attempts,
    ) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            // Reap finished attempt tasks so the set does not grow.
            while lock(attempts).try_join_next().is_some() {}
            self.coalesce(shutdown).await;
            let free = self.bulk.free();
            let mut claimed_full_batch = false;
            if free > 0 {
                let limit = free.min(self.config.claim_batch as usize);
                // Only this loop takes these permits, so they are there.
                if let Some(permits) = self.bulk.take(limit) {
                    self.claims.send_modify(Claims::begin);
                    let claimed = self.claim(false, permits, None, finish_tx, attempts).await;
                    self.claims.send_modify(Claims::end);
                    match claimed {
                        Ok(claimed) => claimed_full_batch = claimed == limit,
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming failed; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(DATABASE_RETRY) => {}
                                () = shutdown.cancelled() => return,
                            }
                            continue;
                        }
                    }
                }
            }
            if claimed_full_batch {
                continue;
            }
            // With room, this loop answers the next announcement itself;
            // without (every slot or unrecorded permit taken), the fresh
            // lane does.
            let ready = self.bulk.free() > 0;
            self.loop_ready.store(ready, Ordering::SeqCst);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => return,
            }
            self.loop_ready.store(false, Ordering::SeqCst);
        }
    }

    /// The fresh lane: when new jobs are announced while the claim loop
    /// cannot answer at once (a claim in flight, its permits all taken
    /// while outcomes wait to be written or every slot is busy), claim
    /// them now, on permits of its own (at most [`FRESH_HEADROOM`] held,
    /// until recorded): in one claim, the announced jobs of the tenants the
    /// announcements named, of those tenants only; [`FRESH_LANE_CLAIM`] job
    /// of anyone's per announcement that named no one ([`announced`]).
    /// Under a backlog the claim loop claims back to back, and a job
    /// enqueued just after a claim began waited for that claim and most of
    /// the next; a host whose slots all run long jobs made it wait for one
    /// to end. A claim of one job per announcement, of whichever tenant's
    /// turn was oldest, could take a backlog's job instead of the new one,
    /// and a burst of one tenant's jobs waited for one claim each
    /// (docs/benchmarks.md, "The fresh lane claims for the tenants it
    /// hears named").
    ///
    /// A claim of the lane that finds nothing while the loop's claim is in
    /// flight may have stepped past the new job's tenant: the loop's claim
    /// held its ring row, and began before the job was committed, so it
    /// does not take the job either. The lane then waits for that claim to
    /// end and claims once more ([`FRESH_LANE_RETRIES`]); without it, the
    /// job waited for the loop's next claim, which under a backlog waits for
    /// an outcome batch to be written (20-30 ms of pickup p99,
    /// docs/benchmarks.md).
    async fn fresh_lane(
        self: Arc<Self>,
        shutdown: CancellationToken,
        finish_tx: mpsc::UnboundedSender<Outcome>,
        attempts: Attempts,
    ) {
        loop {
            tokio::select! {
                () = self.announced.notified() => {}
                () = shutdown.cancelled() => return,
            }
            let mut retries = 0;
            loop {
                let owed = {
                    let mut pending = self.pending();
                    if pending.any() && self.loop_ready.load(Ordering::SeqCst) {
                        // The loop has room and was woken too: it claims them all.
                        pending.clear();
                    }
                    // None when nothing is owed, or no permit is free (the
                    // next announcement, or the loop, answers).
                    pending.next(self.fresh.free())
                };
                let Some(owed) = owed else {
                    break;
                };
                // Only this lane takes these permits, so they are there.
                let Some(permits) = self.fresh.take(owed.jobs) else {
                    break;
                };
                let before = *self.claims.borrow();
                let claimed = self
                    .claim(true, permits, owed.tenants.clone(), &finish_tx, &attempts)
                    .await;
                self.claims.send_modify(|c| c.lane_ended += 1);
                match claimed {
                    // A claim that found some of its jobs does not wait:
                    // the rest were most often taken already (announcements
                    // can outnumber the jobs left), and waiting would hold
                    // up the claims of what is announced meanwhile.
                    Ok(0) if retries < FRESH_LANE_RETRIES && self.overlapped(before) => {
                        retries += 1;
                        // Answer it again once the loop's claim has let go
                        // of the tenants it held.
                        self.pending().put_back(owed);
                        let begun = self.claims.borrow().loop_begun;
                        let mut claims = self.claims.subscribe();
                        tokio::select! {
                            _ = claims.wait_for(|c| c.ended_all(begun)) => {}
                            () = shutdown.cancelled() => return,
                        }
                    }
                    // Nothing of anyone's to take (the loop took it, or its
                    // tenant is at its cap): the rest of the burst is
                    // answered too. A claim for named tenants that found
                    // nothing tells nothing of the others.
                    Ok(0) if owed.tenants.is_none() => self.pending().clear(),
                    Ok(_) => {}
                    // Not retried here: the claim loop (or its polling
                    // fallback) claims the job.
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming for the fresh lane failed");
                        break;
                    }
                }
            }
        }
    }

    /// Whether a claim of the loop was in flight at some time since
    /// `before` was read (and so may have held the ring rows of tenants
    /// another claim looked for).
    fn overlapped(&self, before: Claims) -> bool {
        let now = *self.claims.borrow();
        before.loop_in_flight() || now.loop_in_flight() || now.loop_begun != before.loop_begun
    }

    /// Follow this worker's claims as they happen (what a caller waits on
    /// to act between them, as the worker tests do).
    pub fn claims(&self) -> tokio::sync::watch::Receiver<Claims> {
        self.claims.subscribe()
    }

    /// Claim as many jobs as `permits` hold (of `tenants` only, when
    /// named) and start an attempt for each, which keeps one slot and one
    /// unrecorded permit of them; the rest go back. Returns how many were
    /// claimed. `lane`: the fresh lane's claim (for the trace).
    async fn claim(
        self: &Arc<Self>,
        lane: bool,
        mut permits: Taken,
        tenants: Option<Vec<String>>,
        finish_tx: &mpsc::UnboundedSender<Outcome>,
        attempts: &Attempts,
    ) -> Result<usize, StoreError> {
        let request = ClaimRequest {
            host_id: self.config.host_id.clone(),
            now: Utc::now(),
            limit: permits.slots.num_permits() as u32,
            lease: self.config.lease,
            queues: self.config.queues.clone(),
            tenants,
        };
        let sent = Instant::now();
        let claimed = self.store.job_claim(&request).await;
        self.metrics.claim_round_trip(sent.elapsed());
        let jobs = claimed?;
        let count = jobs.len();
        // Each claim, empty ones too, for reading a pickup's path beside the
        // jobs' times (`bench-serve`'s pickup anatomy; docs/benchmarks.md).
        tracing::debug!(
            target: CLAIMS_TRACE,
            started = %request.now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            lane,
            tenants = ?request.tenants,
            asked = request.limit,
            took = count,
            ms = sent.elapsed().as_secs_f64() * 1e3,
            "claim"
        );
        for job in jobs {
            // A job claimed early (clocks of hosts differ) waited zero.
            self.metrics
                .job_claimed((request.now - job.run_at).to_std().unwrap_or_default());
            let span = tracing::info_span!(
                "attempt",
                tenant = %job.tenant_id,
                job = %job.id,
                attempt = job.attempt,
                plugin = %job.plugin,
                version = job.version,
            );
            // The store returns at most `limit` jobs.
            let (Some(slot), Some(unrecorded)) =
                (permits.slots.split(1), permits.unrecorded.split(1))
            else {
                tracing::error!(
                    "a claim returned more jobs than it asked for; the rest are retried after their lease"
                );
                break;
            };
            self.leases().insert(job.id, job.lease_token);
            let worker = self.clone();
            let finish_tx = finish_tx.clone();
            let attempt = async move {
                worker.clone().attempt(job, unrecorded, finish_tx).await;
                drop(slot);
                worker.wake.notify_one();
            }
            .instrument(span);
            let mut attempts = lock(attempts);
            match self.sandbox.as_ref().and_then(|s| s.handle()) {
                Some(threads) => attempts.spawn_on(attempt, threads),
                None => attempts.spawn(attempt),
            };
        }
        Ok(count)
    }

    /// When some attempts are running and fewer than half a batch of slots
    /// are free, wait (briefly) for more to free up.
    async fn coalesce(&self, shutdown: &CancellationToken) {
        let half_batch = (self.config.claim_batch as usize)
            .min(self.config.concurrency)
            .div_ceil(2);
        let slots = &self.bulk.slots;
        let running = || self.config.concurrency - slots.available_permits();
        if running() == 0 || slots.available_permits() >= half_batch {
            return;
        }
        let deadline = tokio::time::Instant::now() + CLAIM_COALESCE;
        while slots.available_permits() < half_batch && running() > 0 {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => return,
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One attempt: load the plugin, run it, hand the outcome to the recorder.
    async fn attempt(
        self: Arc<Self>,
        mut job: ClaimedJob,
        unrecorded: OwnedSemaphorePermit,
        finish_tx: mpsc::UnboundedSender<Outcome>,
    ) {
        tracing::debug!(max_attempts = job.max_attempts, "claimed");
        let _in_flight = self.metrics.attempt_in_flight();
        let cancel = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        let older = self.running().insert(
            job.id,
            Running {
                cancel: cancel.clone(),
                reason: reason.clone(),
                claimed_at: Instant::now(),
                lease_token: job.lease_token,
            },
        );
        // This host claimed the job again while an older attempt of it
        // still runs: that attempt's lease is gone (it expired, or the
        // database lost its claim), and the heartbeat, which finds
        // attempts by job, could no longer find it to stop it.
        if let Some(older) = older {
            older.stop(StopReason::LeaseLost);
        }
        let started_at = Utc::now();
        let report = match self.plugin(&job.digest).await {
            Ok(plugin) => {
                let request = AttemptRequest {
                    job: JobInput {
                        id: job.id.to_string(),
                        tenant: job.tenant_id.clone(),
                        plugin: job.plugin.clone(),
                        attempt: job.attempt,
                        max_attempts: job.max_attempts,
                        input: std::mem::take(&mut job.input),
                        context: job.context.take(),
                    },
                    limits: job.limits,
                    config: Arc::new(std::mem::take(&mut job.config)),
                    cancel,
                    progress: Some(self.progress.sink(job.id, job.lease_token)),
                    http: self.http_grant(&job).await,
                };
                let report = self.runtime.run(&plugin, request).await;
                self.metrics.attempt_ran(
                    report.duration,
                    report.fuel_consumed,
                    report.peak_memory_bytes,
                );
                if !report.http.is_empty() {
                    self.metrics.plugin_http(&job.tenant_id, &report.http);
                }
                report
            }
            Err(PluginLoad::Busy(e)) => AttemptReport::host_full(e),
            Err(PluginLoad::Failed(e)) => AttemptReport::host_failure(
                format!("cannot load plugin {} ({}): {e}", job.plugin, job.digest),
                Duration::ZERO,
            ),
        };
        let finished_at = Utc::now();
        remove_own(&mut self.running(), job.id, |r| {
            r.lease_token == job.lease_token
        });
        self.progress.forget(job.id, job.lease_token);
        let reason = *reason.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(StopReason::Shutdown) if report.outcome == OutcomeKind::Cancelled => {
                match self.store.job_release(job.id, job.lease_token, None).await {
                    Ok(_) => tracing::info!("shutting down: job handed back"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not hand the job back; its lease will expire")
                    }
                }
                self.drop_lease(job.id, job.lease_token);
                return;
            }
            Some(StopReason::LeaseLost) => {
                self.metrics.attempt_lease_lost();
                tracing::info!(
                    "lease lost (taken over after it expired, or the database lost the claim); dropping this attempt's outcome"
                );
                self.drop_lease(job.id, job.lease_token);
                return;
            }
            _ => {}
        }
        if report.host_full {
            // Other plugins held the pool, or the compilers: the job is
            // not charged for it.
            let retry_at =
                finished_at + chrono::TimeDelta::from_std(POOL_FULL_RETRY).unwrap_or_default();
            self.metrics.attempt_host_full();
            match self
                .store
                .job_release(job.id, job.lease_token, Some(retry_at))
                .await
            {
                Ok(_) => tracing::warn!(
                    guest_message = report.message.as_deref(),
                    "no room on this host (instance pool or compilers); job handed back without using an attempt"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand the job back; its lease will expire")
                }
            }
            self.drop_lease(job.id, job.lease_token);
            return;
        }
        // A completed attempt is the common case: at thousands a second, a
        // line each would cost more than the attempt. It is a debug line;
        // every other outcome is worth an operator's attention.
        macro_rules! attempt_finished {
            ($level:ident) => {
                tracing::$level!(
                    outcome = %report.outcome,
                    duration_ms = report.duration.as_secs_f64() * 1000.0,
                    fuel_consumed = report.fuel_consumed,
                    peak_memory_bytes = report.peak_memory_bytes,
                    // The guest's text: a field of its own (never the line's
                    // `message`), recorded as a string, so it is escaped.
                    guest_message = report.message.as_deref(),
                    "attempt finished"
                )
            };
        }
        if report.outcome == OutcomeKind::Completed {
            attempt_finished!(debug);
        } else {
            attempt_finished!(info);
        }
        let transition = retry::transition(
            report.outcome,
            report.result.clone(),
            report.message.as_deref(),
            job.attempt,
            job.max_attempts,
            retry::RetryClock {
                now: finished_at,
                backoff: &self.config.backoff,
                unit: fastrand::f64(),
            },
        );
        let finish = Finish {
            workflow_run_id: job.workflow_run_id,
            job_id: job.id,
            lease_token: job.lease_token,
            attempt: Attempt {
                attempt: job.attempt,
                outcome: report.outcome,
                message: report.message,
                started_at,
                finished_at,
                fuel_consumed: report.fuel_consumed,
                peak_memory_bytes: report.peak_memory_bytes,
                host_id: self.config.host_id.clone(),
                log: report.log.text,
                log_dropped_bytes: report.log.dropped_bytes,
                http: (!report.http.is_empty()).then_some(report.http),
            },
            transition,
            progress: report.progress,
        };
        // The recorder outlives every attempt task (see `run`).
        let _ = finish_tx.send((finish, Span::current(), unrecorded));
    }

    /// What the job's attempt may do over HTTP: its plugin's allow-list
    /// (less the entries the operator's `--outbound-hosts` does not permit)
    /// and limits under this host's network policy. Settings stored by a
    /// newer version that do not parse deny every request.
    async fn http_grant(&self, job: &ClaimedJob) -> crate::runtime::outbound::HttpGrant {
        let allow = job
            .http
            .validate()
            .unwrap_or_else(|e| {
                tracing::warn!(job = %job.id, plugin = %job.plugin, error = %e,
                "the plugin's stored http settings do not parse; its requests are denied");
                Default::default()
            })
            .restricted(&self.config.outbound.hosts);
        let secrets = self.secrets_for(job, &allow).await;
        crate::runtime::outbound::HttpGrant {
            allow,
            limits: job.http.limits(),
            secrets: Arc::new(secrets),
            context: self.config.outbound.clone(),
        }
    }

    /// The tenant secrets `allow` names, opened. One that is missing or does
    /// not open is left out: a request naming it is refused, and the
    /// attempt's record says why.
    async fn secrets_for(
        &self,
        job: &ClaimedJob,
        allow: &crate::runtime::outbound::AllowList,
    ) -> std::collections::BTreeMap<String, String> {
        let names: Vec<String> = allow.secret_names().into_iter().collect();
        let mut opened = std::collections::BTreeMap::new();
        let Some(key) = &self.config.secret_key else {
            return opened;
        };
        if names.is_empty() {
            return opened;
        }
        let sealed = match self.store.secrets_sealed(&job.tenant_id, &names).await {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "reading the tenant's secrets failed");
                return opened;
            }
        };
        for (name, sealed) in sealed {
            match key.open(&job.tenant_id, &name, &sealed) {
                Ok(value) => {
                    opened.insert(name, value);
                }
                Err(e) => tracing::warn!(job = %job.id, secret = %name, error = %e,
                    "a tenant secret does not open; requests naming it are refused"),
            }
        }
        opened
    }

    /// The compiled plugin for `digest`, from the runtime's one cache, its
    /// bytes fetched from the store only when they must be compiled.
    async fn plugin(&self, digest: &str) -> Result<Arc<Plugin>, PluginLoad> {
        let parsed = crate::model::Digest::parse(digest)
            .ok_or_else(|| PluginLoad::Failed(format!("stored digest {digest} does not parse")))?;
        self.runtime
            .load_stored(parsed, || async {
                self.store.plugin_blob_get(digest).await?.ok_or_else(|| {
                    PluginLoad::from(StoreError::NotFound(format!(
                        "no component stored for {digest}"
                    )))
                })
            })
            .await
    }

    /// Write outcomes in batches until every sender is gone.
    async fn record(self: Arc<Self>, mut outcomes: mpsc::UnboundedReceiver<Outcome>) {
        while let Some(first) = outcomes.recv().await {
            let (mut batch, mut spans, mut permits) = (Vec::new(), Vec::new(), Vec::new());
            let mut next = Some(first);
            while let Some((finish, span, permit)) = next.take() {
                batch.push(finish);
                spans.push(span);
                permits.push(permit);
                if batch.len() < MAX_FINISH_BATCH {
                    next = outcomes.try_recv().ok();
                }
            }
            let applied = self.write_outcomes(&batch).await;
            for finish in &batch {
                self.drop_lease(finish.job_id, finish.lease_token);
            }
            drop(permits);
            self.wake.notify_one();
            for ((finish, span), applied) in batch.iter().zip(&spans).zip(applied) {
                if applied {
                    span.in_scope(|| self.recorded(finish));
                }
            }
        }
    }

    /// Count and log an outcome that was written (in its attempt's span).
    fn recorded(&self, finish: &Finish) {
        self.metrics
            .attempt_recorded(finish.attempt.outcome, finish.transition.state());
        match &finish.transition {
            Transition::Complete { .. } => tracing::debug!("job completed"),
            Transition::Retry { run_at, .. } => tracing::info!(%run_at, "retry scheduled"),
            // `error` holds the guest's message: recorded as a string (escaped), not displayed raw.
            Transition::Dead { error } => tracing::info!(error = error.as_str(), "job dead"),
            Transition::Cancel => tracing::info!("job cancelled"),
        }
    }

    /// Write a batch of outcomes. An outcome is never dropped for a database
    /// hiccup: the batch is retried until written (or fenced out because the
    /// lease moved on). An error of the database itself (the server refused
    /// the statement) would repeat forever, so the batch is split to isolate
    /// the outcome it refuses; that one is dropped and logged, its lease
    /// expires, and the janitor retries the job. Returns, per finish, whether
    /// it was applied.
    pub async fn write_outcomes(&self, batch: &[Finish]) -> Vec<bool> {
        let mut applied = vec![false; batch.len()];
        // Parts of the batch still to write, as (start, end) indexes into it.
        let mut pending = vec![(0, batch.len())];
        while let Some((start, end)) = pending.pop() {
            let range = start..end;
            let part = &batch[range.clone()];
            loop {
                match self.store.job_finish(part).await {
                    Ok(done) => {
                        let stale = done.iter().filter(|a| !**a).count();
                        if stale > 0 {
                            tracing::info!(stale, "outcomes fenced out: their leases had moved on");
                        }
                        for (slot, done) in applied[range.clone()].iter_mut().zip(done) {
                            *slot = done;
                        }
                        break;
                    }
                    Err(e) if refused(&e) => {
                        if part.len() > 1 {
                            let middle = start + part.len() / 2;
                            pending.push((start, middle));
                            pending.push((middle, end));
                        } else {
                            tracing::error!(job = %part[0].job_id, error = %e, "the database refuses this outcome; dropping it");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, jobs = part.len(), "recording outcomes failed; retrying");
                        tokio::time::sleep(DATABASE_RETRY).await;
                    }
                }
            }
        }
        applied
    }

    /// New jobs of `tenant` (of anyone's when none) were announced: wake
    /// the claim loop, and the fresh lane in case the loop cannot answer.
    fn announce(&self, tenant: Option<String>) {
        tracing::debug!(
            target: CLAIMS_TRACE,
            tenant = ?tenant,
            loop_ready = self.loop_ready.load(Ordering::SeqCst),
            lane_free = self.fresh.free(),
            "announced"
        );
        self.wake.notify_one();
        self.pending().add(tenant);
        self.announced.notify_one();
    }

    /// Cancel requests arrive as events; new jobs wake the claim loop.
    async fn follow_events(
        self: Arc<Self>,
        mut events: broadcast::Receiver<StoreEvent>,
        stop: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = stop.cancelled() => return,
            };
            match event {
                Ok(StoreEvent::JobsAvailable(tenant)) => self.announce(tenant),
                // Announcements may have been lost: of anyone's jobs.
                Err(broadcast::error::RecvError::Lagged(_)) => self.announce(None),
                Ok(StoreEvent::CancelRequested(id)) => {
                    if let Some(attempt) = self.running().get(&id) {
                        attempt.stop(StopReason::CancelRequested);
                    }
                }
                // A released job is claimable again.
                Ok(StoreEvent::JobState(_, JobState::Available)) => self.wake.notify_one(),
                Ok(
                    StoreEvent::JobState(..)
                    | StoreEvent::JobProgress(_)
                    | StoreEvent::RunState(..)
                    | StoreEvent::RunAwaitsEvaluation(_),
                ) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Extend leases; stop attempts that were cancelled or whose lease was lost.
    async fn heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let leases: Vec<Lease> = self
                .leases()
                .iter()
                .map(|(&job_id, &lease_token)| Lease {
                    job_id,
                    lease_token,
                })
                .collect();
            let sent = Instant::now();
            let beat = match self
                .store
                .job_heartbeat(&leases, Utc::now(), self.config.lease)
                .await
            {
                Ok(beat) => beat,
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed; leases are not being extended");
                    continue;
                }
            };
            let held: std::collections::HashSet<JobId> = beat.held.iter().copied().collect();
            let running = self.running();
            for id in &beat.cancel_requested {
                if let Some(attempt) = running.get(id) {
                    attempt.stop(StopReason::CancelRequested);
                }
            }
            for (id, attempt) in running.iter() {
                // A job claimed after the heartbeat was sent is not in its answer.
                if attempt.claimed_at < sent && !held.contains(id) {
                    attempt.stop(StopReason::LeaseLost);
                }
            }
        }
    }
}

/// Why a worker could not get a plugin ready.
#[derive(Debug)]
enum PluginLoad {
    /// The host's compiler slots stayed busy: no fault of the job's.
    Busy(String),
    Failed(String),
}

impl From<crate::runtime::RuntimeError> for PluginLoad {
    fn from(e: crate::runtime::RuntimeError) -> PluginLoad {
        match e {
            crate::runtime::RuntimeError::Busy(m) => PluginLoad::Busy(m),
            other => PluginLoad::Failed(other.to_string()),
        }
    }
}

impl From<StoreError> for PluginLoad {
    fn from(e: StoreError) -> PluginLoad {
        PluginLoad::Failed(e.to_string())
    }
}

/// Whether writing outcomes failed in a way that would fail again the same
/// way (the server refused a statement, a stored value does not decode, a
/// workflow's step cannot be created): retrying would block the recorder
/// forever, so the batch is split instead. A deadlock or a serialization
/// failure is transient and retried.
fn refused(e: &StoreError) -> bool {
    !e.is_transient()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Claims;

    /// The loop's claim that held the lane's tenants ends and its next
    /// begins before the lane's task runs again (a backlog's claims, back to
    /// back, on a busy machine): the lane's wait is over, though it never
    /// sees a moment with no claim in flight.
    #[tokio::test]
    async fn the_lane_waits_for_the_claims_that_held_it_not_for_a_pause_between_them() {
        let mut now = Claims::default();
        now.begin();
        let (claims, _) = tokio::sync::watch::channel(now);
        let begun = claims.borrow().loop_begun;
        let mut lane = claims.subscribe();
        claims.send_modify(Claims::end);
        claims.send_modify(Claims::begin);
        assert!(
            lane.borrow().loop_in_flight(),
            "the next claim is in flight"
        );
        assert!(!lane.borrow().ended_all(begun + 1), "and has not ended");
        tokio::time::timeout(
            Duration::from_secs(60),
            lane.wait_for(|c| c.ended_all(begun)),
        )
        .await
        .expect("the claim the lane waits for has ended")
        .expect("the worker's claims");
    }
}
