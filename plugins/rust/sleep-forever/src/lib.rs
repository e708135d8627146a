//! Hostile: blocks in a WASI clock wait (no wasm runs while it waits, so no
//! epoch check can stop it). Must end as `timeout`.
use corral_sdk::Error;
use serde_json::Value;

fn sleep(_input: Value) -> Result<Value, Error> {
    std::thread::sleep(std::time::Duration::from_secs(24 * 3600));
    Ok(Value::Null)
}

corral_sdk::register!(sleep);
