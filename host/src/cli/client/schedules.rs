//! `corral schedule …`: apply a definition file, list, show, pause, resume,
//! delete.

use corral_client::api::{Schedule, ScheduleList, Target, TargetKind};
use reqwest::{Method, StatusCode};

use super::http::{Answer, Api, ClientError};
use super::output::{self, show};
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
            print_schedule(&api, options, &answer)?;
            Ok(EXIT_OK)
        }
        ScheduleCommand::List => {
            let (answer, list) = api.get_as::<ScheduleList>(&["v1", "schedules"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                let rows = list
                    .schedules
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.cron.clone(),
                            s.timezone.clone(),
                            target(&s.target),
                            if s.paused { "paused" } else { "active" }.into(),
                            show(&s.next_tick),
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
            print_schedule(&api, options, &answer)?;
            Ok(EXIT_OK)
        }
        ScheduleCommand::Pause { name } => {
            let answer = api.post(&["v1", "schedules", &name, "pause"]).await?;
            print_schedule(&api, options, &answer)?;
            Ok(EXIT_OK)
        }
        ScheduleCommand::Resume { name } => {
            let answer = api.post(&["v1", "schedules", &name, "resume"]).await?;
            print_schedule(&api, options, &answer)?;
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
fn target(target: &Target) -> String {
    let (kind, name) = match target.kind() {
        Ok(TargetKind::Plugin(name)) => ("plugin", name),
        Ok(TargetKind::Workflow(name)) => ("workflow", name),
        // The server stores only targets with exactly one of the two.
        Err(_) => ("target", "-"),
    };
    match target.version {
        Some(v) => format!("{kind} {name} v{v}"),
        None => format!("{kind} {name}"),
    }
}

fn print_schedule(api: &Api, options: &ClientOptions, answer: &Answer) -> Result<(), ClientError> {
    if options.json {
        output::line(&answer.text);
        return Ok(());
    }
    let s: Schedule = api.parse(answer)?;
    output::fields(&[
        ("name", s.name.clone()),
        ("cron", s.cron.clone()),
        ("time zone", s.timezone.clone()),
        ("target", target(&s.target)),
        ("input", output::cell(&s.target.input)),
        ("paused", s.paused.to_string()),
        ("catch up", s.catch_up.to_string()),
        ("next tick", show(&s.next_tick)),
    ]);
    if let Some(ticks) = s.recent_ticks.filter(|t| !t.is_empty()) {
        let rows = ticks
            .iter()
            .map(|t| {
                vec![
                    show(&t.tick),
                    match (t.job_id, t.run_id) {
                        (Some(job), _) => format!("job {job}"),
                        (None, Some(run)) => format!("run {run}"),
                        (None, None) => "-".into(),
                    },
                    show(&t.error),
                ]
            })
            .collect();
        output::line("");
        output::table(&["tick", "started", "error"], rows);
    }
    Ok(())
}
