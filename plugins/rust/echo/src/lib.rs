//! Returns its input unchanged: the smallest useful plugin, and the one the
//! benchmarks use.
use corral_sdk::Error;
use serde_json::Value;

fn echo(input: Value) -> Result<Value, Error> {
    Ok(input)
}

corral_sdk::register!(echo);
