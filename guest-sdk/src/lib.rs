//! Write [Corral](https://example.invalid/corral) plugins in Rust.
//!
//! A plugin is one function from a typed input to a typed output (or an
//! [`Error`]), registered with [`register!`]. The SDK turns the job's JSON
//! input into your type, your output into the job's JSON result, and your
//! error into a retryable or fatal failure. You never see the WIT bindings.
//!
//! # Example
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "greet"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! corral-sdk = { path = "../../guest-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use corral_sdk::{Error, Job, log};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     greeting: String,
//! }
//!
//! fn greet(input: Input, job: &Job) -> Result<Output, Error> {
//!     if input.name.is_empty() {
//!         // Retrying cannot fix bad input: the job goes to the dead-letter state.
//!         return Err(Error::fatal("name is empty"));
//!     }
//!     log::info(&format!("greeting {} (attempt {})", input.name, job.attempt));
//!     corral_sdk::progress(50, "halfway");
//!     let punctuation = corral_sdk::config("punctuation").unwrap_or_else(|| "!".into());
//!     Ok(Output { greeting: format!("Hello, {}{punctuation}", input.name) })
//! }
//!
//! corral_sdk::register!(greet);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the file
//! `target/wasm32-wasip2/release/greet.wasm` is the component to upload, or
//! to try locally with `corral run greet.wasm --input '{"name":"Ada"}'`.
//!
//! A handler may also take only the input: `fn greet(input: Input) -> Result<Output, Error>`.
//!
//! # Errors and retries
//!
//! - [`Error::retryable`]: the job is retried with backoff while attempts remain.
//! - [`Error::fatal`]: never retried; the job is dead at once.
//! - `?` on any `std::error::Error` gives a retryable error.
//! - Input that does not deserialize into your type is a fatal error.
//! - A panic ends the attempt as `trapped` (retried); its message is in the log.
//!
//! # What a plugin can do
//!
//! Compute, allocate (up to its memory limit), print to stdout/stderr (captured
//! into the job's log, bounded), read clocks and random numbers, and call the
//! host through [`log`], [`progress`] and [`config`], and make HTTP requests
//! with [`http`] to the destinations its allow-list names. It has no files,
//! no environment variables and no sockets.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "job-handler",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_job_handler",
        default_bindings_module: "corral_sdk::bindings",
        // The WASI packages wasi:http uses (wit/deps), generated here too.
        generate_all,
    });
}

pub mod http;

use bindings::corral::plugin::host;
use bindings::corral::plugin::types;

/// The job an attempt belongs to.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// The tenant that owns the job.
    pub tenant: String,
    /// This plugin's name.
    pub plugin: String,
    /// Which attempt this is, starting at 1.
    pub attempt: u32,
    /// How many attempts the job may use in all.
    pub max_attempts: u32,
    /// For a workflow step: `{"input": <the run input>, "steps": {<upstream
    /// step>: <its result>}}` (and `item`, `index` for a `for_each` element).
    pub context: Option<serde_json::Value>,
}

impl Job {
    /// Whether a retryable error now would leave no attempt to retry with.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// Why a handler did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Retried with backoff while attempts remain.
    Retryable(String),
    /// Never retried: the job goes to the dead-letter state.
    Fatal(String),
}

impl Error {
    pub fn retryable(message: impl fmt::Display) -> Error {
        Error::Retryable(message.to_string())
    }

    pub fn fatal(message: impl fmt::Display) -> Error {
        Error::Fatal(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retryable(m) => write!(f, "retryable: {m}"),
            Error::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

/// `?` on an ordinary error gives a retryable error.
impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Error {
        Error::Retryable(error.to_string())
    }
}

/// Append lines to the job's log (bounded; see the plugin's `log` limit).
pub mod log {
    use super::host::{self, LogLevel};

    pub fn trace(message: &str) {
        host::log(LogLevel::Trace, message);
    }
    pub fn debug(message: &str) {
        host::log(LogLevel::Debug, message);
    }
    pub fn info(message: &str) {
        host::log(LogLevel::Info, message);
    }
    pub fn warn(message: &str) {
        host::log(LogLevel::Warn, message);
    }
    pub fn error(message: &str) {
        host::log(LogLevel::Error, message);
    }
}

/// Report progress, 0 to 100 (larger values count as 100), with a short message.
pub fn progress(percent: u8, message: &str) {
    host::progress(percent, message);
}

/// Read one of this plugin's settings, set by the operator over the API.
pub fn config(key: &str) -> Option<String> {
    host::config(key)
}

/// A function that can handle jobs: `fn(Input) -> Result<Output, Error>` or
/// `fn(Input, &Job) -> Result<Output, Error>`. The marker `M` only tells the
/// two shapes apart.
pub trait Handler<M> {
    #[doc(hidden)]
    fn handle(&self, input: &str, job: &Job) -> Result<String, Error>;
}

#[doc(hidden)]
pub struct InputOnly<I, O>(std::marker::PhantomData<(I, O)>);
#[doc(hidden)]
pub struct InputAndJob<I, O>(std::marker::PhantomData<(I, O)>);

impl<F, I, O> Handler<InputOnly<I, O>> for F
where
    F: Fn(I) -> Result<O, Error>,
    I: DeserializeOwned,
    O: Serialize,
{
    fn handle(&self, input: &str, _job: &Job) -> Result<String, Error> {
        encode(self(decode(input)?)?)
    }
}

impl<F, I, O> Handler<InputAndJob<I, O>> for F
where
    F: Fn(I, &Job) -> Result<O, Error>,
    I: DeserializeOwned,
    O: Serialize,
{
    fn handle(&self, input: &str, job: &Job) -> Result<String, Error> {
        encode(self(decode(input)?, job)?)
    }
}

fn decode<I: DeserializeOwned>(input: &str) -> Result<I, Error> {
    serde_json::from_str(input).map_err(|e| {
        Error::fatal(format!(
            "the job's input does not fit the plugin's input type: {e}"
        ))
    })
}

fn encode<O: Serialize>(output: O) -> Result<String, Error> {
    serde_json::to_string(&output).map_err(|e| {
        Error::fatal(format!(
            "the plugin's output cannot be encoded as JSON: {e}"
        ))
    })
}

/// Called by the code [`register!`] generates.
#[doc(hidden)]
pub fn __run<M>(job: types::Job, handler: impl Handler<M>) -> Result<String, types::JobError> {
    let context = match job.context.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(value)) => Some(value),
        Some(Err(e)) => {
            return Err(types::JobError::Fatal(format!(
                "the job's context is not JSON: {e}"
            )));
        }
    };
    let info = Job {
        id: job.id,
        tenant: job.tenant,
        plugin: job.plugin,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        context,
    };
    handler.handle(&job.input, &info).map_err(|e| match e {
        Error::Retryable(m) => types::JobError::Retryable(m),
        Error::Fatal(m) => types::JobError::Fatal(m),
    })
}

/// Register the plugin's handler. Use it once, at the top level of the crate.
///
/// ```ignore
/// corral_sdk::register!(my_handler);
/// ```
#[macro_export]
macro_rules! register {
    ($handler:expr) => {
        #[doc(hidden)]
        struct __CorralPlugin;

        impl $crate::bindings::exports::corral::plugin::handler::Guest for __CorralPlugin {
            fn run(
                job: $crate::bindings::corral::plugin::types::Job,
            ) -> ::core::result::Result<::std::string::String, $crate::bindings::corral::plugin::types::JobError> {
                $crate::__run(job, $handler)
            }
        }

        $crate::bindings::__export_job_handler!(__CorralPlugin with_types_in $crate::bindings);
    };
}
