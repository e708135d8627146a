//! Verbs of the `corral` binary: `run` (one local attempt), `serve` and
//! `migrate`, `secret-key`, and the API client (`tenant`, `key`, `plugin`, `job`).

pub mod client;
pub mod new;
pub mod run;
pub mod secret_key;
pub mod serve;
