//! Hostile: returns a result of `bytes` bytes (2 MiB by default), over the
//! default result bound. Must end as `output_too_large`.
use corral_sdk::Error;
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    #[serde(default = "two_mib")]
    bytes: usize,
}

fn two_mib() -> usize {
    2 << 20
}

fn big(input: Input) -> Result<String, Error> {
    Ok("x".repeat(input.bytes.saturating_sub(2)))
}

corral_sdk::register!(big);
