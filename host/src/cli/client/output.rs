//! What client commands print on stdout: the API's JSON as is (`--json`),
//! or tables for lists and aligned `key: value` lines for one object.
//! Progress bars and notes go to stderr, so stdout stays clean for pipes.

use std::io::Write;

use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

/// Print `text` and a newline. A closed stdout (piped into `head`) is not
/// an error of the command, so write errors are dropped, not panicked on.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", text.trim_end_matches('\n'));
}

/// A note for the person at the terminal (not part of the output).
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// One object as aligned `key: value` lines.
pub fn fields(pairs: &[(&str, String)]) {
    // One more than the longest key, for its colon.
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let text: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{:width$}  {v}", format!("{k}:")))
        .map(|l| l.trim_end().to_string())
        .collect();
    line(&text.join("\n"));
}

/// A list as a borderless table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) {
    line(&render_table(header, rows));
}

pub fn render_table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()))
        .add_rows(rows);
    // Cells start with the table's padding; trimmed lines line up the same.
    table
        .lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(&l).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON value as a cell: strings bare, null as `-`, the rest compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field of one of the API's types as a cell, written as `--json`
/// writes it (times in RFC 3339, ids bare, none as `-`).
pub fn show<T: serde::Serialize + ?Sized>(value: &T) -> String {
    cell(&serde_json::to_value(value).unwrap_or_default())
}

/// A list of names as a cell: joined by `, `, or `-` when empty.
pub fn names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let joined = names.into_iter().collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        "-".into()
    } else {
        joined
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `64 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut size = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if size < 1024.0 {
            break;
        }
        size /= 1024.0;
        unit = u;
    }
    if size.fract() == 0.0 {
        format!("{size:.0} {unit}")
    } else {
        format!("{size:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!("a b")), "a b");
        assert_eq!(cell(&json!({"k": [1, 2]})), r#"{"k":[1,2]}"#);
        assert_eq!(cell(&json!(7)), "7");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
    }

    #[test]
    fn tables_line_up_without_borders() {
        let text = render_table(
            &["id", "state"],
            vec![
                vec!["a".into(), "running".into()],
                vec!["bbbb".into(), "-".into()],
            ],
        );
        assert_eq!(text, "ID    STATE\na     running\nbbbb  -");
    }
}
