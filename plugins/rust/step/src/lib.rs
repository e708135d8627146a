//! A workflow step for tests and examples: returns what it was given, its
//! input and its `job.context` (the run input and upstream results), so a
//! test can see exactly what each step of a run received. An input
//! `{"fail": "…"}` fails fatally with that message, to exercise the
//! failure policies.
use corral_sdk::{Error, Job};
use serde_json::{Value, json};

fn step(input: Value, job: &Job) -> Result<Value, Error> {
    if let Some(message) = input.get("fail").and_then(Value::as_str) {
        return Err(Error::fatal(message));
    }
    Ok(json!({ "input": input, "context": job.context }))
}

corral_sdk::register!(step);
