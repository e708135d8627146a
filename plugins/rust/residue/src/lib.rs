//! Hostile: looks for what an earlier attempt left in the sandbox's memory.
//!
//! - `{"plant": "<marker>"}` writes the marker (each byte XOR 0xA5, so the
//!   input's own text never matches) into the heap (leaked), a static buffer
//!   and the stack, then scans the whole linear memory for it, which shows
//!   the scan finds what is there.
//! - `{"seek": "<marker>"}` only scans.
//!
//! Both answer `{"found": n, "scanned": bytes}`: `n` copies of the marker
//! outside the scan's own needle (after a plant, at least the heap's and
//! the static's; the stack's copy is the compiler's to keep). The tests
//! plant in one attempt and seek in the next one on the same pool slot, and
//! assert that it finds nothing.
use corral_sdk::Error;
use serde_json::{Value, json};

const KEY: u8 = 0xA5;
static mut PLANTED: [u8; 64] = [0; 64];

fn hidden(marker: &str) -> Vec<u8> {
    marker.bytes().map(|b| b ^ KEY).collect()
}

/// Copies of `needle` in all of linear memory, except `needle` itself.
fn count(needle: &[u8]) -> (usize, usize) {
    let size = core::arch::wasm32::memory_size::<0>() * 65536;
    let own = needle.as_ptr() as usize;
    let mut found = 0;
    // From address 1: a marker cannot start at 0, and reading through a
    // null pointer is undefined in Rust, even where wasm allows it.
    for at in 1..size.saturating_sub(needle.len()) {
        if at == own {
            continue;
        }
        // SAFETY: every address below `memory_size` is readable in wasm.
        let matches = needle
            .iter()
            .enumerate()
            .all(|(i, b)| unsafe { core::ptr::read_volatile((at + i) as *const u8) } == *b);
        if matches {
            found += 1;
        }
    }
    (found, size)
}

fn residue(input: Value) -> Result<Value, Error> {
    let (marker, plant) = match (input["plant"].as_str(), input["seek"].as_str()) {
        (Some(m), _) => (m, true),
        (None, Some(m)) => (m, false),
        _ => return Err(Error::fatal("give {\"plant\": …} or {\"seek\": …}")),
    };
    if marker.is_empty() || marker.len() > 64 {
        return Err(Error::fatal("the marker is 1 to 64 bytes"));
    }
    let needle = hidden(marker);
    let mut on_stack = [0u8; 64];
    if plant {
        Box::leak(needle.clone().into_boxed_slice());
        on_stack[..needle.len()].copy_from_slice(&needle);
        // SAFETY: one attempt runs at a time in an instance; nothing else
        // touches the buffer.
        unsafe {
            let planted = &raw mut PLANTED;
            for (i, b) in needle.iter().enumerate() {
                core::ptr::write_volatile((planted as *mut u8).add(i), *b);
            }
        }
    }
    std::hint::black_box(&on_stack);
    let (found, scanned) = count(&needle);
    std::hint::black_box(&on_stack);
    Ok(json!({"found": found, "scanned": scanned}))
}

corral_sdk::register!(residue);
