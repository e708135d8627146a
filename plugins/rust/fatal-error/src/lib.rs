//! Returns a fatal error: the job must go to the dead-letter state at once.
//! The message is the input's `message` when it has one, so tests can send
//! crafted text (newlines, forged log fields) through a guest's error; the
//! input's `log`, when it has one, is written to the job's log first (the
//! dashboard's test shows markup there as text).
use corral_sdk::{Error, log};
use serde_json::Value;

fn refuse(input: Value) -> Result<Value, Error> {
    if let Some(text) = input["log"].as_str() {
        log::info(text);
    }
    let message = input["message"]
        .as_str()
        .unwrap_or("this input can never be processed");
    Err(Error::fatal(message))
}

corral_sdk::register!(refuse);
