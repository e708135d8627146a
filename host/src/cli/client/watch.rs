//! Following a job's events (`GET /v1/jobs/{id}/events`) until it ends:
//! `job watch` prints a line per change, `job create --wait` shows a
//! spinner that turns into a progress bar.
//!
//! The stream's contract: `event: state` with the job as JSON (its
//! `state`, and a `progress` of `{percent, message}` or null), `event:
//! progress` with `{percent, message}`; other events and comments are
//! ignored; the stream ends after the terminal state. The first `state`
//! event is the job as it is now, so a stream that breaks is simply opened
//! again.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Api, ClientError};
use super::output;
use super::sse::{EventStream, SseEvent, StreamError};

/// Times the stream may break in a row (no event between) before the
/// client gives up: a server that keeps cutting the stream is reported
/// instead of being retried forever.
const MAX_STREAM_RESTARTS: u32 = 5;

/// How long to wait before opening a broken stream again.
const RESTART_DELAY: Duration = Duration::from_millis(500);

const SPINNER_TEMPLATE: &str = "{spinner} {prefix} {msg}";
const BAR_TEMPLATE: &str = "{spinner} {prefix} [{bar:30}] {pos:>3}% {msg}";

/// How the events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A line per change of state or progress (`job watch`).
    Lines,
    /// Each event as one JSON line, `{"event": …, "data": …}` (`job watch --json`).
    JsonLines,
    /// A spinner, then a progress bar, on stderr (`--wait`); drawn only on a terminal.
    Bar,
    /// Nothing (`--wait --json`: only the final job is printed).
    Quiet,
}

/// A progress report: `{percent, message}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Progress {
    pub percent: f64,
    #[serde(default)]
    pub message: Option<String>,
}

impl Progress {
    /// The percent as a whole number within 0..=100, whatever was sent.
    pub fn whole_percent(&self) -> u64 {
        if self.percent.is_finite() {
            self.percent.clamp(0.0, 100.0).round() as u64
        } else {
            0
        }
    }
}

/// The job's state in a `state` event, and its progress if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub state: String,
    pub attempt: Option<u64>,
    pub max_attempts: Option<u64>,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub progress: Option<Progress>,
}

/// What an event means to the watcher.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    State(StateChange),
    Progress(Progress),
    /// An event of a kind this client does not know.
    Other,
}

/// Decode one event.
pub fn decode(event: &SseEvent) -> Result<(Change, Value), String> {
    match event.event.as_str() {
        "state" => {
            let job: Value = serde_json::from_str(&event.data)
                .map_err(|e| format!("a `state` event that is not JSON ({e})"))?;
            let state = job["state"]
                .as_str()
                .ok_or("a `state` event without a state")?
                .to_string();
            let change = StateChange {
                state,
                attempt: job["attempt"].as_u64(),
                max_attempts: job["max_attempts"].as_u64(),
                error: job["error"].as_str().map(Into::into),
                result: job.get("result").filter(|r| !r.is_null()).cloned(),
                progress: job
                    .get("progress")
                    .and_then(|p| serde_json::from_value(p.clone()).ok()),
            };
            Ok((Change::State(change), job))
        }
        "progress" => {
            let data: Value = serde_json::from_str(&event.data)
                .map_err(|e| format!("a `progress` event that is not JSON ({e})"))?;
            let progress = serde_json::from_value(data.clone())
                .map_err(|e| format!("a `progress` event without a percent ({e})"))?;
            Ok((Change::Progress(progress), data))
        }
        _ => Ok((Change::Other, Value::Null)),
    }
}

pub fn is_terminal(state: &str) -> bool {
    matches!(state, "completed" | "dead" | "cancelled")
}

/// Follow job `id` until it reaches a terminal state; returns that state.
pub async fn follow(api: &Api, id: &str, mode: Mode) -> Result<String, ClientError> {
    let mut view = View::new(mode, id);
    let result = follow_with(api, id, &mut view).await;
    view.finish();
    result
}

async fn follow_with(api: &Api, id: &str, view: &mut View) -> Result<String, ClientError> {
    let mut restarts = 0;
    loop {
        let request = api
            .request(Method::GET, &["v1", "jobs", id, "events"])
            .header(ACCEPT, "text/event-stream");
        let mut events = EventStream::new(api.send(request).await?);
        let broken = loop {
            let event = match events.next().await {
                Ok(Some(event)) => event,
                Ok(None) => {
                    break api.protocol(format!(
                        "the event stream of job {id} ended before the job did"
                    ));
                }
                Err(StreamError::Body(e)) => break api.transport(e),
                Err(StreamError::TooLarge(e)) => return Err(api.protocol(e.to_string())),
            };
            restarts = 0;
            let (change, data) = decode(&event).map_err(|e| api.protocol(e))?;
            view.show(&event.event, &change, data);
            if let Change::State(change) = change
                && is_terminal(&change.state)
            {
                return Ok(change.state);
            }
        };
        restarts += 1;
        if restarts > MAX_STREAM_RESTARTS {
            return Err(broken);
        }
        tokio::time::sleep(RESTART_DELAY).await;
    }
}

/// Shows events as the mode asks, without repeating itself when a stream
/// is opened again (its first event is the state already shown).
struct View {
    mode: Mode,
    bar: Option<ProgressBar>,
    /// The bar shows a percent (it starts as a spinner).
    bar_has_percent: bool,
    last_state: Option<(String, Option<u64>)>,
    last_progress: Option<Progress>,
}

impl View {
    fn new(mode: Mode, id: &str) -> View {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::new_spinner().with_prefix(format!("job {id}"));
            if let Ok(style) = ProgressStyle::with_template(SPINNER_TEMPLATE) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        View {
            mode,
            bar,
            bar_has_percent: false,
            last_state: None,
            last_progress: None,
        }
    }

    fn show(&mut self, name: &str, change: &Change, data: Value) {
        if self.mode == Mode::JsonLines {
            if *change != Change::Other {
                output::line(&json!({ "event": name, "data": data }).to_string());
            }
            return;
        }
        match change {
            Change::State(change) => {
                let key = (change.state.clone(), change.attempt);
                if self.last_state.as_ref() != Some(&key) {
                    self.last_state = Some(key);
                    self.state(change);
                }
                if let Some(progress) = &change.progress {
                    self.progress(progress);
                }
            }
            Change::Progress(progress) => self.progress(progress),
            Change::Other => {}
        }
    }

    fn state(&mut self, change: &StateChange) {
        match self.mode {
            Mode::Lines => output::line(&state_line(change)),
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_prefix(change.state.clone());
                    if !self.bar_has_percent {
                        bar.set_message(attempt_text(change));
                    }
                }
            }
            Mode::JsonLines | Mode::Quiet => {}
        }
    }

    fn progress(&mut self, progress: &Progress) {
        if self.last_progress.as_ref() == Some(progress) {
            return;
        }
        self.last_progress = Some(progress.clone());
        match self.mode {
            Mode::Lines => output::line(&progress_line(progress)),
            Mode::Bar => {
                let Some(bar) = &self.bar else { return };
                if !self.bar_has_percent {
                    self.bar_has_percent = true;
                    bar.set_length(100);
                    if let Ok(style) = ProgressStyle::with_template(BAR_TEMPLATE) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                }
                bar.set_position(progress.whole_percent());
                bar.set_message(progress.message.clone().unwrap_or_default());
            }
            Mode::JsonLines | Mode::Quiet => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn now() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

fn attempt_text(change: &StateChange) -> String {
    match (change.attempt, change.max_attempts) {
        (Some(a), Some(m)) if a > 0 => format!("attempt {a} of {m}"),
        (Some(a), None) if a > 0 => format!("attempt {a}"),
        _ => String::new(),
    }
}

/// `12:00:01  running    attempt 1 of 3`, with the error or result when there is one.
pub fn state_line(change: &StateChange) -> String {
    let mut line = format!("{}  {:<9}  {}", now(), change.state, attempt_text(change));
    if let Some(error) = &change.error {
        line.push_str(&format!("  error: {error}"));
    }
    if let Some(result) = &change.result {
        line.push_str(&format!("  result: {result}"));
    }
    line.trim_end().to_string()
}

/// `12:00:01  progress    50%  halfway`.
pub fn progress_line(progress: &Progress) -> String {
    format!(
        "{}  progress  {:>3}%  {}",
        now(),
        progress.whole_percent(),
        progress.message.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn state_events_carry_the_job_and_maybe_its_progress() {
        let (change, _) = decode(&event(
            "state",
            r#"{"id": "x", "state": "running", "attempt": 1, "max_attempts": 3, "error": null,
                "progress": {"percent": 40, "message": "reading"}}"#,
        ))
        .unwrap();
        assert_eq!(
            change,
            Change::State(StateChange {
                state: "running".into(),
                attempt: Some(1),
                max_attempts: Some(3),
                error: None,
                result: None,
                progress: Some(Progress {
                    percent: 40.0,
                    message: Some("reading".into())
                }),
            })
        );
        // The short form the server sends today: no progress, no result.
        let (change, _) = decode(&event(
            "state",
            r#"{"id": "x", "state": "dead", "attempt": 1, "error": "trapped"}"#,
        ))
        .unwrap();
        let Change::State(change) = change else {
            panic!("{change:?}")
        };
        assert_eq!(
            (
                change.state.as_str(),
                change.error.as_deref(),
                change.progress
            ),
            ("dead", Some("trapped"), None)
        );
    }

    #[test]
    fn progress_events_and_unknown_events() {
        let (change, _) = decode(&event("progress", r#"{"percent": 150.4}"#)).unwrap();
        let Change::Progress(progress) = change else {
            panic!("{change:?}")
        };
        assert_eq!((progress.whole_percent(), progress.message), (100, None));
        assert_eq!(
            decode(&event("heartbeat", "whatever")).unwrap().0,
            Change::Other
        );
    }

    #[test]
    fn malformed_events_are_named() {
        assert!(
            decode(&event("state", "not json"))
                .unwrap_err()
                .contains("`state` event that is not JSON")
        );
        assert!(
            decode(&event("state", r#"{"id": "x"}"#))
                .unwrap_err()
                .contains("without a state")
        );
        assert!(
            decode(&event("progress", r#"{"message": "m"}"#))
                .unwrap_err()
                .contains("without a percent")
        );
    }

    #[test]
    fn lines() {
        let change = StateChange {
            state: "completed".into(),
            attempt: Some(2),
            max_attempts: Some(3),
            error: None,
            result: Some(json!({"ok": true})),
            progress: None,
        };
        assert!(state_line(&change).ends_with(r#"completed  attempt 2 of 3  result: {"ok":true}"#));
        let progress = Progress {
            percent: 7.0,
            message: Some("halfway there".into()),
        };
        assert!(progress_line(&progress).ends_with("progress    7%  halfway there"));
    }

    #[test]
    fn the_bar_templates_parse() {
        ProgressStyle::with_template(SPINNER_TEMPLATE).unwrap();
        ProgressStyle::with_template(BAR_TEMPLATE).unwrap();
        ProgressStyle::with_template(super::super::plugins::UPLOAD_TEMPLATE).unwrap();
    }
}
