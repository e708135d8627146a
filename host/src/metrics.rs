//! Prometheus metrics of one process (docs/operations.md lists them all).
//!
//! One [`Metrics`] is shared by the worker and the HTTP API of a process.
//! What they record on their hot paths is atomics (counters, gauges) or a
//! short critical section (histograms); nothing is held across an await.
//! What the database knows (jobs per state, queue depth) is read when
//! `/metrics` is scraped, into a registry of its own, so a slow scrape never
//! touches the worker.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::model::{JobState, OutcomeKind};
use crate::runtime::Runtime;
use crate::store::LiveJobCounts;

/// Every metric name starts with this.
const PREFIX: &str = "corral";

/// The content type of the OpenMetrics text format (Prometheus reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Attempt wall-clock time: from a millisecond (a trivial plugin) to the
/// longest timeouts plugins are given in practice.
const ATTEMPT_SECONDS_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// A claim is one database round trip under a lock: sub-millisecond to a
/// struggling database's seconds.
const CLAIM_SECONDS_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// From a job becoming due to its claim: milliseconds when hosts keep up,
/// up to an hour in a backlog.
const PICKUP_SECONDS_BUCKETS: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    1800.0, 3600.0,
];

/// Methods counted by name; any other token a client sends is `other`, so
/// clients cannot create series at will.
const STANDARD_METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

type Labels = [(&'static str, &'static str); 1];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// A standard method, or `other`: a client picks the method token.
    method: &'static str,
    /// The route template (`/v1/jobs/{id}`), or `unmatched`: never a raw
    /// path, whose ids would make a series per job.
    path: String,
    status: u16,
}

/// Plugins' outbound requests: by tenant (tenants are few and made by the
/// operator) and a fixed set of results.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    tenant: String,
    /// `ok` (an answer, any status), `denied`, `timeout`, `too_large`,
    /// `error`, `unfinished`, or `unrecorded` (past an attempt's first 100
    /// requests).
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundBytesLabels {
    tenant: String,
    /// `sent` or `received`.
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// The metrics of this process.
pub struct Metrics {
    registry: Registry,
    attempts: Family<Labels, Counter>,
    jobs_finished: Family<Labels, Counter>,
    jobs_claimed: Counter,
    attempt_duration: Histogram,
    attempt_fuel: Histogram,
    attempt_memory: Histogram,
    claim_duration: Histogram,
    pickup_delay: Histogram,
    attempts_in_flight: Gauge,
    attempts_host_full: Counter,
    attempts_lease_lost: Counter,
    worker_capacity: Gauge,
    http_requests: Family<HttpLabels, Counter>,
    outbound_requests: Family<OutboundLabels, Counter>,
    outbound_bytes: Family<OutboundBytesLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let build_info = Family::<Labels, Gauge>::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version label names the build",
            build_info,
        );

        let attempts = Family::<Labels, Counter>::default();
        // Every outcome appears from the start, at 0, so rates work from the first scrape.
        for outcome in OutcomeKind::ALL {
            let _ = attempts.get_or_create(&[("outcome", outcome.as_str())]);
        }
        registry.register(
            "attempts",
            "Attempts recorded by this host, by outcome (the janitor's lease_expired included)",
            attempts.clone(),
        );
        let jobs_finished = Family::<Labels, Counter>::default();
        for state in JobState::ALL.into_iter().filter(|s| s.is_terminal()) {
            let _ = jobs_finished.get_or_create(&[("state", state.as_str())]);
        }
        registry.register(
            "jobs_finished",
            "Jobs this host moved to a terminal state, by state",
            jobs_finished.clone(),
        );
        let jobs_claimed = Counter::default();
        registry.register(
            "jobs_claimed",
            "Jobs this host's worker claimed",
            jobs_claimed.clone(),
        );

        let attempt_duration = Histogram::new(ATTEMPT_SECONDS_BUCKETS);
        registry.register_with_unit(
            "attempt_duration",
            "Wall-clock time of attempts run by this host",
            Unit::Seconds,
            attempt_duration.clone(),
        );
        // Default fuel is 1e9; buckets from 1e4 to 1e10 by tens.
        let attempt_fuel = Histogram::new(exponential_buckets(1e4, 10.0, 7));
        registry.register(
            "attempt_fuel_consumed",
            "Fuel (about one unit per wasm instruction) used by attempts run by this host",
            attempt_fuel.clone(),
        );
        // 64 KiB (one wasm page) to 1 GiB by fours; the default limit is 64 MiB.
        let attempt_memory = Histogram::new(exponential_buckets(65536.0, 4.0, 8));
        registry.register_with_unit(
            "attempt_peak_memory",
            "Peak linear memory of attempts run by this host",
            Unit::Bytes,
            attempt_memory.clone(),
        );
        let claim_duration = Histogram::new(CLAIM_SECONDS_BUCKETS);
        registry.register_with_unit(
            "claim_duration",
            "Round-trip time of the worker's claims to the database",
            Unit::Seconds,
            claim_duration.clone(),
        );
        let pickup_delay = Histogram::new(PICKUP_SECONDS_BUCKETS);
        registry.register_with_unit(
            "pickup_delay",
            "Time from a job becoming due (its run_at) to its claim by this host",
            Unit::Seconds,
            pickup_delay.clone(),
        );

        let attempts_in_flight = Gauge::default();
        registry.register(
            "attempts_in_flight",
            "Attempts this host's worker is running now",
            attempts_in_flight.clone(),
        );
        let attempts_host_full = Counter::default();
        registry.register(
            "attempts_host_full",
            "Attempts this host had no room for (its instance pool, or every compiler slot, was full); handed back without using an attempt",
            attempts_host_full.clone(),
        );
        let attempts_lease_lost = Counter::default();
        registry.register(
            "attempts_lease_lost",
            "Attempts stopped because this host no longer held their lease (it expired and the job moved on, or the database lost the claim); their outcomes are dropped and the jobs run again",
            attempts_lease_lost.clone(),
        );
        let worker_capacity = Gauge::default();
        registry.register(
            "worker_capacity",
            "Attempts this host's worker may run at once (its concurrency); 0 without a worker",
            worker_capacity.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let outbound_requests = Family::<OutboundLabels, Counter>::default();
        registry.register(
            "plugin_http_requests",
            "Plugins' outbound HTTP requests, by tenant and result (docs/http.md)",
            outbound_requests.clone(),
        );
        let outbound_bytes = Family::<OutboundBytesLabels, Counter>::default();
        registry.register_with_unit(
            "plugin_http",
            "Bytes of plugins' outbound HTTP bodies, by tenant and direction",
            Unit::Bytes,
            outbound_bytes.clone(),
        );
        Metrics {
            registry,
            attempts,
            jobs_finished,
            jobs_claimed,
            attempt_duration,
            attempt_fuel,
            attempt_memory,
            claim_duration,
            pickup_delay,
            attempts_in_flight,
            attempts_host_full,
            attempts_lease_lost,
            worker_capacity,
            http_requests,
            outbound_requests,
            outbound_bytes,
        }
    }

    /// The outbound requests one attempt of `tenant`'s made.
    pub fn plugin_http(&self, tenant: &str, calls: &crate::runtime::outbound::HttpCalls) {
        let count = |result: &'static str, n: u64| {
            if n > 0 {
                self.outbound_requests
                    .get_or_create(&OutboundLabels {
                        tenant: tenant.to_string(),
                        result,
                    })
                    .inc_by(n);
            }
        };
        let (mut sent, mut received) = (0, 0);
        for call in &calls.calls {
            sent += call.bytes_sent;
            received += call.bytes_received;
            count(call.result.as_str(), 1);
        }
        count(
            "unrecorded",
            u64::from(calls.total).saturating_sub(calls.calls.len() as u64),
        );
        for (direction, bytes) in [("sent", sent), ("received", received)] {
            if bytes > 0 {
                self.outbound_bytes
                    .get_or_create(&OutboundBytesLabels {
                        tenant: tenant.to_string(),
                        direction,
                    })
                    .inc_by(bytes);
            }
        }
    }

    /// A worker of `concurrency` slots starts (or, with `started` false, stops).
    pub fn worker_running(&self, concurrency: usize, started: bool) {
        let slots = i64::try_from(concurrency).unwrap_or(i64::MAX);
        if started {
            self.worker_capacity.inc_by(slots);
        } else {
            self.worker_capacity.dec_by(slots);
        }
    }

    /// One claim round trip, successful or not.
    pub fn claim_round_trip(&self, took: Duration) {
        self.claim_duration.observe(took.as_secs_f64());
    }

    /// A job was claimed `delay` after it became due (zero when the clocks disagree).
    pub fn job_claimed(&self, delay: Duration) {
        self.jobs_claimed.inc();
        self.pickup_delay.observe(delay.as_secs_f64());
    }

    /// An attempt starts running; the gauge goes down when the guard drops,
    /// whatever way the attempt ends.
    pub fn attempt_in_flight(&self) -> InFlight<'_> {
        self.attempts_in_flight.inc();
        InFlight(&self.attempts_in_flight)
    }

    /// An attempt found no room on the host and was handed back.
    pub fn attempt_host_full(&self) {
        self.attempts_host_full.inc();
    }

    /// An attempt was stopped because its lease was lost.
    pub fn attempt_lease_lost(&self) {
        self.attempts_lease_lost.inc();
    }

    /// What the sandbox reported about an attempt it ran.
    pub fn attempt_ran(&self, duration: Duration, fuel_consumed: u64, peak_memory_bytes: u64) {
        self.attempt_duration.observe(duration.as_secs_f64());
        self.attempt_fuel.observe(fuel_consumed as f64);
        self.attempt_memory.observe(peak_memory_bytes as f64);
    }

    /// An attempt's outcome was written, moving its job to `next`.
    pub fn attempt_recorded(&self, outcome: OutcomeKind, next: JobState) {
        self.attempts
            .get_or_create(&[("outcome", outcome.as_str())])
            .inc();
        if next.is_terminal() {
            self.jobs_finished
                .get_or_create(&[("state", next.as_str())])
                .inc();
        }
    }

    /// An HTTP request was answered. `route` is the matched route template.
    pub fn http_request(&self, method: &str, route: Option<&str>, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: STANDARD_METHODS
                    .iter()
                    .find(|m| **m == method)
                    .copied()
                    .unwrap_or("other"),
                path: route.unwrap_or("unmatched").to_string(),
                status,
            })
            .inc();
    }

    /// The exposition: this process's metrics, then what the database and
    /// the runtime know now. `live` is None when the database did not answer.
    pub fn render(&self, live: Option<&LiveJobCounts>, runtime: &Runtime) -> String {
        let mut now = Registry::with_prefix(PREFIX);
        let database_up = Gauge::<i64>::default();
        database_up.set(i64::from(live.is_some()));
        now.register(
            "database_up",
            "1 when this scrape could read job counts from the database, else 0 (and they are absent)",
            database_up,
        );
        if let Some(live) = live {
            let jobs = Family::<Labels, Gauge>::default();
            for state in JobState::ALL.into_iter().filter(|s| !s.is_terminal()) {
                let count = live.by_state.get(&state).copied().unwrap_or(0);
                jobs.get_or_create(&[("state", state.as_str())])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
            now.register(
                "jobs",
                "Jobs not yet finished, by state, across all hosts and tenants (read from the database)",
                jobs,
            );
            let depth = Family::<QueueLabels, Gauge>::default();
            for (queue, count) in &live.due_by_queue {
                depth
                    .get_or_create(&QueueLabels {
                        queue: queue.clone(),
                    })
                    .set(i64::try_from(*count).unwrap_or(i64::MAX));
            }
            now.register(
                "queue_depth",
                "Jobs due to run and waiting for a host, per queue (the deepest 100 queues)",
                depth,
            );
        }
        let (in_use, total) = runtime.sandbox_slots();
        let slots_in_use = Gauge::<i64>::default();
        slots_in_use.set(i64::try_from(in_use).unwrap_or(i64::MAX));
        now.register(
            "sandbox_slots_in_use",
            "Pooled sandbox instances in use in this process",
            slots_in_use,
        );
        let slots = Gauge::<i64>::default();
        slots.set(i64::try_from(total).unwrap_or(i64::MAX));
        now.register(
            "sandbox_slots",
            "Pooled sandbox instances of this process",
            slots,
        );
        let loaded = Gauge::<i64>::default();
        loaded.set(i64::try_from(runtime.plugins_loaded()).unwrap_or(i64::MAX));
        now.register(
            "plugins_loaded",
            "Distinct plugin components compiled or loaded into this process",
            loaded,
        );
        let loaded_bytes = Gauge::<i64>::default();
        loaded_bytes.set(i64::try_from(runtime.plugins_loaded_bytes()).unwrap_or(i64::MAX));
        now.register_with_unit(
            "plugins_loaded",
            "Compiled code of the plugins in this process's memory (bounded: least recently used plugins are evicted)",
            Unit::Bytes,
            loaded_bytes,
        );

        let mut text = String::new();
        // Writing to a String cannot fail; the encoder's Result is for other writers.
        let _ = encode_registry(&mut text, &self.registry)
            .and_then(|()| encode_registry(&mut text, &now))
            .and_then(|()| encode_eof(&mut text));
        text
    }
}

/// Keeps the in-flight gauge up while an attempt runs.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
