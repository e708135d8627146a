//! `corral workflow …`: apply a definition file, list and show definitions,
//! start a run (and wait for it), show a run's steps, draw it, cancel it,
//! list runs.

use std::time::Duration;

use corral_client::api::{RunList, RunState, Workflow, WorkflowList, WorkflowRun};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::http::{Answer, Api, ClientError};
use super::output::{self, show};
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
            let workflow: Workflow = api.parse(&answer)?;
            let version = workflow.version;
            if answer.status == StatusCode::CREATED {
                output::note(&format!("applied {name} version {version}"));
            } else {
                output::note(&format!(
                    "unchanged: version {version} of {name} has the same definition"
                ));
            }
            print_workflow(&workflow);
            Ok(EXIT_OK)
        }
        WorkflowCommand::List => {
            let (answer, list) = api.get_as::<WorkflowList>(&["v1", "workflows"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                let rows = list
                    .workflows
                    .iter()
                    .map(|w| {
                        vec![
                            w.name.clone(),
                            w.version.to_string(),
                            w.steps.len().to_string(),
                            show(&w.created_at),
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
                print_workflow(&api.parse(&answer)?);
            }
            Ok(EXIT_OK)
        }
        WorkflowCommand::Run(args) => start(&api, options, args).await,
        WorkflowCommand::Status { run } => {
            let answer = api.get(&["v1", "workflow-runs", &run]).await?;
            print_run(&api, options, &answer)?;
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
            print_run(&api, options, &answer)?;
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
                let list: RunList = api.parse(&answer)?;
                let rows = list
                    .runs
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            format!("{} v{}", r.workflow, r.workflow_version),
                            r.state.to_string(),
                            show(&r.created_at),
                            show(&r.finished_at),
                        ]
                    })
                    .collect();
                output::table(&["id", "workflow", "state", "created", "finished"], rows);
                if let Some(cursor) = list.next_cursor {
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
        print_run(api, options, &answer)?;
        return Ok(EXIT_OK);
    }
    let mut run: WorkflowRun = api.parse(&answer)?;
    let id = run.id.to_string();
    if !options.json {
        output::note(&format!("run {id} started; waiting for it to finish"));
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(100));
    let mut last = answer;
    while !run.state.is_terminal() {
        spinner.set_message(progress(&run));
        tokio::time::sleep(WAIT_POLL).await;
        last = api.get(&["v1", "workflow-runs", &id]).await?;
        run = api.parse(&last)?;
    }
    spinner.finish_and_clear();
    print_run(api, options, &last)?;
    Ok(exit_status(run.state))
}

/// `3/5 steps finished` for the spinner.
fn progress(run: &WorkflowRun) -> String {
    let finished = run.steps.iter().filter(|s| s.state.is_terminal()).count();
    format!("{finished}/{} steps finished", run.steps.len())
}

/// The exit status for a run that ended in `state`.
pub fn exit_status(state: RunState) -> i32 {
    if state == RunState::Completed {
        EXIT_OK
    } else {
        EXIT_JOB_FAILED
    }
}

fn print_workflow(workflow: &Workflow) {
    output::fields(&[
        ("name", workflow.name.clone()),
        ("version", workflow.version.to_string()),
        ("created", show(&workflow.created_at)),
    ]);
    let rows = workflow
        .steps
        .iter()
        .map(|s| {
            let plugin = match s.version {
                Some(v) => format!("{} v{v}", s.plugin),
                None => s.plugin.clone(),
            };
            let depends = s.depends_on.join(",");
            vec![
                s.name.clone(),
                plugin,
                if depends.is_empty() {
                    "-".into()
                } else {
                    depends
                },
                show(&s.on_failure),
                show(&s.when),
                show(&s.for_each),
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

fn print_run(api: &Api, options: &ClientOptions, answer: &Answer) -> Result<(), ClientError> {
    if options.json {
        output::line(&answer.text);
        return Ok(());
    }
    let run: WorkflowRun = api.parse(answer)?;
    let mut fields = vec![
        ("id", run.id.to_string()),
        (
            "workflow",
            format!("{} v{}", run.workflow, run.workflow_version),
        ),
        ("state", run.state.to_string()),
        ("created", show(&run.created_at)),
        ("finished", show(&run.finished_at)),
    ];
    if let Some(error) = &run.error {
        fields.push(("error", error.clone()));
    }
    if let Some(schedule) = &run.schedule {
        fields.push(("schedule", schedule.clone()));
    }
    output::fields(&fields);
    let rows = run
        .steps
        .iter()
        .map(|s| {
            let items = match s.items {
                Some(n) => format!("{}/{n}", s.items_done),
                None => "-".into(),
            };
            vec![
                s.name.clone(),
                s.state.to_string(),
                format!("{} v{}", s.plugin, s.version),
                show(&s.job_id),
                items,
                show(&s.error),
            ]
        })
        .collect();
    output::line("");
    output::table(&["step", "state", "plugin", "job", "items", "error"], rows);
    Ok(())
}
