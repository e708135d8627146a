//! Corral: a WebAssembly-plugin job host. See `ARCHITECTURE.md` in the design
//! notes for the path of a job through these modules.

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
