//! Hostile: allocates (and touches) memory until it is refused. Must end as
//! `memory_exceeded`.
use corral_sdk::Error;
use serde_json::Value;

fn bomb(_input: Value) -> Result<Value, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xAB; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

corral_sdk::register!(bomb);
