//! Where log lines go and in what shape: human text, or one JSON object per
//! line for log collectors (docs/operations.md lists the fields).

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line: the event's fields at the top level, with
    /// `span` (the innermost) and `spans` (all, outermost first).
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    /// Text for a person at a terminal, JSON for anything collecting the output.
    pub fn detect() -> LogFormat {
        if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// Install the process's subscriber. `RUST_LOG` filters (default: `default_filter`).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
        LogFormat::Text => builder
            .with_ansi(ansi(
                std::env::var_os("NO_COLOR").as_deref(),
                std::io::stderr().is_terminal(),
            ))
            .with_writer(|| OneLine(std::io::stderr()))
            .init(),
    }
}

/// Colours in text logs: only at a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>).
fn ansi(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// A writer for text logs that keeps each event on one line: newlines and
/// carriage returns inside an event (a guest's or tenant's text shown with
/// `%`, an error's message) are written as `\n` and `\r`, so nobody can
/// forge a log line by putting one in a message. The formatter writes an
/// event in one call, ending with its own newline. (JSON lines need no
/// such care: serde escapes every string.)
pub struct OneLine<W>(pub W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, newline) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (buf, false),
        };
        if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                _ => line.push(b),
            }
        }
        if newline {
            line.push(b'\n');
        }
        self.0.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_turns_colours_off_at_a_terminal() {
        use std::ffi::OsStr;
        assert!(ansi(None, true));
        assert!(
            ansi(Some(OsStr::new("")), true),
            "an empty NO_COLOR is unset"
        );
        assert!(!ansi(Some(OsStr::new("1")), true));
        assert!(!ansi(None, false), "no colours into a pipe or file");
    }

    #[test]
    fn an_event_stays_on_one_line() {
        let mut out = OneLine(Vec::new());
        out.write_all(b"INFO job dead error=a\nINFO forged\r\n")
            .unwrap();
        out.write_all(b"INFO plain\n").unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "INFO job dead error=a\\nINFO forged\\r\nINFO plain\n"
        );
    }
}
