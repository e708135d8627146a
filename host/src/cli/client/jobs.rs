//! `corral job …`: create (and wait), batch, get, list, watch, cancel, logs,
//! attempts, replay.

use std::path::Path;

use corral_client::api::{
    AttemptList, BatchCreated, BulkOutcome, BulkRequest, CreateBatch, CreateJob, Job, JobList,
    JobSelector, JobState, LogList,
};
use reqwest::Method;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt;

use super::http::{Api, ClientError};
use super::output::{self, bytes, show};
use super::watch::{self, Mode};
use super::{
    BulkArgs, ClientOptions, CreateJobArgs, EXIT_JOB_FAILED, EXIT_OK, JobCommand, JobFilterArgs,
    ListJobsArgs,
};

/// Jobs per page when `--all` follows the cursors and no `--limit` was
/// given: the server's most, for the fewest round trips.
const ALL_PAGE_SIZE: u32 = 500;

/// The job's input when none is given.
const DEFAULT_INPUT: &str = "{}";

pub async fn run(options: &ClientOptions, command: JobCommand) -> Result<i32, ClientError> {
    let api = Api::new(options)?;
    match command {
        JobCommand::Create(args) => create(&api, options, args).await,
        JobCommand::Get { id } => {
            let (_, job) = api.get_as::<Job>(&["v1", "jobs", &id]).await?;
            print_job(options, &job);
            Ok(EXIT_OK)
        }
        JobCommand::List(args) => list(&api, options, args).await,
        JobCommand::Watch { id } => {
            let mode = if options.json {
                Mode::JsonLines
            } else {
                Mode::Lines
            };
            let id = uuid::Uuid::parse_str(&id)
                .map_err(|_| ClientError::Usage(format!("`{id}` is not a job id")))?;
            let state = watch::follow(&api, id, mode).await?;
            Ok(exit_status(state))
        }
        JobCommand::Batch {
            file,
            idempotency_key,
        } => {
            let jobs = match super::files::read_value(&file).await? {
                Value::Array(jobs) => jobs,
                Value::Object(mut body)
                    if body.len() == 1 && matches!(body.get("jobs"), Some(Value::Array(_))) =>
                {
                    match body.remove("jobs") {
                        Some(Value::Array(jobs)) => jobs,
                        _ => Vec::new(),
                    }
                }
                other => {
                    return Err(ClientError::Usage(format!(
                        "{} must hold a list of jobs or {{\"jobs\": [...]}}, not {}",
                        file.display(),
                        super::files::kind(&other)
                    )));
                }
            };
            // The API's own request type: a job with a field the API does
            // not know, or of the wrong type, is named before anything is sent.
            let jobs = jobs
                .into_iter()
                .enumerate()
                .map(|(i, job)| {
                    serde_json::from_str::<CreateJob>(&job.to_string()).map_err(|e| {
                        ClientError::Usage(format!("{}: job {i}: {e}", file.display()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let answer = api
                .post_keyed(
                    &["v1", "jobs", "batch"],
                    &CreateBatch { jobs },
                    idempotency_key.as_deref(),
                )
                .await?;
            if options.json {
                output::line(&answer.text);
            } else {
                for id in api.parse::<BatchCreated>(&answer)?.ids {
                    output::line(&id.to_string());
                }
            }
            Ok(EXIT_OK)
        }
        JobCommand::Cancel {
            id: None,
            bulk: args,
        } => bulk(&api, options, "cancel", args).await,
        JobCommand::Cancel { id: Some(id), .. } => {
            let answer = api.post(&["v1", "jobs", &id, "cancel"]).await?;
            print_job(options, &api.parse(&answer)?);
            Ok(EXIT_OK)
        }
        JobCommand::Logs { id } => {
            let (answer, logs) = api.get_as::<LogList>(&["v1", "jobs", &id, "logs"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_logs(&logs);
            }
            Ok(EXIT_OK)
        }
        JobCommand::Attempts { id } => {
            let (answer, attempts) = api
                .get_as::<AttemptList>(&["v1", "jobs", &id, "attempts"])
                .await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_attempts(&attempts);
            }
            Ok(EXIT_OK)
        }
        JobCommand::Replay {
            id: None,
            bulk: args,
            ..
        } => bulk(&api, options, "replay", args).await,
        JobCommand::Replay {
            id: Some(id), wait, ..
        } => {
            let answer = api.post(&["v1", "jobs", &id, "replay"]).await?;
            let job: Job = api.parse(&answer)?;
            if wait {
                wait_and_print(&api, options, job.id).await
            } else {
                print_job(options, &job);
                Ok(EXIT_OK)
            }
        }
    }
}

/// The exit status for a job that ended in `state`.
pub fn exit_status(state: JobState) -> i32 {
    if state == JobState::Completed {
        EXIT_OK
    } else {
        EXIT_JOB_FAILED
    }
}

async fn create(
    api: &Api,
    options: &ClientOptions,
    args: CreateJobArgs,
) -> Result<i32, ClientError> {
    let input = read_input(&args.input).await?;
    let mut job = corral_client::Enqueue::raw(&args.plugin, input).with(|job| {
        job.version = args.version;
        job.queue = args.queue.clone();
        job.priority = args.priority;
        job.run_at = args.run_at;
        job.max_attempts = args.max_attempts;
        job.timeout_ms = args.timeout_ms;
    });
    if let Some(key) = &args.idempotency_key {
        job = job.key(key);
    }
    let job = api
        .typed()?
        .enqueue(job)
        .await
        .map_err(|e| api.typed_error(e))?;
    if args.wait {
        wait_and_print(api, options, job.id).await
    } else {
        print_job(options, &job);
        Ok(EXIT_OK)
    }
}

/// Follow a just-created job to its end, then print it as it is then.
async fn wait_and_print(
    api: &Api,
    options: &ClientOptions,
    id: uuid::Uuid,
) -> Result<i32, ClientError> {
    if !options.json {
        output::note(&format!("job {id} created; waiting for it to finish"));
    }
    let mode = if options.json { Mode::Quiet } else { Mode::Bar };
    let state = watch::follow(api, id, mode).await?;
    let job = api.typed()?.job(id).await.map_err(|e| api.typed_error(e))?;
    print_job(options, &job);
    Ok(exit_status(state))
}

/// The input as JSON text, from `--input`, `--input-file` or stdin (`-`).
pub(super) async fn read_input(args: &super::InputArgs) -> Result<Box<RawValue>, ClientError> {
    let (input, file) = (args.input.as_deref(), args.input_file.as_deref());
    let stdin = || async {
        let mut text = String::new();
        tokio::io::stdin()
            .read_to_string(&mut text)
            .await
            .map_err(|e| ClientError::Usage(format!("cannot read the input from stdin: {e}")))?;
        Ok::<_, ClientError>(text)
    };
    let (text, source) = match (input, file) {
        (Some("-"), _) => (stdin().await?, "the input on stdin".to_string()),
        (Some(text), _) => (text.to_string(), "--input".to_string()),
        (None, Some(path)) if path == Path::new("-") => {
            (stdin().await?, "the input on stdin".to_string())
        }
        (None, Some(path)) => {
            let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                ClientError::Usage(format!("cannot read --input-file {}: {e}", path.display()))
            })?;
            (text, path.display().to_string())
        }
        (None, None) => (DEFAULT_INPUT.to_string(), "--input".to_string()),
    };
    parse_input(text, &source)
}

fn parse_input(text: String, source: &str) -> Result<Box<RawValue>, ClientError> {
    let trimmed = text.trim();
    let text = if trimmed.len() == text.len() {
        text
    } else {
        trimmed.to_string()
    };
    RawValue::from_string(text)
        .map_err(|e| ClientError::Usage(format!("{source} is not valid JSON: {e}")))
}

/// `--run-at`: RFC 3339, or `+N` seconds/minutes/hours/days from now.
pub fn parse_run_at(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    relative_time(text, '+')
}

/// `--created-after`, `--created-before`: RFC 3339, or `-N`
/// seconds/minutes/hours/days ago.
pub fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    relative_time(text, '-')
}

/// RFC 3339, or `{sign}N[s|m|h|d]` from now (`+` ahead, `-` ago).
fn relative_time(text: &str, sign: char) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let Some(offset) = text.strip_prefix(sign) else {
        return chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                format!(
                    "`{text}` is neither RFC 3339 (2026-01-01T09:00:00Z) nor {sign}N[s|m|h|d]: {e}"
                )
            });
    };
    let unit_at = offset
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(offset.len());
    let (number, unit) = offset.split_at(unit_at);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected {sign}N followed by s, m, h or d"))?;
    let delta = match unit {
        "s" | "" => chrono::TimeDelta::try_seconds(number),
        "m" => chrono::TimeDelta::try_minutes(number),
        "h" => chrono::TimeDelta::try_hours(number),
        "d" => chrono::TimeDelta::try_days(number),
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    }
    .ok_or_else(|| format!("`{text}` is too far away"))?;
    let delta = if sign == '-' { -delta } else { delta };
    chrono::Utc::now()
        .checked_add_signed(delta)
        .ok_or_else(|| format!("`{text}` is too far away"))
}

/// The query parameters of a filter.
fn filter_query(filter: &JobFilterArgs) -> Vec<(&'static str, String)> {
    let time = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };
    [
        ("state", filter.state.clone()),
        ("queue", filter.queue.clone()),
        ("plugin", filter.plugin.clone()),
        ("error", filter.error.clone()),
        ("created_after", time(&filter.created_after)),
        ("created_before", time(&filter.created_before)),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name, v)))
    .collect()
}

/// `job replay` or `job cancel` by filter: the dry run's count, or every
/// request until the cursor runs out, printing each job acted on.
async fn bulk(
    api: &Api,
    options: &ClientOptions,
    action: &str,
    args: BulkArgs,
) -> Result<i32, ClientError> {
    let state = args
        .filter
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| ClientError::Usage(format!("unknown state `{s}`")))
        })
        .transpose()?;
    let filter = JobSelector {
        state,
        plugin: args.filter.plugin,
        queue: args.filter.queue,
        created_after: args.filter.created_after,
        created_before: args.filter.created_before,
        error_contains: args.filter.error,
    };
    let mut request = BulkRequest {
        filter,
        dry_run: args.dry_run,
        ..BulkRequest::default()
    };
    let mut acted = 0usize;
    loop {
        let answer = api.post_json(&["v1", "jobs", action], &request).await?;
        let outcome: BulkOutcome = api.parse(&answer)?;
        if args.dry_run {
            if options.json {
                output::line(&answer.text);
            } else {
                let more = if outcome.matched_is_lower_bound {
                    " or more"
                } else {
                    ""
                };
                output::line(&format!(
                    "{}{more} jobs match; nothing was changed",
                    outcome.matched.unwrap_or(0)
                ));
            }
            return Ok(EXIT_OK);
        }
        acted += outcome.jobs.len();
        if options.json {
            output::line(&answer.text);
        } else if outcome.replays.is_empty() {
            for id in &outcome.jobs {
                output::line(&id.to_string());
            }
        } else {
            for (id, replay) in outcome.jobs.iter().zip(&outcome.replays) {
                output::line(&format!("{id} {replay}"));
            }
        }
        match outcome.next_cursor {
            // A cursor that does not move would loop forever.
            Some(next) if Some(&next) != request.cursor.as_ref() => request.cursor = Some(next),
            _ => break,
        }
    }
    if !options.json {
        let done = if action == "replay" {
            "replayed"
        } else {
            "cancelled"
        };
        output::note(&format!("{acted} jobs {done}"));
    }
    Ok(EXIT_OK)
}

async fn list(api: &Api, options: &ClientOptions, args: ListJobsArgs) -> Result<i32, ClientError> {
    let limit = args.limit.or(args.all.then_some(ALL_PAGE_SIZE));
    let mut cursor = args.cursor.clone();
    let mut jobs: Vec<Job> = Vec::new();
    loop {
        let mut query = filter_query(&args.filter);
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let answer = api
            .call(api.request(Method::GET, &["v1", "jobs"]).query(&query))
            .await?;
        let page: JobList = api.parse(&answer)?;
        if !args.all {
            if options.json {
                output::line(&answer.text);
            } else {
                print_jobs(&page.jobs);
                if let Some(next) = page.next_cursor {
                    output::note(&format!("more jobs: --cursor {next} (or --all)"));
                }
            }
            return Ok(EXIT_OK);
        }
        jobs.extend(page.jobs);
        match page.next_cursor {
            // A cursor that does not move would loop forever.
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            _ => break,
        }
    }
    if options.json {
        let all = JobList {
            jobs,
            next_cursor: None,
        };
        output::line(&serde_json::to_string(&all).unwrap_or_default());
    } else {
        print_jobs(&jobs);
    }
    Ok(EXIT_OK)
}

fn print_job(options: &ClientOptions, job: &Job) {
    if options.json {
        // The server's own type, written back as the server wrote it.
        output::line(&serde_json::to_string(job).unwrap_or_default());
        return;
    }
    let mut pairs = vec![
        ("id", job.id.to_string()),
        (
            "plugin",
            format!("{} (version {})", job.plugin, job.version),
        ),
        ("state", job.state.to_string()),
        (
            "attempt",
            format!("{} of {}", job.attempt, job.max_attempts),
        ),
        ("queue", job.queue.clone()),
        ("priority", job.priority.to_string()),
    ];
    if let Some(progress) = &job.progress {
        pairs.push((
            "progress",
            format!("{}% {}", progress.percent, progress.message),
        ));
    }
    pairs.extend([
        ("run_at", show(&job.run_at)),
        ("created_at", show(&job.created_at)),
        ("started_at", show(&job.started_at)),
        ("finished_at", show(&job.finished_at)),
    ]);
    if let Some(replay_of) = job.replay_of {
        pairs.push(("replay_of", replay_of.to_string()));
    }
    pairs.extend([
        ("input", show(&job.input)),
        ("result", show(&job.result)),
        ("error", show(&job.error)),
    ]);
    output::fields(&pairs);
}

fn print_jobs(jobs: &[Job]) {
    let rows = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                format!("{}@{}", j.plugin, j.version),
                j.state.to_string(),
                format!("{}/{}", j.attempt, j.max_attempts),
                j.queue.clone(),
                show(&j.created_at),
            ]
        })
        .collect();
    output::table(
        &["id", "plugin", "state", "attempt", "queue", "created"],
        rows,
    );
}

fn print_logs(answer: &LogList) {
    if answer.logs.is_empty() {
        output::note("no attempt has run yet");
        return;
    }
    for log in &answer.logs {
        let mut header = format!("── attempt {} ", log.attempt);
        if log.truncated {
            header.push_str(&format!(
                "(truncated: {} dropped) ",
                bytes(log.dropped_bytes)
            ));
        }
        output::line(&format!("{header}──"));
        if !log.log.is_empty() {
            output::line(&log.log);
        }
    }
}

fn print_attempts(answer: &AttemptList) {
    let rows = answer
        .attempts
        .iter()
        .map(|a| {
            vec![
                a.attempt.to_string(),
                a.outcome.to_string(),
                a.duration_ms.to_string(),
                a.fuel_consumed.to_string(),
                bytes(a.peak_memory_bytes),
                a.host_id.clone(),
                show(&a.started_at),
                show(&a.message),
            ]
        })
        .collect();
    output::table(
        &[
            "attempt",
            "outcome",
            "ms",
            "fuel",
            "peak memory",
            "host",
            "started",
            "message",
        ],
        rows,
    );
    // The outbound HTTP requests of the attempts that made any.
    let calls: Vec<Vec<String>> = answer
        .attempts
        .iter()
        .flat_map(|a| {
            let calls = a.http.iter().flat_map(|http| &http.calls);
            calls.map(move |c| {
                vec![
                    a.attempt.to_string(),
                    c.method.clone(),
                    format!("{}://{}:{}{}", c.scheme, c.host, c.port, c.path),
                    c.result.as_str().to_string(),
                    show(&c.status),
                    format!("{}/{}", c.bytes_sent, c.bytes_received),
                    c.duration_ms.to_string(),
                    show(&c.error),
                ]
            })
        })
        .collect();
    if !calls.is_empty() {
        output::line("");
        output::table(
            &[
                "attempt",
                "method",
                "url",
                "result",
                "status",
                "sent/received",
                "ms",
                "error",
            ],
            calls,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_at_takes_rfc3339_and_offsets_from_now() {
        assert_eq!(
            parse_run_at("2030-01-02T03:04:05Z").unwrap().to_rfc3339(),
            "2030-01-02T03:04:05+00:00"
        );
        assert_eq!(
            parse_run_at("2030-01-02T05:04:05+02:00").unwrap(),
            parse_run_at("2030-01-02T03:04:05Z").unwrap()
        );
        let before = chrono::Utc::now();
        let at = parse_run_at("+2h").unwrap();
        let delta = at - before;
        assert!(
            delta >= chrono::TimeDelta::hours(2)
                && delta < chrono::TimeDelta::hours(2) + chrono::TimeDelta::minutes(1)
        );
        assert!(parse_run_at("+90").unwrap() > before + chrono::TimeDelta::seconds(89));
        for bad in [
            "tomorrow",
            "+",
            "+5w",
            "+-5m",
            "+99999999999999999999d",
            "2030-01-02",
        ] {
            let e = parse_run_at(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn input_is_checked_and_kept_as_written() {
        let raw = parse_input(" {\"n\": 12345678901234567890123}\n".into(), "--input").unwrap();
        assert_eq!(raw.get(), "{\"n\": 12345678901234567890123}");
        let e = parse_input("{oops".into(), "--input").unwrap_err();
        assert!(
            e.to_string().starts_with("--input is not valid JSON"),
            "{e}"
        );
        let e = parse_input("".into(), "the input on stdin").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the input on stdin is not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(exit_status(JobState::Completed), 0);
        assert_eq!(exit_status(JobState::Dead), 1);
        assert_eq!(exit_status(JobState::Cancelled), 1);
    }
}
