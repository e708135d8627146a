//! Fails retryably while `attempt < succeed_on_attempt` (from the input),
//! then succeeds: exercises retries.
use corral_sdk::{Error, Job};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    succeed_on_attempt: u32,
}

fn flaky(input: Input, job: &Job) -> Result<Value, Error> {
    if job.attempt < input.succeed_on_attempt {
        return Err(Error::retryable(format!(
            "attempt {} fails; attempt {} will succeed",
            job.attempt, input.succeed_on_attempt
        )));
    }
    Ok(json!({ "succeeded_on_attempt": job.attempt }))
}

corral_sdk::register!(flaky);
