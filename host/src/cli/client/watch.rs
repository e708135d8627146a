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

use corral_client::api::{Job, JobState, Progress};
use corral_client::{Error as TypedError, JobEvent};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::http::{Api, ClientError};
use super::output;

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

/// Follow job `id` until it reaches a terminal state; returns that state.
pub async fn follow(api: &Api, id: uuid::Uuid, mode: Mode) -> Result<JobState, ClientError> {
    let mut view = View::new(mode, id);
    let result = follow_with(api, id, &mut view).await;
    view.finish();
    result
}

async fn follow_with(api: &Api, id: uuid::Uuid, view: &mut View) -> Result<JobState, ClientError> {
    let client = api.typed()?;
    let mut restarts = 0;
    loop {
        let events = client.watch(id).await.map_err(|e| api.typed_error(e))?;
        futures_util::pin_mut!(events);
        let broken = loop {
            let event = match events.next().await {
                Some(Ok(event)) => event,
                None => {
                    break api.protocol(format!(
                        "the event stream of job {id} ended before the job did"
                    ));
                }
                // The connection broke: open the stream again.
                Some(Err(TypedError::Http(e))) => break api.transport(e),
                Some(Err(e)) => return Err(api.typed_error(e)),
            };
            restarts = 0;
            view.show(&event);
            if let JobEvent::State(job) = &event
                && job.state.is_terminal()
            {
                return Ok(job.state);
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
    last_state: Option<(JobState, u32)>,
    last_progress: Option<Progress>,
}

impl View {
    fn new(mode: Mode, id: uuid::Uuid) -> View {
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

    fn show(&mut self, event: &JobEvent) {
        if self.mode == Mode::JsonLines {
            output::line(&json_line(event));
            return;
        }
        match event {
            JobEvent::State(job) => {
                let key = (job.state, job.attempt);
                if self.last_state != Some(key) {
                    self.last_state = Some(key);
                    self.state(job);
                }
                if let Some(progress) = &job.progress {
                    self.progress(progress);
                }
            }
            JobEvent::Progress(progress) => self.progress(progress),
        }
    }

    fn state(&mut self, job: &Job) {
        match self.mode {
            Mode::Lines => output::line(&state_line(job)),
            Mode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_prefix(job.state.to_string());
                    if !self.bar_has_percent {
                        bar.set_message(attempt_text(job));
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
                bar.set_position(u64::from(progress.percent.min(100)));
                bar.set_message(progress.message.clone());
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

/// `{"event": "state", "data": <the job>}` or `{"event": "progress", …}`:
/// the event as the server sent it (the job is the server's own type).
pub fn json_line(event: &JobEvent) -> String {
    let (name, data) = match event {
        JobEvent::State(job) => ("state", serde_json::to_value(job)),
        JobEvent::Progress(progress) => ("progress", serde_json::to_value(progress)),
    };
    json!({ "event": name, "data": data.unwrap_or_default() }).to_string()
}

fn now() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

fn attempt_text(job: &Job) -> String {
    if job.attempt > 0 {
        format!("attempt {} of {}", job.attempt, job.max_attempts)
    } else {
        String::new()
    }
}

/// `12:00:01  running    attempt 1 of 3`, with the error or result when there is one.
pub fn state_line(job: &Job) -> String {
    let mut line = format!("{}  {:<9}  {}", now(), job.state, attempt_text(job));
    if let Some(error) = &job.error {
        line.push_str(&format!("  error: {error}"));
    }
    if let Some(result) = &job.result {
        line.push_str(&format!("  result: {}", result.get()));
    }
    line.trim_end().to_string()
}

/// `12:00:01  progress    50%  halfway`.
pub fn progress_line(progress: &Progress) -> String {
    format!(
        "{}  progress  {:>3}%  {}",
        now(),
        progress.percent.min(100),
        progress.message
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState, attempt: u32, result: Option<&str>) -> Job {
        serde_json::from_value(json!({
            "id": "0193e5a0-0000-7000-8000-000000000000", "plugin": "echo", "version": 1,
            "digest": "sha256:00", "queue": "default", "priority": 0, "state": state,
            "result": result.map(|r| serde_json::from_str::<serde_json::Value>(r).unwrap()),
            "error": null, "attempt": attempt, "max_attempts": 3,
            "run_at": "2026-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z",
            "started_at": null, "finished_at": null, "progress": null
        }))
        .unwrap()
    }

    #[test]
    fn lines() {
        let done = job(JobState::Completed, 2, Some(r#"{"ok":true}"#));
        assert!(state_line(&done).ends_with(r#"completed  attempt 2 of 3  result: {"ok":true}"#));
        assert!(state_line(&job(JobState::Available, 0, None)).ends_with("available"));
        let progress = Progress {
            percent: 7,
            message: "halfway there".into(),
        };
        assert!(progress_line(&progress).ends_with("progress    7%  halfway there"));
    }

    #[test]
    fn json_lines_carry_the_event_as_sent() {
        let line = json_line(&JobEvent::Progress(Progress {
            percent: 50,
            message: "m".into(),
        }));
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            line,
            json!({"event": "progress", "data": {"percent": 50, "message": "m"}})
        );
        let line: serde_json::Value = serde_json::from_str(&json_line(&JobEvent::State(Box::new(
            job(JobState::Running, 1, None),
        ))))
        .unwrap();
        assert_eq!(
            (line["event"].as_str(), line["data"]["state"].as_str()),
            (Some("state"), Some("running"))
        );
    }

    #[test]
    fn the_bar_templates_parse() {
        ProgressStyle::with_template(SPINNER_TEMPLATE).unwrap();
        ProgressStyle::with_template(BAR_TEMPLATE).unwrap();
        ProgressStyle::with_template(super::super::plugins::UPLOAD_TEMPLATE).unwrap();
    }
}
