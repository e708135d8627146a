//! `corral workflow …`: apply a definition file, list and show definitions,
//! start a run (and wait for it), show a run's steps, draw it, cancel it,
//! list runs.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{Answer, Api, ClientError};
use super::output::{self, at};
use super::{ClientOptions, EXIT_JOB_FAILED, EXIT_OK, RunWorkflowArgs, WorkflowCommand};

/// How often `workflow run --wait` looks at the run. Runs have no event
/// stream of their own (a run's steps are jobs, each with one); one GET of
/// the run every half second is cheap for the server and close enough for
/// a person watching.
const WAIT_POLL: Duration = Duration::from_millis(500);

pub async fn run(options: &ClientOptions, command: WorkflowCommand) -> Result<i32, ClientError> {
    let api = Api::new(options)?;
    match command {
        WorkflowCommand::Apply { file, name } => {
            let mut definition = super::files::read_object(&file).await?;
            let name = super::files::take_name(&mut definition, name, &file)?;
            let request = api
                .request(Method::PUT, &["v1", "workflows", &name])
                .json(&definition);
            let answer = api.call(request).await?;
            if options.json {
                output::line(&answer.text);
                return Ok(EXIT_OK);
            }
            let version = at(&answer.value, "version");
            if answer.status == StatusCode::CREATED {
                output::note(&format!("applied {name} version {version}"));
            } else {
                output::note(&format!(
                    "unchanged: version {version} of {name} has the same definition"
                ));
            }
            print_workflow(&answer.value);
            Ok(EXIT_OK)
        }
        WorkflowCommand::List => {
            let answer = api.get(&["v1", "workflows"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                let rows = answer.value["workflows"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|w| {
                        vec![
                            at(w, "name"),
                            at(w, "version"),
                            w["steps"].as_array().map_or(0, Vec::len).to_string(),
                            at(w, "created_at"),
                        ]
                    })
                    .collect();
                output::table(&["name", "version", "steps", "created"], rows);
            }
            Ok(EXIT_OK)
        }
        WorkflowCommand::Show { name, version } => {
            let mut request = api.request(Method::GET, &["v1", "workflows", &name]);
            if let Some(version) = version {
                request = request.query(&[("version", version)]);
            }
            let answer = api.call(request).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_workflow(&answer.value);
            }
            Ok(EXIT_OK)
        }
        WorkflowCommand::Run(args) => start(&api, options, args).await,
        WorkflowCommand::Status { run } => {
            let answer = api.get(&["v1", "workflow-runs", &run]).await?;
            print_run(options, &answer);
            Ok(EXIT_OK)
        }
        WorkflowCommand::Diagram { run } => {
            let response = api
                .send(api.request(Method::GET, &["v1", "workflow-runs", &run, "diagram"]))
                .await?;
            let text = response.text().await.map_err(|e| api.transport(e))?;
            output::line(&text);
            Ok(EXIT_OK)
        }
        WorkflowCommand::Cancel { run } => {
            let answer = api.post(&["v1", "workflow-runs", &run, "cancel"]).await?;
            print_run(options, &answer);
            Ok(EXIT_OK)
        }
        WorkflowCommand::Runs {
            workflow,
            state,
            limit,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(workflow) = workflow {
                query.push(("workflow", workflow));
            }
            if let Some(state) = state {
                query.push(("state", state));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let request = api
                .request(Method::GET, &["v1", "workflow-runs"])
                .query(&query);
            let answer = api.call(request).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                let rows = answer.value["runs"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| {
                        vec![
                            at(r, "id"),
                            format!("{} v{}", at(r, "workflow"), at(r, "workflow_version")),
                            at(r, "state"),
                            at(r, "created_at"),
                            at(r, "finished_at"),
                        ]
                    })
                    .collect();
                output::table(&["id", "workflow", "state", "created", "finished"], rows);
                if let Some(cursor) = answer.value["next_cursor"].as_str() {
                    output::note(&format!("more: the next page starts after {cursor}"));
                }
            }
            Ok(EXIT_OK)
        }
    }
}

async fn start(
    api: &Api,
    options: &ClientOptions,
    args: RunWorkflowArgs,
) -> Result<i32, ClientError> {
    let input = super::jobs::read_input(&args.input).await?;
    let mut body = json!({ "input": input });
    if let Some(version) = args.version {
        body["version"] = json!(version);
    }
    let answer = api
        .post_keyed(
            &["v1", "workflows", &args.name, "runs"],
            &body,
            args.idempotency_key.as_deref(),
        )
        .await?;
    if !args.wait {
        print_run(options, &answer);
        return Ok(EXIT_OK);
    }
    let id = at(&answer.value, "id");
    if !options.json {
        output::note(&format!("run {id} started; waiting for it to finish"));
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(100));
    let mut last = answer;
    while last.value["state"].as_str() == Some("running") {
        spinner.set_message(progress(&last.value));
        tokio::time::sleep(WAIT_POLL).await;
        last = api.get(&["v1", "workflow-runs", &id]).await?;
    }
    spinner.finish_and_clear();
    print_run(options, &last);
    Ok(exit_status(
        last.value["state"].as_str().unwrap_or_default(),
    ))
}

/// `3/5 steps finished` for the spinner.
fn progress(run: &Value) -> String {
    let steps = run["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let finished = steps
        .iter()
        .filter(|s| !matches!(s["state"].as_str(), Some("pending" | "running")))
        .count();
    format!("{finished}/{} steps finished", steps.len())
}

/// The exit status for a run that ended in `state`.
pub fn exit_status(state: &str) -> i32 {
    if state == "completed" {
        EXIT_OK
    } else {
        EXIT_JOB_FAILED
    }
}

fn print_workflow(workflow: &Value) {
    output::fields(&[
        ("name", at(workflow, "name")),
        ("version", at(workflow, "version")),
        ("created", at(workflow, "created_at")),
    ]);
    let rows = workflow["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let plugin = match s["version"].as_u64() {
                Some(v) => format!("{} v{v}", at(s, "plugin")),
                None => at(s, "plugin"),
            };
            let depends = s["depends_on"]
                .as_array()
                .map(|d| d.iter().map(output::cell).collect::<Vec<_>>().join(","))
                .unwrap_or_else(|| "-".into());
            vec![
                at(s, "name"),
                plugin,
                if depends.is_empty() {
                    "-".into()
                } else {
                    depends
                },
                at(s, "on_failure"),
                at(s, "when"),
                at(s, "for_each"),
            ]
        })
        .collect();
    output::line("");
    output::table(
        &[
            "step",
            "plugin",
            "depends on",
            "on failure",
            "when",
            "for each",
        ],
        rows,
    );
}

fn print_run(options: &ClientOptions, answer: &Answer) {
    if options.json {
        output::line(&answer.text);
        return;
    }
    let run = &answer.value;
    let mut fields = vec![
        ("id", at(run, "id")),
        (
            "workflow",
            format!("{} v{}", at(run, "workflow"), at(run, "workflow_version")),
        ),
        ("state", at(run, "state")),
        ("created", at(run, "created_at")),
        ("finished", at(run, "finished_at")),
    ];
    if !run["error"].is_null() {
        fields.push(("error", at(run, "error")));
    }
    if !run["schedule"].is_null() {
        fields.push(("schedule", at(run, "schedule")));
    }
    output::fields(&fields);
    let rows = run["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let items = match s["items"].as_u64() {
                Some(n) => format!("{}/{n}", at(s, "items_done")),
                None => "-".into(),
            };
            vec![
                at(s, "name"),
                at(s, "state"),
                format!("{} v{}", at(s, "plugin"), at(s, "version")),
                at(s, "job_id"),
                items,
                at(s, "error"),
            ]
        })
        .collect();
    output::line("");
    output::table(&["step", "state", "plugin", "job", "items", "error"], rows);
}
