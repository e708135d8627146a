//! Where log lines go and in what shape: human text, or one JSON object per
//! line for log collectors (docs/operations.md lists the fields).

use std::io::IsTerminal;

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
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
