//! Hostile: recurses without end. Must end as `trapped` (the host's wasm
//! call-stack limit), never crash the host. The frames keep nothing in linear
//! memory, so it is the native stack that runs out, not the guest's own.
use corral_sdk::Error;
use serde_json::Value;

#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(n: u64) -> u64 {
    deeper(std::hint::black_box(n + 1)).wrapping_add(n)
}

fn overflow(_input: Value) -> Result<Value, Error> {
    Ok(Value::from(deeper(0)))
}

corral_sdk::register!(overflow);
