//! Hostile: writes `megabytes` MiB (4 by default) to stdout, stderr and
//! `host.log`. The log must stay within its bound and end with a marker.
//! With `"nul": true`, one `host.log` call of `megabytes` MiB of NUL
//! characters instead (each would become three bytes in the log): the
//! host's work must stay bounded by the log's room, not the message.
use std::io::Write;

use corral_sdk::{Error, log};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "four")]
    megabytes: usize,
    #[serde(default)]
    nul: bool,
}

fn four() -> usize {
    4
}

fn flood(input: Input) -> Result<Value, Error> {
    if input.nul {
        log::info(&"\0".repeat(input.megabytes << 20));
        return Ok(json!({ "nul_bytes": input.megabytes << 20 }));
    }
    let line = "flood ".repeat(170) + "\n"; // ~1 KiB
    let lines = input.megabytes * 1024;
    let mut stdout = std::io::stdout();
    for i in 0..lines {
        match i % 3 {
            0 => stdout.write_all(line.as_bytes())?,
            1 => eprint!("{line}"),
            _ => log::info(&line),
        }
    }
    stdout.flush()?;
    Ok(json!({ "lines": lines }))
}

corral_sdk::register!(flood);
