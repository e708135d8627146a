//! Verbs of the `corral` binary: `run` (one local attempt), `serve` and
//! `migrate`, and the API client (`tenant`, `key`, `plugin`, `job`).

pub mod client;
pub mod run;
pub mod serve;
