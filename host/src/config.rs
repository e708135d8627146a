//! Command-line and environment configuration. Every default is documented
//! in the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::{
    DEFAULT_FUEL, DEFAULT_LOG_BYTES, DEFAULT_MEMORY_BYTES, DEFAULT_RESULT_BYTES, DEFAULT_TIMEOUT,
};

#[derive(Debug, Parser)]
#[command(name = "corral", version, about = "A WebAssembly-plugin job host")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one attempt of a plugin locally, without a database, and print the
    /// outcome as JSON. Exits 0 when the attempt completed, 1 for any other
    /// outcome, 2 when the plugin cannot be loaded.
    Run(RunArgs),
}

/// Where the host keeps files of its own.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory of compiled plugins, kept across restarts so nothing is compiled twice.
    #[arg(long, env = "CORRAL_CACHE_DIR", default_value = ".corral/cache")]
    pub cache_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plugin: a WebAssembly component built for the world corral:plugin/job-handler.
    pub plugin: PathBuf,
    /// The job's input, as JSON.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// The workflow context handed to the guest, as JSON (none by default).
    #[arg(long)]
    pub context: Option<String>,
    /// Fuel for the attempt (roughly one unit per wasm instruction).
    #[arg(long, default_value_t = DEFAULT_FUEL)]
    pub fuel: u64,
    /// Linear memory for the attempt, in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_BYTES >> 20)]
    pub memory_mb: u64,
    /// Wall-clock limit for the attempt, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_millis() as u64)]
    pub timeout_ms: u64,
    /// Largest JSON result, in bytes.
    #[arg(long, default_value_t = DEFAULT_RESULT_BYTES)]
    pub result_bytes: u64,
    /// Largest captured log, in bytes.
    #[arg(long, default_value_t = DEFAULT_LOG_BYTES)]
    pub log_bytes: u64,
    /// A plugin setting the guest reads with `host.config`, as KEY=VALUE. Repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Which attempt to present to the guest (1-based).
    #[arg(long, default_value_t = 1)]
    pub attempt: u32,
    /// How many attempts to present to the guest as the maximum.
    #[arg(long, default_value_t = crate::model::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    #[command(flatten)]
    pub storage: StorageArgs,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}
