//! Hostile: panics. Must end as `trapped`, with the panic message in the log.
use corral_sdk::Error;
use serde_json::Value;

fn boom(input: Value) -> Result<Value, Error> {
    panic!("the panic plugin panicked on purpose (input {input})");
}

corral_sdk::register!(boom);
