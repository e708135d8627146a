//! Hostile: writes `megabytes` MiB (4 by default) to stdout, stderr and
//! `host.log`. The log must stay within its bound and end with a marker.
use std::io::Write;

use corral_sdk::{Error, log};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "four")]
    megabytes: usize,
}

fn four() -> usize {
    4
}

fn flood(input: Input) -> Result<Value, Error> {
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
