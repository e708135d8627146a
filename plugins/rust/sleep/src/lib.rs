//! Sleeps `ms` milliseconds (in a WASI clock wait), then returns: a job
//! that takes a known time, for lease, shutdown and crash tests.
use corral_sdk::{Error, Job};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    ms: u64,
}

fn sleep(input: Input, job: &Job) -> Result<Value, Error> {
    corral_sdk::progress(0, "sleeping");
    std::thread::sleep(std::time::Duration::from_millis(input.ms));
    Ok(json!({ "slept_ms": input.ms, "attempt": job.attempt }))
}

corral_sdk::register!(sleep);
