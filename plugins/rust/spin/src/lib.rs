//! Hostile: computes forever. Must end as `fuel_exhausted` (or `timeout`).
use corral_sdk::Error;
use serde_json::Value;

fn spin(_input: Value) -> Result<Value, Error> {
    // Tells tests the guest is running, so they can cancel it mid-run.
    corral_sdk::progress(0, "spinning");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

corral_sdk::register!(spin);
