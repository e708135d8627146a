//! `corral schedule …`: apply a definition file, list, show, pause, resume,
//! delete.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::http::{Answer, Api, ClientError};
use super::output::{self, at};
use super::{ClientOptions, EXIT_OK, ScheduleCommand};

pub async fn run(options: &ClientOptions, command: ScheduleCommand) -> Result<i32, ClientError> {
    let api = Api::new(options)?;
    match command {
        ScheduleCommand::Apply { file, name } => {
            let mut definition = super::files::read_object(&file).await?;
            let name = super::files::take_name(&mut definition, name, &file)?;
            let request = api
                .request(Method::PUT, &["v1", "schedules", &name])
                .json(&definition);
            let answer = api.call(request).await?;
            if !options.json {
                output::note(&if answer.status == StatusCode::CREATED {
                    format!("created schedule {name}")
                } else {
                    format!("replaced schedule {name}")
                });
            }
            print_schedule(options, &answer);
            Ok(EXIT_OK)
        }
        ScheduleCommand::List => {
            let answer = api.get(&["v1", "schedules"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                let rows = answer.value["schedules"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| {
                        vec![
                            at(s, "name"),
                            at(s, "cron"),
                            at(s, "timezone"),
                            target(&s["target"]),
                            if s["paused"] == Value::Bool(true) {
                                "paused".into()
                            } else {
                                "active".into()
                            },
                            at(s, "next_tick"),
                        ]
                    })
                    .collect();
                output::table(
                    &["name", "cron", "time zone", "target", "state", "next tick"],
                    rows,
                );
            }
            Ok(EXIT_OK)
        }
        ScheduleCommand::Show { name } => {
            let answer = api.get(&["v1", "schedules", &name]).await?;
            print_schedule(options, &answer);
            Ok(EXIT_OK)
        }
        ScheduleCommand::Pause { name } => {
            let answer = api.post(&["v1", "schedules", &name, "pause"]).await?;
            print_schedule(options, &answer);
            Ok(EXIT_OK)
        }
        ScheduleCommand::Resume { name } => {
            let answer = api.post(&["v1", "schedules", &name, "resume"]).await?;
            print_schedule(options, &answer);
            Ok(EXIT_OK)
        }
        ScheduleCommand::Delete { name } => {
            api.call(api.request(Method::DELETE, &["v1", "schedules", &name]))
                .await?;
            if !options.json {
                output::note(&format!("deleted schedule {name}"));
            }
            Ok(EXIT_OK)
        }
    }
}

/// `plugin echo v2` / `workflow nightly`.
fn target(target: &Value) -> String {
    let (kind, name) = if target["plugin"].is_string() {
        ("plugin", at(target, "plugin"))
    } else {
        ("workflow", at(target, "workflow"))
    };
    match target["version"].as_u64() {
        Some(v) => format!("{kind} {name} v{v}"),
        None => format!("{kind} {name}"),
    }
}

fn print_schedule(options: &ClientOptions, answer: &Answer) {
    if options.json {
        output::line(&answer.text);
        return;
    }
    let s = &answer.value;
    output::fields(&[
        ("name", at(s, "name")),
        ("cron", at(s, "cron")),
        ("time zone", at(s, "timezone")),
        ("target", target(&s["target"])),
        ("input", output::cell(&s["target"]["input"])),
        ("paused", at(s, "paused")),
        ("catch up", at(s, "catch_up")),
        ("next tick", at(s, "next_tick")),
    ]);
    if let Some(ticks) = s["recent_ticks"].as_array()
        && !ticks.is_empty()
    {
        let rows = ticks
            .iter()
            .map(|t| {
                vec![
                    at(t, "tick"),
                    if t["job_id"].is_string() {
                        format!("job {}", at(t, "job_id"))
                    } else if t["run_id"].is_string() {
                        format!("run {}", at(t, "run_id"))
                    } else {
                        "-".into()
                    },
                    at(t, "error"),
                ]
            })
            .collect();
        output::line("");
        output::table(&["tick", "started", "error"], rows);
    }
}
