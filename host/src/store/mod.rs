//! The only place that speaks SQL. [`Store`] is implemented by
//! [`postgres::PostgresStore`] (production, any number of hosts) and
//! [`sqlite::SqliteStore`] (the embedded default, one host). Both pass the
//! one conformance suite in `tests/tests/it/store.rs`.
//!
//! Every method that compares times takes `now`, so tests control the clock.

pub(crate) mod codec;
pub mod postgres;
pub mod request_keys;
pub(crate) mod rows;
pub mod schedules;
pub mod secrets;
pub mod sqlite;
pub mod workflows;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use request_keys::RequestKey;
pub use schedules::ScheduleStore;
pub use workflows::{NewRun, RunCancel, RunFilter, WorkflowStore};

use crate::model::{
    ApiKey, Attempt, ClaimedJob, Finish, Job, JobId, JobState, Limits, NewJob, PluginVersion,
    ProgressUpdate, Quotas, Tenant, Timestamp,
};

/// Errors at the store boundary: a typed refusal per rule, or the
/// database's failure, already classified as transient or not, so callers
/// match on variants and never see a `sqlx` type.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Something the caller named does not exist (a tenant, a job, a run,
    /// a key, a plugin version to delete).
    #[error("{0}")]
    NotFound(String),
    /// A job names a plugin (or version) the tenant does not have.
    #[error("{0}")]
    UnknownPlugin(String),
    /// The request conflicts with what is stored (an existing id, a terminal job).
    #[error("{0}")]
    Conflict(String),
    /// The tenant already has its `max_queued_jobs` waiting.
    #[error("{0}")]
    QueueFull(String),
    /// The request breaks a rule of the data (checked before anything is written).
    #[error("{0}")]
    Invalid(String),
    /// A workflow definition breaks a rule (its steps, their names, their
    /// expressions), named by the definition's own error.
    #[error(transparent)]
    InvalidDefinition(#[from] crate::workflow::DefinitionError),
    /// The request would take the tenant over one of its quotas (named).
    #[error("{0}")]
    OverQuota(String),
    /// The tenant's `enqueue_per_minute` is used up for the minute holding
    /// `at` (the HTTP layer says when to come back).
    #[error("the tenant's enqueue_per_minute of {per_minute} is used up for this minute")]
    RateLimited { per_minute: u64, at: Timestamp },
    /// An idempotency key already used by a different request.
    #[error("{0}")]
    KeyReused(String),
    /// The database could not be reached or gave up on a statement that
    /// may pass when tried again (a pool timeout, a broken connection, a
    /// deadlock, a serialization failure).
    #[error("database: {0}")]
    Unavailable(DatabaseError),
    /// The database refused a statement, or stored data does not decode:
    /// doing the same again fails again.
    #[error("database: {0}")]
    Failed(DatabaseError),
}

impl StoreError {
    /// Whether the same call may succeed later: only when the database was
    /// unavailable. Every refusal and every failure is final.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// What a schedule's tick records when starting its target was refused
    /// (the target is gone, invalid or over the tenant's queue): the
    /// refusal's message, or the error itself when it is not one such.
    pub(crate) fn into_tick_refusal(self) -> Result<String, StoreError> {
        match self {
            StoreError::Invalid(m)
            | StoreError::NotFound(m)
            | StoreError::UnknownPlugin(m)
            | StoreError::Conflict(m)
            | StoreError::QueueFull(m) => Ok(m),
            other => Err(other),
        }
    }

    /// A tenant the call names is not stored.
    pub(crate) fn unknown_tenant(tenant: &str) -> StoreError {
        StoreError::NotFound(format!("tenant `{tenant}` does not exist"))
    }

    /// A job names a plugin (or a version of it) the tenant does not have.
    pub(crate) fn unknown_plugin(plugin: &str, version: Option<u32>) -> StoreError {
        StoreError::UnknownPlugin(match version {
            Some(v) => format!("plugin `{plugin}` has no version {v}"),
            None => format!("plugin `{plugin}` does not exist"),
        })
    }

    /// Stored data that does not read back as it must (`what` names it).
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
        StoreError::Failed(DatabaseError(Box::new(sqlx::Error::Decode(
            what.to_string().into(),
        ))))
    }
}

/// A failure of the database, kept opaque: its text says what happened,
/// and [`StoreError`] says what it means.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DatabaseError(Box<dyn std::error::Error + Send + Sync>);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        let transient = match &e {
            sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // SQLite's busy and locked, in their extended forms too.
                Some(_) => db
                    .code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
                // PostgreSQL's serialization failure and deadlock, a lost
                // connection (class 08), too many connections or too little
                // memory (class 53), and a server shutting down or starting.
                None => db.code().is_some_and(|code| {
                    matches!(&*code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                        || code.starts_with("08")
                        || code.starts_with("53")
                }),
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            _ => false,
        };
        let e = DatabaseError(Box::new(e));
        if transient {
            StoreError::Unavailable(e)
        } else {
            StoreError::Failed(e)
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        StoreError::Failed(DatabaseError(Box::new(e)))
    }
}

/// Which database a store speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A wake-up from the store: something changed that a worker may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Jobs were enqueued (or released) and may be claimable: all of one
    /// tenant's when it is named, else of any tenants.
    JobsAvailable(Option<String>),
    /// A client asked to cancel this running job.
    CancelRequested(JobId),
    /// A job moved to another state (enqueueing is announced by `JobsAvailable`).
    JobState(JobId, JobState),
    /// A running job's progress was recorded.
    JobProgress(JobId),
    /// A workflow run changed (its steps, or its state): `running` while
    /// it goes on, then once the state it finished in.
    RunState(crate::workflow::RunId, crate::workflow::RunState),
    /// This process committed a run whose ready steps wait for their
    /// expressions (announced only in the process that marked it; its
    /// evaluator takes it, and other hosts' evaluators find it only if it is
    /// still marked after `evaluator::ORPHAN_AFTER`).
    RunAwaitsEvaluation(crate::workflow::RunId),
}

/// What deleting a plugin version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginDelete {
    Deleted,
    /// No such version (or it was already deleted).
    NotFound,
    /// This many unfinished jobs, or steps of running workflow runs, are
    /// pinned to the version.
    InUse(u64),
}

/// Which jobs a listing (or a bulk replay or cancel) selects.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub queue: Option<String>,
    pub plugin: Option<String>,
    /// Only jobs created at or after this time (a bound on the time-ordered
    /// id, so it narrows the index walk rather than filtering rows).
    pub created_after: Option<Timestamp>,
    /// Only jobs created before this time (idem).
    pub created_before: Option<Timestamp>,
    /// Only jobs whose error holds this text (case-sensitive; at most
    /// [`MAX_FILTER_TEXT`] bytes).
    pub error_contains: Option<String>,
    /// Only jobs no other job replays yet (bulk replay: repeating it replays
    /// each job once).
    pub unreplayed: bool,
    /// Only jobs not finished yet (bulk cancel).
    pub unfinished: bool,
    /// Read each job's input and result too. Without it a listing reads
    /// neither (their fields are left empty): a page of 500 jobs of 1 MiB
    /// each would be a gigabyte to read and send.
    pub bodies: bool,
}

impl JobFilter {
    /// Whether the filter drops rows of the id range (so a page may need to
    /// examine many rows to fill, and its walk is bounded).
    pub fn filters_rows(&self) -> bool {
        self.state.is_some()
            || self.queue.is_some()
            || self.plugin.is_some()
            || self.error_contains.is_some()
            || self.unreplayed
            || self.unfinished
    }
}

/// The lowest UUIDv7 of the millisecond of `t`: every id made at or after
/// `t` is at least this, every id made before it is below (jobs' ids are
/// UUIDv7, so a time range is an id range of the listing's index).
pub fn first_id_at(t: Timestamp) -> JobId {
    let ms = t.timestamp_millis().clamp(0, (1 << 48) - 1) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    uuid::Uuid::from_bytes(bytes)
}

/// Longest text of a filter (`error_contains`): a substring test costs its
/// length for every row examined.
pub const MAX_FILTER_TEXT: usize = 200;

/// Jobs one filtered page examines at most. Threat: a filter that matches
/// nothing among a tenant's million jobs would otherwise read all of them
/// on every request. A page that stops here is short (even empty) and
/// carries a cursor to continue below the last job examined.
pub const MAX_SCANNED_PER_PAGE: u32 = 10_000;

/// Jobs a count (the dry run of a bulk replay or cancel) examines at most;
/// past it the count is a lower bound.
pub const MAX_SCANNED_PER_COUNT: u32 = 100_000;

/// A page of a listing.
#[derive(Debug, Clone, Default)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// The oldest job examined, when the page stopped at
    /// [`MAX_SCANNED_PER_PAGE`]: the next page continues below it.
    pub scanned_to: Option<JobId>,
}

/// How many jobs a filter matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCount {
    pub matched: u64,
    /// The count stopped at [`MAX_SCANNED_PER_COUNT`] jobs examined: more
    /// may match.
    pub lower_bound: bool,
}

/// Dead jobs of one plugin with one error (its first
/// [`DEAD_GROUP_ERROR_CHARS`] characters), and when the newest died: the
/// API's own type, as the store reads it.
pub use corral_client::api::DeadLetterGroup as DeadGroup;
/// The jobs that finished in one minute: the API's own type.
pub use corral_client::api::FinishedMinute;

/// Characters of an error that name its dead-letter group.
pub const DEAD_GROUP_ERROR_CHARS: u32 = 200;
/// Newest dead jobs (not yet replayed) the groups are made of. Threat: a
/// tenant with millions of dead jobs would make each view read them all.
pub const DEAD_GROUP_SCAN: u32 = 10_000;
/// Groups shown at most, the largest first.
pub const MAX_DEAD_GROUPS: u32 = 100;

/// A tenant's jobs at a glance, read without scanning its finished jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOverview {
    /// Jobs per non-terminal state (from the partial indexes of waiting and
    /// running jobs).
    pub live: std::collections::BTreeMap<JobState, u64>,
    /// When the oldest job still waiting to run became due.
    pub oldest_due: Option<Timestamp>,
    /// The tenant's running attempts per host.
    pub running_by_host: std::collections::BTreeMap<String, u64>,
    /// Jobs that finished in each minute of the window, oldest first: one
    /// entry per minute, with counts per terminal state.
    pub finished_per_minute: Vec<FinishedMinute>,
}

/// Minutes of finished jobs in the overview.
pub const OVERVIEW_MINUTES: u32 = 60;

/// Bytes of input and result one listing reads when asked for them: the
/// store stops after the job that reaches it, so a page costs this (plus
/// one job) however large its jobs are, and ends early, with a cursor.
pub const MAX_PAGE_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Jobs of a listing from a row stream: every row, or with bodies, the
/// rows until their inputs and results reach [`MAX_PAGE_BODY_BYTES`] (the
/// rest are never read).
pub(crate) async fn collect_page<S>(rows: S, bodies: bool) -> Result<Vec<Job>, StoreError>
where
    S: futures_util::Stream<Item = Result<Job, StoreError>>,
{
    use futures_util::StreamExt;
    let mut rows = std::pin::pin!(rows);
    let (mut jobs, mut bytes) = (Vec::new(), 0usize);
    while let Some(job) = rows.next().await {
        let job = job?;
        bytes += job.input.len() + job.result.as_ref().map_or(0, String::len);
        jobs.push(job);
        if bodies && bytes >= MAX_PAGE_BODY_BYTES {
            break;
        }
    }
    Ok(jobs)
}

/// Whether a page read with bodies stopped at [`MAX_PAGE_BODY_BYTES`]
/// (more jobs may follow it).
pub fn page_cut_by_bytes(jobs: &[Job]) -> bool {
    jobs.iter()
        .map(|j| j.input.len() + j.result.as_ref().map_or(0, String::len))
        .sum::<usize>()
        >= MAX_PAGE_BODY_BYTES
}

/// What claiming asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub host_id: String,
    pub now: Timestamp,
    /// At most this many jobs.
    pub limit: u32,
    /// How long the lease lasts unless extended by a heartbeat.
    pub lease: Duration,
    /// Only these queues; all when none.
    pub queues: Option<Vec<String>>,
    /// Only these tenants' jobs; every tenant's when none. The worker's
    /// fresh lane names the tenants whose new jobs were announced, so its
    /// few permits go to them and not to a backlog's jobs.
    pub tenants: Option<Vec<String>>,
}

/// A running job whose lease has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLease {
    pub job_id: JobId,
    pub lease_token: uuid::Uuid,
    pub attempt: u32,
    pub max_attempts: u32,
    pub leased_by: String,
    pub started_at: Timestamp,
    /// The workflow run the job is a step of.
    pub workflow_run_id: Option<crate::workflow::RunId>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelResult {
    /// The job was waiting and is now `cancelled`.
    Cancelled,
    /// The job is running; its host was asked to stop it.
    Requested,
    /// The job had already finished (`completed`, `dead` or `cancelled`).
    AlreadyFinished,
    NotFound,
}

/// A key as the API authenticates a request with it: the key, and its
/// tenant's quotas read in the same statement (none for an admin key, or
/// for a key whose tenant is gone), so no second read fetches them.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyLookup {
    pub key: ApiKey,
    pub quotas: Option<Quotas>,
}

/// One enqueued job: its id, and whether this call created it (false when
/// an idempotency key matched an earlier job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    pub id: JobId,
    pub created: bool,
}

/// A new plugin version to store.
#[derive(Debug, Clone)]
pub struct NewPlugin {
    pub tenant_id: String,
    pub name: String,
    pub digest: String,
    pub limits: Limits,
    pub max_attempts: u32,
    /// Outbound HTTP settings; none inherits the latest version's.
    pub http: Option<crate::runtime::outbound::HttpSettings>,
}

/// A lease one process holds: the job and the token its claim returned.
/// Heartbeats name leases by token, never by host id: a host restarted
/// under the same id must not renew what its dead predecessor held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job_id: JobId,
    pub lease_token: uuid::Uuid,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Leases still held (extended, or extended at the next beat).
    pub held: Vec<JobId>,
    /// Of those, the ones a client asked to cancel.
    pub cancel_requested: Vec<JobId>,
}

#[async_trait]
pub trait Store: WorkflowStore + ScheduleStore + secrets::SecretStore + Send + Sync {
    fn backend(&self) -> Backend;

    /// Apply the migrations that have not been applied yet.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Whether the database answers and the migrations are applied.
    async fn ready(&self) -> Result<(), StoreError>;

    /// Wake-ups for workers. Missing one is harmless: workers also poll.
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;

    async fn tenant_insert(&self, tenant: &Tenant) -> Result<(), StoreError>;
    async fn tenant_get(&self, id: &str) -> Result<Option<Tenant>, StoreError>;

    /// Store a new version of a plugin (its bytes once per digest). When the
    /// latest version has the same digest, returns it with `false`.
    async fn tenant_list(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Delete a tenant and everything it owns (keys, plugins and the bytes
    /// no other tenant uses, jobs and their attempts, workflows and runs,
    /// schedules and ticks, secrets, idempotency keys, rate counters); false
    /// when there is no such tenant. Jobs go first in batches of
    /// [`TENANT_DELETE_BATCH`], each its own statement, then the rest in one
    /// transaction.
    async fn tenant_delete(&self, id: &str) -> Result<bool, StoreError>;
    /// Replace a tenant's quotas; None when there is no such tenant.
    async fn tenant_update_quotas(
        &self,
        id: &str,
        quotas: &Quotas,
    ) -> Result<Option<Tenant>, StoreError>;
    async fn api_key_insert(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// A key by id, revoked or not, with its tenant's quotas.
    async fn api_key_get(&self, id: &str) -> Result<Option<KeyLookup>, StoreError>;
    /// Revoke a tenant's key (an admin key when `tenant` is none); false
    /// when there is no such unrevoked key.
    async fn api_key_revoke(
        &self,
        tenant: Option<&str>,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// A tenant's keys (the admin keys when `tenant` is none), revoked ones
    /// included, oldest first, at most `limit`.
    async fn api_key_list(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError>;
    /// Whether an unrevoked admin key exists (the first start makes one).
    async fn admin_key_exists(&self) -> Result<bool, StoreError>;

    async fn plugin_insert(
        &self,
        plugin: &NewPlugin,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(PluginVersion, bool), StoreError>;
    /// A version of a plugin; the latest when `version` is none.
    async fn plugin_get(
        &self,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<PluginVersion>, StoreError>;
    /// The latest version of each of a tenant's plugins, by name.
    async fn plugin_list(&self, tenant: &str) -> Result<Vec<PluginVersion>, StoreError>;
    /// Every version of one plugin, newest first.
    async fn plugin_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<PluginVersion>, StoreError>;
    /// Change the settings of every version of a plugin: its limits and max
    /// attempts, and/or its config (replaced whole). Returns the latest
    /// version, or None when there is no such plugin. New versions inherit
    /// the latest version's config.
    async fn plugin_update(
        &self,
        tenant: &str,
        name: &str,
        limits: Option<(Limits, u32)>,
        config: Option<&std::collections::BTreeMap<String, String>>,
        http: Option<&crate::runtime::outbound::HttpSettings>,
    ) -> Result<Option<PluginVersion>, StoreError>;
    async fn plugin_blob_get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Bytes of the components the tenant's live versions name, each
    /// distinct component once, leaving out `except` (the `max_stored_plugin_bytes` quota).
    async fn plugin_stored_bytes(&self, tenant: &str, except: &str) -> Result<u64, StoreError>;
    /// Delete a version unless unfinished jobs are pinned to it. A tombstone
    /// stays for the finished jobs that name it; its number is not reused,
    /// and enqueueing it (or resolving "latest" to it) no longer works.
    async fn plugin_delete(
        &self,
        tenant: &str,
        name: &str,
        version: u32,
        now: Timestamp,
    ) -> Result<PluginDelete, StoreError>;

    /// Enqueue jobs for one tenant, all or nothing, pinning each to a plugin
    /// version. Returns one entry per job, in order.
    async fn job_insert_batch(
        &self,
        tenant: &str,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError> {
        self.job_insert_keyed(tenant, jobs, None, None, now).await
    }
    /// [`Store::job_insert_batch`] under an idempotency key: a request seen
    /// before under the key answers its first jobs (none created), a
    /// different one is [`StoreError::KeyReused`]. With `rate`, the jobs it
    /// creates count against the tenant's enqueue rate, and a batch that
    /// would pass it is refused whole ([`StoreError::RateLimited`]), nothing
    /// stored or counted.
    async fn job_insert_keyed(
        &self,
        tenant: &str,
        jobs: &[NewJob],
        key: Option<&RequestKey>,
        rate: Option<RateLimit>,
        now: Timestamp,
    ) -> Result<Vec<Inserted>, StoreError>;
    /// A tenant's jobs, newest first, filtered, after the cursor (a job id).
    async fn job_list(
        &self,
        tenant: &str,
        filter: &JobFilter,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<JobPage, StoreError>;
    /// How many of a tenant's jobs match `filter`, examining at most
    /// [`MAX_SCANNED_PER_COUNT`] of them.
    async fn job_count(&self, tenant: &str, filter: &JobFilter) -> Result<JobCount, StoreError>;
    /// A tenant's newest dead jobs not yet replayed, grouped by plugin and
    /// error, the largest groups first.
    async fn job_dead_groups(&self, tenant: &str) -> Result<Vec<DeadGroup>, StoreError>;
    /// A tenant's live jobs and the jobs finished in the last
    /// [`OVERVIEW_MINUTES`] minutes before `now`.
    async fn job_overview(&self, tenant: &str, now: Timestamp) -> Result<JobOverview, StoreError>;
    async fn job_get(&self, tenant: &str, id: JobId) -> Result<Option<Job>, StoreError>;
    /// Claim waiting jobs whose time has come, fairly across tenants and
    /// within each tenant's `max_concurrency`, taking a lease on each.
    async fn job_claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError>;
    /// Extend `leases` (those still running with that token). Never waits
    /// on a row lock: a row another transaction holds (its outcome being
    /// written, a cancel) is reported as held but extended at the next beat,
    /// so a heartbeat can never deadlock with the statements that finish jobs.
    async fn job_heartbeat(
        &self,
        leases: &[Lease],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Heartbeat, StoreError>;
    /// Record outcomes, each fenced by its lease token. Returns, per finish,
    /// whether it was applied (false: the lease was lost, nothing changed).
    async fn job_finish(&self, finishes: &[Finish]) -> Result<Vec<bool>, StoreError>;
    /// Record the latest progress of running jobs, each fenced by its lease
    /// token (a stale update changes nothing), and announce it as
    /// [`StoreEvent::JobProgress`].
    async fn job_progress(&self, updates: &[ProgressUpdate]) -> Result<(), StoreError>;
    /// Count `jobs` against the tenant's enqueue-rate window (the minute
    /// holding `now`), unless that would take it over `per_minute`: then
    /// nothing is counted and the answer is false.
    async fn enqueue_rate_take(
        &self,
        tenant: &str,
        jobs: u64,
        per_minute: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Give back what [`Store::enqueue_rate_take`] counted for jobs that were
    /// not enqueued after all.
    async fn enqueue_rate_return(
        &self,
        tenant: &str,
        jobs: u64,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// The tenant's waiting jobs (`scheduled`, `available`, `retrying`),
    /// counted up to `cap` (the count stops there, so its cost is bounded).
    async fn job_waiting_count(&self, tenant: &str, cap: u64) -> Result<u64, StoreError>;
    /// Hand a running job back without using an attempt (the host is
    /// shutting down, or had no room to run it), claimable again at once or
    /// from `not_before`.
    async fn job_release(
        &self,
        id: JobId,
        lease_token: uuid::Uuid,
        not_before: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    async fn job_cancel(
        &self,
        tenant: &str,
        id: JobId,
        now: Timestamp,
    ) -> Result<CancelResult, StoreError>;
    /// Cancel many jobs of `tenant` in one transaction, each as
    /// [`Store::job_cancel`] would; the results in the order of `ids`.
    async fn job_cancel_many(
        &self,
        tenant: &str,
        ids: &[JobId],
        now: Timestamp,
    ) -> Result<Vec<CancelResult>, StoreError>;
    /// Running jobs whose leases expired before `now`.
    async fn job_expired_leases(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ExpiredLease>, StoreError>;
    /// Delete up to `limit` jobs that finished before `before`, and the
    /// workflow runs that finished before it (the jobs of a run still
    /// running are kept: its fan-out steps gather their results).
    async fn job_prune(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError>;
    async fn attempt_list(&self, tenant: &str, id: JobId) -> Result<Vec<Attempt>, StoreError>;
    /// How many jobs are in each state, for one tenant or for all.
    async fn job_counts(
        &self,
        tenant: Option<&str>,
    ) -> Result<std::collections::BTreeMap<JobState, u64>, StoreError>;
    /// What a metrics scrape shows: jobs waiting or running (never the
    /// terminal states, which can be millions of rows), and the jobs due to
    /// run per queue. Served by the partial indexes of waiting and running jobs.
    async fn job_live_counts(&self, now: Timestamp) -> Result<LiveJobCounts, StoreError>;
    /// Record that a worker host is alive: its row is written when it
    /// starts and every `worker::HOST_BEAT` after.
    async fn host_beat(&self, host: &HostSeen) -> Result<(), StoreError>;
    /// Forget a host that stopped gracefully.
    async fn host_leave(&self, host_id: &str) -> Result<(), StoreError>;
    /// The hosts seen since `since`, by id, at most [`MAX_HOSTS_LISTED`].
    async fn host_list(&self, since: Timestamp) -> Result<Vec<HostSeen>, StoreError>;
    /// Delete the hosts not seen since `before` (they died without leaving).
    async fn host_prune(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// A worker host as it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSeen {
    pub host_id: String,
    /// Attempts it runs at most at once (`--concurrency`).
    pub concurrency: u32,
    pub started_at: Timestamp,
    pub seen_at: Timestamp,
}

/// Hosts listed at most. Hosts are started by operators, not tenants, but
/// a deployment that restarts often under fresh ids leaves rows until the
/// janitor forgets them: this bounds what one overview reads.
pub const MAX_HOSTS_LISTED: u32 = 1000;

/// Queues reported by [`Store::job_live_counts`] at most, the deepest first.
/// Queue names are chosen by tenants: this bounds the metric series one
/// tenant can create by enqueueing into many queues.
pub const MAX_QUEUES_REPORTED: u32 = 100;

/// Jobs not yet finished, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveJobCounts {
    /// Jobs per non-terminal state (`scheduled`, `available`, `running`, `retrying`).
    pub by_state: std::collections::BTreeMap<JobState, u64>,
    /// Waiting jobs whose `run_at` has passed, per queue (the deepest
    /// [`MAX_QUEUES_REPORTED`] queues).
    pub due_by_queue: std::collections::BTreeMap<String, u64>,
}

/// The embedded default when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://corral.db";

/// The file of a `sqlite://FILE[?options]` URL; none for another backend
/// or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Connect to the database `url` names (`postgres://…` or `sqlite://…`).
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "DATABASE_URL must start with postgres:// or sqlite://, got `{}`",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Jobs deleted per statement when a tenant is deleted: a tenant with
/// millions of jobs must not hold one transaction (SQLite's only writer,
/// PostgreSQL's locks) long enough to stall every other tenant's claims.
pub const TENANT_DELETE_BATCH: u32 = 5_000;

/// A tenant's `count` of something (`what`) may grow by one only while
/// under its quota: the one rule for every count-quota, on both backends.
pub(crate) fn within_quota(
    what: &str,
    count: i64,
    quota: &str,
    max: Option<i64>,
) -> Result<(), StoreError> {
    match max {
        Some(max) if count >= max => Err(StoreError::OverQuota(format!(
            "the tenant has {count} {what}, its {quota}; delete one first or ask for a higher quota"
        ))),
        _ => Ok(()),
    }
}

/// `t` as the databases keep it (microseconds), so what a call returns
/// equals what a later read returns.
pub fn stored_time(t: Timestamp) -> Timestamp {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// The enqueue rate an insert counts its jobs against: the tenant's
/// `enqueue_per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u64,
}

/// The start of the enqueue-rate window holding `now` (whole minutes).
pub(crate) fn rate_window(now: Timestamp) -> Timestamp {
    use chrono::{DurationRound, TimeDelta};
    now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now)
}

/// A plugin's outbound HTTP settings as stored. Settings that no longer
/// parse (written by a newer version) deny every request rather than fail
/// the claim.
pub(crate) fn parse_http(text: &str) -> crate::runtime::outbound::HttpSettings {
    serde_json::from_str(text).unwrap_or_default()
}

/// Settings or calls as JSON text for a column.
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("encoding JSON: {e}")))
}

/// An attempt's recorded requests, as stored.
pub(crate) fn parse_calls(text: Option<String>) -> Option<crate::runtime::outbound::HttpCalls> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// A plugin's config as stored (a JSON object of strings).
pub(crate) fn parse_config(text: &str) -> std::collections::BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::first_id_at;
    use chrono::{TimeZone, Utc};

    #[test]
    fn first_id_at_bounds_every_id_of_its_millisecond_and_clamps_any_time() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let ms = at.timestamp_millis() as u64;
        let first = first_id_at(at);
        assert_eq!(first.get_version_num(), 7);
        // Every id made in that millisecond is at or above it, every id of
        // the millisecond before is below.
        let ts = |ms: u64| {
            uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000)
        };
        for _ in 0..100 {
            assert!(uuid::Uuid::new_v7(ts(ms)) >= first);
            assert!(uuid::Uuid::new_v7(ts(ms - 1)) < first);
        }
        // Times a client may send that no id can have: before the epoch,
        // past the 48 bits of milliseconds. Clamped, never a panic.
        let ancient = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let far = Utc.with_ymd_and_hms(262_000, 1, 1, 0, 0, 0).unwrap();
        assert!(first_id_at(ancient) < first);
        assert!(first_id_at(far) > first);
        assert!(
            first_id_at(far) >= first_id_at(Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap())
        );
    }
}
