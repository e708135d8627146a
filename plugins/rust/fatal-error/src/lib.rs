//! Returns a fatal error: the job must go to the dead-letter state at once.
use corral_sdk::Error;
use serde_json::Value;

fn refuse(_input: Value) -> Result<Value, Error> {
    Err(Error::fatal("this input can never be processed"))
}

corral_sdk::register!(refuse);
