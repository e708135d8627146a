//! Corral: a WebAssembly-plugin job host. The README's "Layout" table maps
//! these modules; docs/queue.md follows a job from claim to outcome.

pub mod cli;
pub mod config;
pub mod http;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod worker;
pub mod workflow;
