//! Who is watching which job (`GET /v1/jobs/{id}/events`) or workflow run
//! (`GET /v1/workflow-runs/{id}/events`), and how many.
//!
//! One task per host reads the store's notifications and hands each job's
//! (or run's) to the streams watching that job (or run) only: a busy
//! deployment announces thousands of changes a second, and waking every open stream for each
//! (so that it could check the id and go back to sleep) made the cost of
//! one tenant's streams grow with everyone's traffic. Streams are counted
//! per tenant and per host; past either cap a new one is refused.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::Notify;

use crate::model::{JobId, JobState};
use crate::store::{Store, StoreEvent};
use crate::workflow::RunId;

/// Event streams one tenant may hold open on one host. Each holds a
/// connection and a task; a tenant watching more jobs at once can list
/// them instead.
pub const MAX_STREAMS_PER_TENANT: usize = 64;

/// Event streams one host holds open at most, all tenants together (below
/// the server's connection cap, so that streams cannot take every
/// connection).
pub const MAX_STREAMS: usize = 2048;

/// Notes a stream may fall behind by; past it the stream is told it lagged
/// and reads the job from the database once (the notes it missed would
/// only say the job changed).
const INBOX_NOTES: usize = 64;

/// What a stream watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Job(JobId),
    Run(RunId),
}

/// What the store announced about a watched job or run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The job moved to this state (announced in commit order).
    State(JobState),
    /// The run changed (its steps or its state).
    RunChanged,
    /// New progress was recorded.
    Progress,
    /// Notes were missed: read the job again.
    Lagged,
}

/// Why a stream cannot be opened now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The tenant holds [`MAX_STREAMS_PER_TENANT`] already.
    Tenant,
    /// The host holds [`MAX_STREAMS`] already.
    Host,
}

impl From<Refusal> for super::ApiError {
    fn from(refusal: Refusal) -> super::ApiError {
        match refusal {
            Refusal::Tenant => super::ApiError::TooManyRequests(
                "too_many_streams",
                format!(
                    "the tenant has {MAX_STREAMS_PER_TENANT} event streams open on this host \
                     (MAX_STREAMS_PER_TENANT); close one first"
                ),
                1,
            ),
            Refusal::Host => super::ApiError::Busy(
                format!(
                    "this host has {MAX_STREAMS} event streams open (MAX_STREAMS); try again shortly"
                ),
                5,
            ),
        }
    }
}

#[derive(Default)]
struct Inbox {
    notes: Mutex<VecDeque<Note>>,
    ready: Notify,
    closed: AtomicBool,
}

impl Inbox {
    fn notes(&self) -> MutexGuard<'_, VecDeque<Note>> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, note: Note) {
        {
            let mut notes = self.notes();
            if notes.len() >= INBOX_NOTES {
                notes.clear();
                notes.push_back(Note::Lagged);
            } else {
                notes.push_back(note);
            }
        }
        self.ready.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_one();
    }
}

#[derive(Default)]
struct Registry {
    by_topic: HashMap<Topic, Vec<(u64, Arc<Inbox>)>>,
    per_tenant: HashMap<String, usize>,
    total: usize,
    next_key: u64,
    /// The dispatcher runs (it is started by the first stream).
    dispatching: bool,
}

/// The streams of one host.
#[derive(Default)]
pub struct Watchers {
    registry: Arc<Mutex<Registry>>,
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watchers {
    /// Start watching a job or run of `tenant`. Subscribe before reading
    /// it, so that no change falls between the two.
    pub fn watch(&self, store: &dyn Store, tenant: &str, topic: Topic) -> Result<Watch, Refusal> {
        let mut registry = lock(&self.registry);
        if registry.total >= MAX_STREAMS {
            return Err(Refusal::Host);
        }
        let held = registry.per_tenant.get(tenant).copied().unwrap_or(0);
        if held >= MAX_STREAMS_PER_TENANT {
            return Err(Refusal::Tenant);
        }
        if !registry.dispatching {
            registry.dispatching = true;
            tokio::spawn(dispatch(store.subscribe(), Arc::downgrade(&self.registry)));
        }
        let inbox = Arc::new(Inbox::default());
        let key = registry.next_key;
        registry.next_key += 1;
        registry
            .by_topic
            .entry(topic)
            .or_default()
            .push((key, inbox.clone()));
        *registry.per_tenant.entry(tenant.to_string()).or_default() += 1;
        registry.total += 1;
        Ok(Watch {
            topic,
            tenant: tenant.to_string(),
            key,
            inbox,
            registry: self.registry.clone(),
        })
    }

    /// Streams open now (for tests and metrics).
    pub fn open(&self) -> usize {
        lock(&self.registry).total
    }
}

/// Hand the store's notifications to the streams of their jobs, until the
/// store or the host's streams go away.
async fn dispatch(
    mut events: tokio::sync::broadcast::Receiver<StoreEvent>,
    registry: Weak<Mutex<Registry>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = events.recv().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let mut registry = lock(&registry);
        let deliver = |topic: Topic, note: Note| {
            for (_, inbox) in registry.by_topic.get(&topic).into_iter().flatten() {
                inbox.push(note);
            }
        };
        match event {
            Ok(StoreEvent::JobState(id, state)) => deliver(Topic::Job(id), Note::State(state)),
            Ok(StoreEvent::JobProgress(id)) => deliver(Topic::Job(id), Note::Progress),
            Ok(StoreEvent::RunState(id, _)) => deliver(Topic::Run(id), Note::RunChanged),
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                for (_, inbox) in registry.by_topic.values().flatten() {
                    inbox.push(Note::Lagged);
                }
            }
            Err(RecvError::Closed) => {
                for (_, inbox) in registry.by_topic.values().flatten() {
                    inbox.close();
                }
                registry.dispatching = false;
                return;
            }
        }
    }
}

/// One open stream's subscription; dropping it (the client went away)
/// frees its place.
pub struct Watch {
    topic: Topic,
    tenant: String,
    key: u64,
    inbox: Arc<Inbox>,
    registry: Arc<Mutex<Registry>>,
}

impl Watch {
    /// The next note about the job or run; None when the store's
    /// notifications ended (the host is shutting down).
    pub async fn next(&self) -> Option<Note> {
        loop {
            if let Some(note) = self.inbox.notes().pop_front() {
                return Some(note);
            }
            if self.inbox.closed.load(Ordering::SeqCst) {
                return None;
            }
            self.inbox.ready.notified().await;
        }
    }

    /// Forget the notes waiting: the reader is about to read the database,
    /// which covers them.
    pub fn drain(&self) {
        self.inbox.notes().clear();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut registry = lock(&self.registry);
        if let Some(inboxes) = registry.by_topic.get_mut(&self.topic) {
            inboxes.retain(|(key, _)| *key != self.key);
            if inboxes.is_empty() {
                registry.by_topic.remove(&self.topic);
            }
        }
        if let Some(held) = registry.per_tenant.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                registry.per_tenant.remove(&self.tenant);
            }
        }
        registry.total -= 1;
    }
}

/// One Server-Sent Event.
pub type Event = axum::response::sse::Event;

/// The response of an event stream (boxed: one allocation per stream, and
/// handlers can name their type).
pub type EventStream = axum::response::sse::Sse<
    axum::response::sse::KeepAliveStream<
        futures_util::stream::BoxStream<'static, Result<Event, std::convert::Infallible>>,
    >,
>;

/// Where one event stream is: what it sent, what it waits for.
pub trait Cursor: Send + 'static {
    /// The next event to send; None ends the stream.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Event>> + Send;
}

/// The response that sends `cursor`'s events, with keep-alive comments so
/// proxies do not close an idle stream.
pub fn sse(cursor: impl Cursor) -> EventStream {
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        cursor.next().await.map(|event| (Ok(event), cursor))
    });
    axum::response::sse::Sse::new(futures_util::StreamExt::boxed(stream))
        .keep_alive(axum::response::sse::KeepAlive::default())
}
