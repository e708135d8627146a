//! One attempt: a fresh `Store` with limits, instantiate, call `run`, and turn
//! whatever happened into a typed outcome. Nothing a guest does makes this
//! return an error: every ending is an [`AttemptReport`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use wasmtime::{Engine, Store, Trap, WasmBacktrace};
use wasmtime_wasi::I32Exit;

use super::bindings::{Job, JobError, JobHandlerPre};
use super::capture::{CapturedLog, LogBuffer};
use super::outbound::{HttpCalls, HttpGrant};
use super::sandbox::{
    HostState, Interrupt, Progress, ProgressSink, on_epoch_tick, truncate_at_char_boundary,
};
use crate::model::{Limits, OutcomeKind};

/// Longest message (guest error text, trap description) kept with an
/// attempt. A guest could otherwise return a huge error string.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// The job as handed to the guest.
#[derive(Debug, Clone, Default)]
pub struct JobInput {
    pub id: String,
    pub tenant: String,
    pub plugin: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// JSON text.
    pub input: String,
    /// JSON text: upstream workflow results by step name.
    pub context: Option<String>,
}

/// Everything needed to run one attempt.
#[derive(Clone, Default)]
pub struct AttemptRequest {
    pub job: JobInput,
    pub limits: Limits,
    /// The plugin's settings, read by the guest with `host.config`.
    pub config: Arc<BTreeMap<String, String>>,
    /// Cancelling it stops the guest within one epoch tick.
    pub cancel: CancellationToken,
    pub progress: Option<ProgressSink>,
    /// What its outbound HTTP requests may do (by default, nothing).
    pub http: HttpGrant,
}

/// What one attempt did.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    pub outcome: OutcomeKind,
    /// The JSON result, when the outcome is `completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// What went wrong, for every other outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub fuel_consumed: u64,
    pub peak_memory_bytes: u64,
    #[serde(serialize_with = "as_micros", rename = "duration_us")]
    pub duration: Duration,
    pub log: CapturedLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The host had no room for this attempt: the instance pool had none
    /// for the component (other plugins held its core instances, memories
    /// or tables), or every compiler slot stayed busy. The guest never ran,
    /// and a worker hands the job back without using an attempt.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_full: bool,
    /// The outbound HTTP requests it made.
    #[serde(skip_serializing_if = "HttpCalls::is_empty")]
    pub http: HttpCalls,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How the guest's call ended, before classification.
enum Ending {
    Returned(Result<String, JobError>),
    Errored(wasmtime::Error),
    Interrupted(Interrupt),
}

pub(super) async fn run(
    engine: &Engine,
    pre: &JobHandlerPre<HostState>,
    request: AttemptRequest,
) -> AttemptReport {
    let AttemptRequest {
        job,
        limits,
        config,
        cancel,
        progress,
        http,
    } = request;
    let started = Instant::now();
    let deadline = started + limits.timeout();
    let log = LogBuffer::new(usize::try_from(limits.log_bytes).unwrap_or(usize::MAX));
    let state = HostState::new(
        limits.memory_bytes,
        log.clone(),
        config,
        progress,
        deadline,
        cancel.clone(),
        http,
    );
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    // Fuel is enabled on every engine this module is given; an error here
    // would be a programming error, reported rather than panicking.
    if let Err(e) = store.set_fuel(limits.fuel) {
        return AttemptReport::host_failure(format!("cannot set fuel: {e}"), started.elapsed());
    }
    store.epoch_deadline_callback(on_epoch_tick);
    store.set_epoch_deadline(1);

    let job = Job {
        id: job.id,
        tenant: job.tenant,
        plugin: job.plugin,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        input: job.input,
        context: job.context,
    };

    let ending = {
        let call = async {
            let handler = pre.instantiate_async(&mut store).await?;
            handler
                .corral_plugin_handler()
                .call_run(&mut store, &job)
                .await
        };
        // The epoch callback stops a guest that is computing; these two stop
        // one that is parked in a host call (a WASI clock or poll wait),
        // where no epoch check runs. Dropping the call unwinds the guest.
        tokio::select! {
            ended = tokio::time::timeout_at(deadline.into(), call) => match ended {
                Ok(Ok(returned)) => Ending::Returned(returned),
                Ok(Err(error)) => match error.downcast_ref::<Interrupt>() {
                    Some(why) => Ending::Interrupted(*why),
                    None => Ending::Errored(error),
                },
                Err(_elapsed) => Ending::Interrupted(Interrupt::Timeout),
            },
            () = cancel.cancelled() => Ending::Interrupted(Interrupt::Cancelled),
        }
    };

    // The pool ran out of what this component needs (core instances,
    // memories, tables): no fault of the job's, and it never ran.
    let pool_exhausted = matches!(&ending, Ending::Errored(error)
        if error.chain().any(|e| e.is::<wasmtime::PoolConcurrencyLimitError>()));
    let fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.data();
    let peak_memory_bytes = state.limiter.peak_bytes();
    let (outcome, result, message) = classify(ending, state, &limits);
    let last_progress = state.last_progress.clone();
    let http = state.outbound.calls();
    AttemptReport {
        outcome,
        result,
        message: message.map(|m| {
            let mut m = crate::model::without_nul(m);
            truncate_at_char_boundary(&mut m, MAX_MESSAGE_BYTES);
            m
        }),
        fuel_consumed,
        peak_memory_bytes,
        duration: started.elapsed(),
        log: log.finish(),
        progress: last_progress,
        host_full: pool_exhausted,
        http,
    }
}

type Classified = (OutcomeKind, Option<String>, Option<String>);

fn classify(ending: Ending, state: &HostState, limits: &Limits) -> Classified {
    match ending {
        Ending::Interrupted(Interrupt::Timeout) => (
            OutcomeKind::Timeout,
            None,
            Some(format!(
                "wall-clock limit of {} ms reached",
                limits.timeout_ms
            )),
        ),
        Ending::Interrupted(Interrupt::Cancelled) => (
            OutcomeKind::Cancelled,
            None,
            Some("job cancelled while running".into()),
        ),
        Ending::Errored(error) => classify_error(error, state, limits),
        Ending::Returned(Err(error)) => {
            // An interpreter survives a refused grow as an exception
            // (SpiderMonkey's "out of memory") that the guest may turn into
            // an error: the limit is still why the job failed, and retrying
            // with the same limit cannot help.
            let (kind, message) = match error {
                JobError::Retryable(message) => (OutcomeKind::Failed, message),
                JobError::Fatal(message) => (OutcomeKind::Fatal, message),
            };
            match memory_exceeded(state, limits) {
                Some(exceeded) => (
                    OutcomeKind::MemoryExceeded,
                    None,
                    Some(format!("{exceeded}; the guest then failed with: {message}")),
                ),
                None => (kind, None, Some(message)),
            }
        }
        Ending::Returned(Ok(result)) => classify_result(result, state, limits),
    }
}

/// The message of a refused grow, if the limiter refused one.
fn memory_exceeded(state: &HostState, limits: &Limits) -> Option<String> {
    state.limiter.refused_at().map(|wanted| {
        format!(
            "memory limit of {} bytes reached (the guest asked for {wanted} bytes in all)",
            limits.memory_bytes
        )
    })
}

fn classify_error(error: wasmtime::Error, state: &HostState, limits: &Limits) -> Classified {
    // A refused grow comes first: a guest whose allocation failed usually
    // dies of it (Rust aborts, i.e. traps on `unreachable`).
    if let Some(message) = memory_exceeded(state, limits) {
        return (OutcomeKind::MemoryExceeded, None, Some(message));
    }
    if let Some(Trap::OutOfFuel) = error.downcast_ref::<Trap>() {
        return (
            OutcomeKind::FuelExhausted,
            None,
            Some(format!("fuel limit of {} reached", limits.fuel)),
        );
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return (
            OutcomeKind::Trapped,
            None,
            Some(format!(
                "the guest exited with status {} instead of returning",
                exit.0
            )),
        );
    }
    (OutcomeKind::Trapped, None, Some(describe_trap(&error)))
}

/// Frames of a wasm backtrace kept in a trap message. A stack overflow has
/// tens of thousands of frames; the innermost ones say where it happened.
pub const MAX_BACKTRACE_FRAMES: usize = 24;

/// The trap's cause first, then the innermost frames of its wasm backtrace.
fn describe_trap(error: &wasmtime::Error) -> String {
    let mut message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", error.root_cause()),
    };
    if let Some(backtrace) = error.downcast_ref::<WasmBacktrace>() {
        let frames = backtrace.frames();
        message.push_str("\nwasm backtrace:");
        for (i, frame) in frames.iter().take(MAX_BACKTRACE_FRAMES).enumerate() {
            let module = frame.module().name().unwrap_or("<module>");
            match frame.func_name() {
                Some(func) => message.push_str(&format!(
                    "\n  {i}: {module}!{:#}",
                    rustc_demangle::demangle(func)
                )),
                None => message.push_str(&format!(
                    "\n  {i}: {module}!<function {}>",
                    frame.func_index()
                )),
            }
        }
        if frames.len() > MAX_BACKTRACE_FRAMES {
            message.push_str(&format!(
                "\n  … {} more frames",
                frames.len() - MAX_BACKTRACE_FRAMES
            ));
        }
    }
    message
}

fn classify_result(result: String, state: &HostState, limits: &Limits) -> Classified {
    if result.len() as u64 > limits.result_bytes {
        return (
            OutcomeKind::OutputTooLarge,
            None,
            Some(format!(
                "result of {} bytes is over its bound of {} bytes",
                result.len(),
                limits.result_bytes
            )),
        );
    }
    if state.log.overflowed() {
        return (
            OutcomeKind::OutputTooLarge,
            None,
            Some(format!(
                "log is over its bound of {} bytes; the rest was dropped",
                limits.log_bytes
            )),
        );
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(&result) {
        Ok(_) => match crate::model::json_refusal(&result) {
            Some(why) => (
                OutcomeKind::InvalidResult,
                None,
                Some(format!("the result {why}")),
            ),
            None => (OutcomeKind::Completed, Some(result), None),
        },
        Err(e) => {
            let mut preview = result;
            truncate_at_char_boundary(&mut preview, 200);
            (
                OutcomeKind::InvalidResult,
                None,
                Some(format!("the result is not valid JSON ({e}): {preview:?}")),
            )
        }
    }
}

impl AttemptReport {
    /// A failure of the host itself (setting up the attempt, loading the
    /// plugin): the guest never ran. Reported as a trap so the job is retried
    /// rather than lost.
    pub fn host_failure(message: String, duration: Duration) -> AttemptReport {
        AttemptReport::host_ending(message, duration, false)
    }

    /// The host had no room to run the attempt (see `host_full`).
    pub fn host_full(message: String) -> AttemptReport {
        AttemptReport::host_ending(message, Duration::ZERO, true)
    }

    fn host_ending(message: String, duration: Duration, host_full: bool) -> AttemptReport {
        AttemptReport {
            outcome: OutcomeKind::Trapped,
            result: None,
            message: Some(message),
            fuel_consumed: 0,
            peak_memory_bytes: 0,
            duration,
            log: CapturedLog {
                text: String::new(),
                dropped_bytes: 0,
            },
            progress: None,
            host_full,
            http: HttpCalls::default(),
        }
    }
}
