//! `corral job …`: create (and wait), batch, get, list, watch, cancel, logs,
//! attempts, replay.

use std::path::Path;

use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::http::{Answer, Api, ClientError};
use super::output::{self, at, bytes_at};
use super::watch::{self, Mode};
use super::{ClientOptions, CreateJobArgs, EXIT_JOB_FAILED, EXIT_OK, JobCommand, ListJobsArgs};

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
            let answer = api.get(&["v1", "jobs", &id]).await?;
            print_job(options, &typed_job(&api, &answer)?);
            Ok(EXIT_OK)
        }
        JobCommand::List(args) => list(&api, options, args).await,
        JobCommand::Watch { id } => {
            let mode = if options.json {
                Mode::JsonLines
            } else {
                Mode::Lines
            };
            let state = watch::follow(&api, &id, mode).await?;
            Ok(exit_status(&state))
        }
        JobCommand::Batch {
            file,
            idempotency_key,
        } => {
            let jobs = match super::files::read_value(&file).await? {
                Value::Array(jobs) => Value::Array(jobs),
                Value::Object(mut body) if body.len() == 1 && body.contains_key("jobs") => {
                    body.remove("jobs").unwrap_or_default()
                }
                other => {
                    return Err(ClientError::Usage(format!(
                        "{} must hold a list of jobs or {{\"jobs\": [...]}}, not {}",
                        file.display(),
                        super::files::kind(&other)
                    )));
                }
            };
            let answer = api
                .post_keyed(
                    &["v1", "jobs", "batch"],
                    &serde_json::json!({ "jobs": jobs }),
                    idempotency_key.as_deref(),
                )
                .await?;
            if options.json {
                output::line(&answer.text);
            } else {
                for id in answer.value["ids"].as_array().into_iter().flatten() {
                    output::line(&output::cell(id));
                }
            }
            Ok(EXIT_OK)
        }
        JobCommand::Cancel { id } => {
            let answer = api.post(&["v1", "jobs", &id, "cancel"]).await?;
            print_job(options, &typed_job(&api, &answer)?);
            Ok(EXIT_OK)
        }
        JobCommand::Logs { id } => {
            let answer = api.get(&["v1", "jobs", &id, "logs"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_logs(&answer.value);
            }
            Ok(EXIT_OK)
        }
        JobCommand::Attempts { id } => {
            let answer = api.get(&["v1", "jobs", &id, "attempts"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_attempts(&answer.value);
            }
            Ok(EXIT_OK)
        }
        JobCommand::Replay { id, wait } => {
            let answer = api.post(&["v1", "jobs", &id, "replay"]).await?;
            let job = typed_job(&api, &answer)?;
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
pub fn exit_status(state: &str) -> i32 {
    if state == "completed" {
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
    let state = watch::follow(api, &id.to_string(), mode).await?;
    let job = api.typed()?.job(id).await.map_err(|e| api.typed_error(e))?;
    print_job(options, &job);
    Ok(exit_status(&state))
}

/// An answer that is a job, as the API's own type.
fn typed_job(api: &Api, answer: &Answer) -> Result<corral_client::Job, ClientError> {
    serde_json::from_str(&answer.text)
        .map_err(|e| api.protocol(format!("an answer that is not a job ({e})")))
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
    let Some(offset) = text.strip_prefix('+') else {
        return chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                format!("`{text}` is neither RFC 3339 (2026-01-01T09:00:00Z) nor +N[s|m|h|d]: {e}")
            });
    };
    let unit_at = offset
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(offset.len());
    let (number, unit) = offset.split_at(unit_at);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected +N followed by s, m, h or d"))?;
    let delta = match unit {
        "s" | "" => chrono::TimeDelta::try_seconds(number),
        "m" => chrono::TimeDelta::try_minutes(number),
        "h" => chrono::TimeDelta::try_hours(number),
        "d" => chrono::TimeDelta::try_days(number),
        _ => return Err(format!("`{text}`: the unit must be s, m, h or d")),
    }
    .ok_or_else(|| format!("`{text}` is too far away"))?;
    chrono::Utc::now()
        .checked_add_signed(delta)
        .ok_or_else(|| format!("`{text}` is too far away"))
}

async fn list(api: &Api, options: &ClientOptions, args: ListJobsArgs) -> Result<i32, ClientError> {
    let limit = args.limit.or(args.all.then_some(ALL_PAGE_SIZE));
    let mut cursor = args.cursor.clone();
    let mut jobs: Vec<Value> = Vec::new();
    loop {
        let mut query: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("state", &args.state),
            ("queue", &args.queue),
            ("plugin", &args.plugin),
            ("cursor", &cursor),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let answer = api
            .call(api.request(Method::GET, &["v1", "jobs"]).query(&query))
            .await?;
        let next = answer.value["next_cursor"].as_str().map(String::from);
        if !args.all {
            if options.json {
                output::line(&answer.text);
            } else {
                print_jobs(answer.value["jobs"].as_array().map(Vec::as_slice));
                if let Some(next) = next {
                    output::note(&format!("more jobs: --cursor {next} (or --all)"));
                }
            }
            return Ok(EXIT_OK);
        }
        let page = match answer.value {
            Value::Object(mut body) => body.remove("jobs"),
            _ => None,
        };
        let Some(Value::Array(page)) = page else {
            return Err(api.protocol("a page of jobs without `jobs`"));
        };
        jobs.extend(page);
        match next {
            // A cursor that does not move would loop forever.
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            _ => break,
        }
    }
    if options.json {
        output::line(&json!({ "jobs": jobs, "next_cursor": null }).to_string());
    } else {
        print_jobs(Some(&jobs));
    }
    Ok(EXIT_OK)
}

fn print_job(options: &ClientOptions, job: &corral_client::Job) {
    if options.json {
        // The server's own type, written back as the server wrote it.
        output::line(&serde_json::to_string(job).unwrap_or_default());
        return;
    }
    // The text layout formats each field as `--json` shows it.
    let job = &serde_json::to_value(job).unwrap_or_default();
    let mut pairs = vec![
        ("id", at(job, "id")),
        (
            "plugin",
            format!("{} (version {})", at(job, "plugin"), at(job, "version")),
        ),
        ("state", at(job, "state")),
        (
            "attempt",
            format!("{} of {}", at(job, "attempt"), at(job, "max_attempts")),
        ),
        ("queue", at(job, "queue")),
        ("priority", at(job, "priority")),
    ];
    if let Some(progress) = job.get("progress").filter(|p| !p.is_null()) {
        pairs.push((
            "progress",
            format!(
                "{}% {}",
                at(progress, "percent"),
                progress["message"].as_str().unwrap_or("")
            ),
        ));
    }
    pairs.extend([
        ("run_at", at(job, "run_at")),
        ("created_at", at(job, "created_at")),
        ("started_at", at(job, "started_at")),
        ("finished_at", at(job, "finished_at")),
    ]);
    if job.get("replay_of").is_some() {
        pairs.push(("replay_of", at(job, "replay_of")));
    }
    pairs.extend([
        ("input", at(job, "input")),
        ("result", at(job, "result")),
        ("error", at(job, "error")),
    ]);
    output::fields(&pairs);
}

fn print_jobs(jobs: Option<&[Value]>) {
    let rows = jobs
        .into_iter()
        .flatten()
        .map(|j| {
            vec![
                at(j, "id"),
                format!("{}@{}", at(j, "plugin"), at(j, "version")),
                at(j, "state"),
                format!("{}/{}", at(j, "attempt"), at(j, "max_attempts")),
                at(j, "queue"),
                at(j, "created_at"),
            ]
        })
        .collect();
    output::table(
        &["id", "plugin", "state", "attempt", "queue", "created"],
        rows,
    );
}

fn print_logs(answer: &Value) {
    let logs = answer["logs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if logs.is_empty() {
        output::note("no attempt has run yet");
        return;
    }
    for log in logs {
        let mut header = format!("── attempt {} ", at(log, "attempt"));
        if log["truncated"].as_bool() == Some(true) {
            header.push_str(&format!(
                "(truncated: {} dropped) ",
                bytes_at(log, "dropped_bytes")
            ));
        }
        output::line(&format!("{header}──"));
        if let Some(text) = log["log"].as_str().filter(|t| !t.is_empty()) {
            output::line(text);
        }
    }
}

fn print_attempts(answer: &Value) {
    let rows = answer["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                at(a, "attempt"),
                at(a, "outcome"),
                at(a, "duration_ms"),
                at(a, "fuel_consumed"),
                bytes_at(a, "peak_memory_bytes"),
                at(a, "host_id"),
                at(a, "started_at"),
                at(a, "message"),
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
    let calls: Vec<Vec<String>> = answer["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| {
            let attempt = at(a, "attempt");
            a["http"]["calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |c| {
                    vec![
                        attempt.clone(),
                        at(c, "method"),
                        format!(
                            "{}://{}:{}{}",
                            at(c, "scheme"),
                            at(c, "host"),
                            at(c, "port"),
                            at(c, "path")
                        ),
                        at(c, "result"),
                        at(c, "status"),
                        format!("{}/{}", at(c, "bytes_sent"), at(c, "bytes_received")),
                        at(c, "duration_ms"),
                        at(c, "error"),
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
        assert_eq!(exit_status("completed"), 0);
        assert_eq!(exit_status("dead"), 1);
        assert_eq!(exit_status("cancelled"), 1);
    }
}
