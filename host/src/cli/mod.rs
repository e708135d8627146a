//! Client verbs of the `corral` binary.

pub mod run;
pub mod serve;
