//! The client verbs of `corral` (`tenant`, `key`, `plugin`, `job`,
//! `workflow`, `schedule`): each
//! calls a running server's HTTP API (docs/api.md) and prints tables and
//! `key: value` lines, or the API's JSON with `--json`. docs/cli.md shows
//! every command.
//!
//! - this file: the arguments, and dispatch;
//! - [`http`]: the API client over reqwest, with its one error enum;
//! - [`sse`]: the Server-Sent Events parser;
//! - [`output`]: tables, `key: value` lines, cells;
//! - [`tenants`], [`plugins`], [`jobs`], [`workflows`], [`schedules`]: one
//!   file per resource;
//! - [`files`]: definition files (JSON or YAML) for `apply`;
//! - [`watch`]: following a job's events (`job watch`, `job create --wait`).

pub mod files;
pub mod http;
pub mod jobs;
pub mod output;
pub mod plugins;
pub mod schedules;
pub mod tenants;
pub mod watch;
pub mod workflows;

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub use http::ClientError;

/// Where the client looks for a server unless told otherwise: `corral
/// serve`'s own default address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Exit status: the command did what it was asked (with `--wait` and for
/// `job watch`: the job completed).
pub const EXIT_OK: i32 = 0;
/// Exit status: the job that was waited for ended `dead` or `cancelled`.
pub const EXIT_JOB_FAILED: i32 = 1;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (with --wait, and for `job watch`: the job or run completed)
  1  the job ended `dead` or `cancelled`, or the run `failed`,
     `partially_failed` or `cancelled` (with --wait, and for `job watch`)
  2  a usage, connection or API error (printed on stderr as
     `error: <message> (<code>, HTTP <status>)` for API errors)";

/// How to reach the server; every client command takes these, before or
/// after its subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientOptions {
    /// The Corral server's URL.
    #[arg(long, env = "CORRAL_SERVER", default_value = DEFAULT_SERVER, global = true)]
    pub server: String,
    /// The API key: the admin key for `tenant` and `key`, a tenant's key for
    /// `plugin` and `job`.
    #[arg(long, env = "CORRAL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file holding the API key (surrounding whitespace ignored), so the
    /// key stays out of the shell's history and the process list.
    #[arg(long, env = "CORRAL_TOKEN_FILE", global = true, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON as is (for scripts) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client verbs, flattened into the `corral` command beside `serve`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create and inspect tenants (with the admin key).
    #[command(after_help = EXIT_CODES)]
    Tenant(TenantArgs),
    /// Create and revoke tenants' API keys (with the admin key).
    #[command(after_help = EXIT_CODES)]
    Key(KeyArgs),
    /// Upload plugins and list their versions (with a tenant's key).
    #[command(after_help = EXIT_CODES)]
    Plugin(PluginArgs),
    /// Create, follow, inspect, cancel and replay jobs (with a tenant's key).
    #[command(after_help = EXIT_CODES)]
    Job(JobArgs),
    /// Define workflows (DAGs of plugin steps), run them, follow and cancel
    /// runs (with a tenant's key).
    #[command(after_help = EXIT_CODES)]
    Workflow(WorkflowArgs),
    /// Fire jobs or workflow runs on a cron schedule (with a tenant's key).
    #[command(after_help = EXIT_CODES)]
    Schedule(ScheduleArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create or replace a schedule from a JSON or YAML file holding `name`,
    /// `cron`, `timezone`, `target` ({plugin|workflow, version, input}),
    /// `paused` and `catch_up` (docs/schedules.md).
    Apply {
        /// The file; `-` reads stdin.
        file: PathBuf,
        /// The schedule's name (default: `name` in the file, else the file's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// Every schedule: cron, time zone, target, state, next tick.
    List,
    /// A schedule and its latest fired ticks.
    Show { name: String },
    /// Stop firing until resumed.
    Pause { name: String },
    /// Fire again from the next tick after now (missed ticks do not fire).
    Resume { name: String },
    /// Delete a schedule (the jobs and runs it started stay).
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct WorkflowArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: WorkflowCommand,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Define (a new version of) a workflow from a JSON or YAML file holding
    /// `name` and `steps` (docs/workflows.md). The same definition as the
    /// latest version answers that version.
    Apply {
        /// The file; `-` reads stdin.
        file: PathBuf,
        /// The workflow's name (default: `name` in the file, else the file's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// The latest version of each workflow.
    List,
    /// A workflow's definition (the latest version, or --version).
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Start a run; with --wait, follow it to its end and print its steps.
    #[command(after_help = EXIT_CODES)]
    Run(RunWorkflowArgs),
    /// A run's state and each step's state, job, elements and error.
    Status { run: String },
    /// A run as a Mermaid `graph TD` (paste it into any Mermaid viewer).
    Diagram { run: String },
    /// Cancel a run and every unfinished step (running ones are stopped).
    Cancel { run: String },
    /// Runs, newest first.
    Runs {
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs in this state (running, completed, failed,
        /// partially_failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Runs per page (the server's default is 50, its most 500).
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// The input of a job or a run: JSON from the command line, a file or stdin.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The input, as JSON; `-` reads it from stdin (default: `{}`).
    #[arg(long, conflicts_with = "input_file")]
    pub input: Option<String>,
    /// A file holding the input as JSON; `-` is stdin.
    #[arg(long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunWorkflowArgs {
    /// The workflow to run.
    pub name: String,
    /// The workflow version (default: the latest).
    #[arg(long)]
    pub version: Option<u32>,
    #[command(flatten)]
    pub input: InputArgs,
    /// Makes a retried start answer the first run instead of a new one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Follow the run until it ends, then print it; exit 1 unless it completed.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: TenantCommand,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; quotas not given take the server's defaults.
    Create {
        /// 1-63 characters of a-z, 0-9, _ and -.
        id: String,
        /// A display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        quotas: QuotaFlags,
    },
    /// List every tenant.
    List,
    /// Show one tenant and its quotas.
    Show { id: String },
    /// Change some of a tenant's quotas; the others keep their value.
    Update {
        id: String,
        #[command(flatten)]
        quotas: QuotaFlags,
    },
    /// Delete a tenant and everything it owns (keys, plugins, jobs,
    /// workflows and runs, schedules, secrets). Not undone: asks for `--yes`.
    Delete {
        id: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// A tenant's quotas; each one not given is left out of the request.
#[derive(Debug, Clone, Default, Args, serde::Serialize)]
pub struct QuotaFlags {
    /// Attempts of the tenant running at once, across all hosts.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Most fuel a plugin of the tenant may give one attempt.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_fuel_per_attempt: Option<u64>,
    /// Most memory, in MiB, a plugin of the tenant may give one attempt.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u32>,
    /// Longest wall-clock limit, in milliseconds, of one attempt.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_timeout_ms: Option<u64>,
    /// Largest plugin upload, in bytes.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_plugin_bytes: Option<u64>,
    /// Most jobs waiting at once.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_jobs: Option<u64>,
    /// Most jobs created per minute.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueue_per_minute: Option<u32>,
    /// Bytes of components the tenant's live plugin versions may keep stored.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stored_plugin_bytes: Option<u64>,
    /// Schedules the tenant may define.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_schedules: Option<u32>,
    /// Workflows the tenant may define.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_workflows: Option<u32>,
    /// Versions one workflow may have.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_workflow_versions: Option<u32>,
    /// Outbound HTTP requests one attempt may make.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_http_requests_per_attempt: Option<u32>,
    /// Bytes of one outbound HTTP response body.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_http_response_bytes: Option<u64>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a tenant. The key is printed once and cannot be
    /// shown again.
    Create { tenant: String },
    /// Revoke a tenant's key; it stops working at once.
    Revoke { tenant: String, key_id: String },
}

#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload a component as a new version of a plugin (the same bytes as
    /// the latest version answer that version). Shows a progress bar on a
    /// terminal.
    Push(PushArgs),
    /// The latest version of each plugin.
    List,
    /// Every version of a plugin, newest first, or one version.
    Show { name: String, version: Option<u32> },
    /// Replace the config of every version of a plugin with these
    /// `KEY=VALUE` pairs (none clears it). Values are write-only: name every
    /// key the plugin needs, not only the one that changes.
    Config {
        name: String,
        /// `KEY=VALUE`, any number.
        #[arg(value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
    },
    /// Replace a plugin's outbound HTTP settings (allow-list and limits)
    /// with a JSON or YAML file such as `{"allow": ["https://api.example.com"]}`
    /// (docs/http.md).
    Http {
        name: String,
        /// The file; `-` reads stdin.
        file: PathBuf,
    },
    /// Delete one version of a plugin (refused while unfinished jobs or
    /// workflow steps pin it).
    Delete { name: String, version: u32 },
}

/// `KEY=VALUE` into its two parts (the value may hold `=`).
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The plugin's name: 1-63 characters of a-z, 0-9, _ and -.
    pub name: String,
    /// The component: a `.wasm` file built for the world corral:plugin/job-handler.
    pub file: PathBuf,
    /// Fuel for each attempt (default: the server's, lowered to the tenant's quota).
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Linear memory for each attempt, in MiB.
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Wall-clock limit for each attempt, in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Attempts a job of this plugin may use in all.
    #[arg(long)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Enqueue a job; with --wait, follow it to its end and print the result.
    #[command(after_help = EXIT_CODES)]
    Create(CreateJobArgs),
    /// Show a job: state, input, result, error.
    Get { id: String },
    /// List jobs, newest first, one page at a time (or every page with --all).
    List(ListJobsArgs),
    /// Print each change of a job's state and progress until it ends.
    #[command(after_help = EXIT_CODES)]
    Watch { id: String },
    /// Enqueue up to 1000 jobs at once, all or nothing, from a JSON or YAML
    /// file holding a list of jobs (each as `POST /v1/jobs` takes it:
    /// `plugin`, `input`, optional `version`, `queue`, `priority`, `run_at`,
    /// `max_attempts`, `timeout_ms`) or `{"jobs": [...]}`; prints their ids.
    Batch {
        /// The file; `-` reads stdin.
        file: PathBuf,
        /// Makes a retried batch answer the first batch's ids instead of new jobs.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Cancel a job: a waiting job at once, a running one within a heartbeat.
    /// Without an id, every unfinished job the filter matches (`--dry-run`
    /// counts them first).
    Cancel {
        /// The job; leave out to cancel by filter.
        #[arg(required_unless_present_any = ["state", "queue", "plugin", "error", "created_after", "created_before"])]
        id: Option<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Each attempt's captured log.
    Logs { id: String },
    /// Each attempt: outcome, duration, fuel, memory, host.
    Attempts { id: String },
    /// Enqueue a new job with the same plugin version, input, queue, priority and limits.
    #[command(after_help = EXIT_CODES)]
    Replay {
        /// The job; leave out to replay by filter (dead jobs unless
        /// `--state` names another finished state), each job once.
        id: Option<String>,
        /// Follow the new job to its end and print it (one job only).
        #[arg(long, requires = "id")]
        wait: bool,
        #[command(flatten)]
        bulk: BulkArgs,
    },
}

#[derive(Debug, Args)]
pub struct CreateJobArgs {
    /// The plugin to run.
    pub plugin: String,
    /// The plugin version to pin (default: the latest).
    #[arg(long)]
    pub version: Option<u32>,
    #[command(flatten)]
    pub input: InputArgs,
    /// The queue (default: the server's `default`).
    #[arg(long)]
    pub queue: Option<String>,
    /// Higher runs first within the tenant.
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<i32>,
    /// Run no earlier than this: RFC 3339 (`2026-01-01T09:00:00Z`) or from
    /// now (`+30s`, `+10m`, `+2h`, `+1d`).
    #[arg(long, value_parser = jobs::parse_run_at)]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attempts this job may use (default: the plugin's).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Wall-clock limit of each attempt, in milliseconds (default: the plugin's).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Makes a retried create answer the first job instead of a new one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Follow the job until it ends (a progress bar on a terminal), then
    /// print it; exit 1 if it ended `dead` or `cancelled`.
    #[arg(long)]
    pub wait: bool,
}

/// Which jobs a listing or a bulk replay or cancel selects.
#[derive(Debug, Args, Default)]
pub struct JobFilterArgs {
    /// Only jobs in this state (scheduled, available, running, retrying,
    /// completed, dead, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    /// Only jobs of this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs of this plugin.
    #[arg(long)]
    pub plugin: Option<String>,
    /// Only jobs whose error contains this text (case-sensitive).
    #[arg(long)]
    pub error: Option<String>,
    /// Only jobs created at or after this time (RFC 3339, or a duration
    /// ago such as `1h`).
    #[arg(long, value_parser = jobs::parse_since, allow_hyphen_values = true)]
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only jobs created before this time (idem).
    #[arg(long, value_parser = jobs::parse_since, allow_hyphen_values = true)]
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// A bulk replay or cancel: its filter, and whether only to count.
#[derive(Debug, Args, Default)]
pub struct BulkArgs {
    #[command(flatten)]
    pub filter: JobFilterArgs,
    /// Count the jobs the filter matches; change nothing.
    #[arg(long, conflicts_with = "id")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ListJobsArgs {
    #[command(flatten)]
    pub filter: JobFilterArgs,
    /// Jobs per page (the server's default is 50, its most 500).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Start after this cursor (the `next_cursor` of the page before).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow the cursors and list every matching job.
    #[arg(long)]
    pub all: bool,
}

/// Run a client command; the exit status on success, or the error that
/// `main` prints (exit 2).
pub async fn run(command: ClientCommand) -> anyhow::Result<i32> {
    let result = match command {
        ClientCommand::Tenant(args) => tenants::tenant(&args.client, args.command).await,
        ClientCommand::Key(args) => tenants::key(&args.client, args.command).await,
        ClientCommand::Plugin(args) => plugins::run(&args.client, args.command).await,
        ClientCommand::Job(args) => jobs::run(&args.client, args.command).await,
        ClientCommand::Workflow(args) => workflows::run(&args.client, args.command).await,
        ClientCommand::Schedule(args) => schedules::run(&args.client, args.command).await,
    };
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::{Cli, Command};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_options_go_before_or_after_the_subcommand() {
        for args in [
            &[
                "corral",
                "job",
                "--json",
                "--server",
                "http://h:1",
                "get",
                "x",
            ][..],
            &[
                "corral",
                "job",
                "get",
                "x",
                "--json",
                "--server",
                "http://h:1",
            ][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Command::Client(ClientCommand::Job(job)) = cli.command else {
                panic!("{args:?}")
            };
            assert!(job.client.json);
            assert_eq!(job.client.server, "http://h:1");
        }
    }

    #[test]
    fn input_and_input_file_exclude_each_other() {
        let e = Cli::try_parse_from([
            "corral",
            "job",
            "create",
            "echo",
            "--input",
            "{}",
            "--input-file",
            "f.json",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_negative_priority_is_a_value() {
        let cli =
            Cli::try_parse_from(["corral", "job", "create", "echo", "--priority", "-5"]).unwrap();
        let Command::Client(ClientCommand::Job(JobArgs {
            command: JobCommand::Create(create),
            ..
        })) = cli.command
        else {
            panic!("not a job create")
        };
        assert_eq!(create.priority, Some(-5));
    }
}
