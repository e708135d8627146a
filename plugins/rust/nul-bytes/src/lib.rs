//! Hostile: writes NUL characters to stdout, stderr and `host.log`, and
//! returns a JSON result holding `\u0000` (valid JSON that PostgreSQL cannot
//! store). Must end as `invalid_result`, with its log kept and the NULs replaced.
use std::io::Write;

use corral_sdk::{Error, log};
use serde_json::{Value, json};

fn nul(_input: Value) -> Result<Value, Error> {
    std::io::stdout().write_all(b"out\0put\n")?;
    eprintln!("err\0or");
    log::info("log\0line");
    Ok(json!({ "text": "nul \u{0} inside" }))
}

corral_sdk::register!(nul);
