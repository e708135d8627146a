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
    /// Run the host: applies migrations, then runs the worker until SIGINT or
    /// SIGTERM (then stops claiming, lets running attempts finish within the
    /// grace period and hands the rest back).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document of the HTTP API (JSON), as `GET /openapi.json` serves it.
    Openapi,
    /// The key that seals tenant secrets: `generate` a new one, `rotate` to it.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Write a plugin project (Rust, Python or JavaScript) that builds with
    /// one command and runs with `corral run`.
    New(crate::cli::new::NewArgs),
    /// Print a shell completion script: `corral completions bash >
    /// ~/.local/share/bash-completion/completions/corral` (zsh: a `_corral`
    /// file on `$fpath`; fish: `~/.config/fish/completions/corral.fish`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The client verbs (`tenant`, `key`, `plugin`, `job`), which call a
    /// running server's API.
    #[command(flatten)]
    Client(crate::cli::client::ClientCommand),
}

impl Command {
    /// What the tracing output shows unless `RUST_LOG` says otherwise: a
    /// client command's stderr is for its own messages, so only warnings.
    pub fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Client(_) => "warn",
            _ => "info",
        }
    }
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// `postgres://…` (any number of hosts) or `sqlite://FILE` (one host).
    #[arg(long, env = "DATABASE_URL", default_value = crate::store::DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// What `corral serve` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeMode {
    /// The HTTP API and the worker.
    All,
    /// Only the HTTP API.
    Api,
    /// Only the worker.
    Worker,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// What to run.
    #[arg(long, env = "CORRAL_MODE", value_enum, default_value = "all")]
    pub mode: ServeMode,
    /// Address the API listens on (in worker mode: /health, /ready and /metrics).
    #[arg(long, env = "CORRAL_HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port the API listens on (in worker mode: /health, /ready and /metrics).
    #[arg(long, env = "CORRAL_PORT", default_value_t = 8080)]
    pub port: u16,
    /// The admin key. When unset and the database has no admin key yet, one
    /// is generated and printed once.
    #[arg(long, env = "CORRAL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Open the dashboard in a browser (`$BROWSER`, else the system's) once
    /// listening, signed in as the admin when this process knows the admin
    /// key (generated now, or `CORRAL_ADMIN_TOKEN`), through a code that
    /// works once, for ten minutes.
    #[arg(long)]
    pub open: bool,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Names this host in leases and attempt records (default: hostname-pid).
    #[arg(long, env = "CORRAL_HOST_ID")]
    pub host_id: Option<String>,
    /// Attempts this host runs at once (plus up to 8 jobs announced while
    /// every slot is busy: the fresh lane, docs/queue.md).
    #[arg(long, env = "CORRAL_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
    /// Jobs one claim takes at most (one transaction whatever its size:
    /// larger batches cost fewer round trips per job).
    #[arg(long, env = "CORRAL_CLAIM_BATCH", default_value_t = crate::worker::DEFAULT_CLAIM_BATCH)]
    pub claim_batch: u32,
    /// Threads that run attempts, apart from the API's, claims' and
    /// heartbeats' (default: one per core); 0 runs attempts on those.
    #[arg(long, env = "CORRAL_SANDBOX_THREADS")]
    pub sandbox_threads: Option<usize>,
    /// Seconds a lease lasts without a heartbeat; a dead host's jobs move on after this.
    #[arg(long, env = "CORRAL_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Milliseconds between heartbeats (lease renewal and cancel polling).
    #[arg(long, env = "CORRAL_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// Milliseconds between polls when no notification arrives.
    #[arg(long, env = "CORRAL_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Milliseconds between the janitor's looks for expired leases.
    #[arg(long, env = "CORRAL_JANITOR_MS", default_value_t = 2000)]
    pub janitor_ms: u64,
    /// Seconds running attempts may take to finish on shutdown.
    #[arg(long, env = "CORRAL_GRACE_SECS", default_value_t = 10)]
    pub grace_secs: u64,
    /// Days finished jobs are kept.
    #[arg(long, env = "CORRAL_RETENTION_DAYS", default_value_t = 7)]
    pub retention_days: u64,
    /// First retry delay in milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "CORRAL_BACKOFF_BASE_MS", default_value_t = 1000)]
    pub backoff_base_ms: u64,
    /// Longest retry delay in seconds.
    #[arg(long, env = "CORRAL_BACKOFF_CAP_SECS", default_value_t = 3600)]
    pub backoff_cap_secs: u64,
    /// Only run jobs of these queues (comma-separated); all when unset.
    #[arg(long, env = "CORRAL_QUEUES", value_delimiter = ',')]
    pub queues: Option<Vec<String>>,
    /// Milliseconds a client may take to send a request's headers; a slower
    /// connection is closed (slowloris).
    #[arg(long, env = "CORRAL_HEADER_TIMEOUT_MS", default_value_t = crate::http::server::HEADER_READ_TIMEOUT.as_millis() as u64)]
    pub header_timeout_ms: u64,
    /// Milliseconds from a request's headers to its response's headers
    /// (reading the body included); then 408. Event streams run on once
    /// their headers are sent.
    #[arg(long, env = "CORRAL_REQUEST_TIMEOUT_MS", default_value_t = crate::http::server::REQUEST_TIMEOUT.as_millis() as u64)]
    pub request_timeout_ms: u64,
    /// Open connections at most; more are closed at once.
    #[arg(long, env = "CORRAL_MAX_CONNECTIONS", default_value_t = crate::http::server::MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open connections from one client address at most; more are closed at once.
    #[arg(long, env = "CORRAL_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = crate::http::server::MAX_CONNECTIONS_PER_ADDRESS)]
    pub max_connections_per_address: usize,
    /// Failed authentications one client address may have in a minute
    /// before its requests are refused (429) for the rest of that minute.
    #[arg(long, env = "CORRAL_MAX_AUTH_FAILURES", default_value_t = crate::http::auth_failures::MAX_AUTH_FAILURES)]
    pub max_auth_failures: u32,
    /// Log lines on stderr as `json` (one object per line) or `text`
    /// (default: text when stderr is a terminal, json otherwise).
    #[arg(long, env = "CORRAL_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::logging::LogFormat>,
    #[command(flatten)]
    pub outbound: OutboundArgs,
    #[command(flatten)]
    pub secret_keys: SecretKeyArgs,
}

/// The keys that seal tenant secrets (docs/http.md, "Secrets").
#[derive(Debug, Clone, Default, Args)]
pub struct SecretKeyArgs {
    /// The key that seals tenant secrets, as 64 hex digits. Without it (and
    /// without --secret-key-file), a SQLite host keeps a generated key
    /// beside its database file, and a PostgreSQL host has no secrets.
    #[arg(long, env = "CORRAL_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// A file holding the secret key (64 hex digits); created with a new key
    /// when missing.
    #[arg(long, env = "CORRAL_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// During a rotation, the key being replaced (64 hex digits): it still
    /// opens the secrets it sealed, and seals nothing new.
    #[arg(long, env = "CORRAL_PREVIOUS_SECRET_KEY", hide_env_values = true)]
    pub previous_secret_key: Option<String>,
    /// A file holding the key being replaced.
    #[arg(long, env = "CORRAL_PREVIOUS_SECRET_KEY_FILE")]
    pub previous_secret_key_file: Option<PathBuf>,
}

impl SecretKeyArgs {
    /// The key that seals tenant secrets: the flag, the key file, or for
    /// SQLite `<database file>.secret-key` (generated when missing), with
    /// the previous key when one is given.
    pub fn key(&self, database_url: &str) -> Result<Option<crate::secrets::SecretKey>, String> {
        use crate::secrets::SecretKey;
        let current = if let Some(hex) = &self.secret_key {
            SecretKey::from_hex(hex).map_err(|e| format!("CORRAL_SECRET_KEY: {e}"))?
        } else {
            let file = match &self.secret_key_file {
                Some(file) => file.clone(),
                None => match crate::store::sqlite_file(database_url) {
                    Some(db) => PathBuf::from(format!("{}.secret-key", db.display())),
                    None => return Ok(None),
                },
            };
            SecretKey::from_file_or_generate(&file).map_err(|e| e.to_string())?
        };
        Ok(Some(match self.previous()? {
            Some(previous) => current.with_previous(previous),
            None => current,
        }))
    }

    /// The key being replaced, when one is given.
    fn previous(&self) -> Result<Option<crate::secrets::SecretKey>, String> {
        use crate::secrets::SecretKey;
        if let Some(hex) = &self.previous_secret_key {
            return SecretKey::from_hex(hex)
                .map(Some)
                .map_err(|e| format!("CORRAL_PREVIOUS_SECRET_KEY: {e}"));
        }
        match &self.previous_secret_key_file {
            Some(file) => SecretKey::from_file(file)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

impl ServeArgs {
    /// The key that seals tenant secrets (docs/http.md, "Secrets").
    pub fn secret_key(&self) -> Result<Option<crate::secrets::SecretKey>, String> {
        self.secret_keys.key(&self.database.database_url)
    }
}

/// `corral secret-key …`: the key that seals tenant secrets.
#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Print a new random key (64 hex digits) on stdout.
    Generate,
    /// Re-seal every stored secret under the current key (--secret-key or
    /// --secret-key-file) that the previous key (--previous-secret-key or
    /// --previous-secret-key-file) sealed, and print what it did as JSON.
    /// Hosts running with both keys keep working throughout. Exits 1 when
    /// some secret opens with neither key.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub secret_keys: SecretKeyArgs,
}

/// The operator's policy for plugins' outbound HTTP (docs/http.md).
#[derive(Debug, Clone, Default, Args)]
pub struct OutboundArgs {
    /// A private or loopback range (CIDR) plugins' requests may reach after
    /// all, like 10.1.2.0/24; every such range is refused by default.
    /// Repeatable, or comma-separated.
    #[arg(
        long = "allow-private-network",
        value_name = "CIDR",
        env = "CORRAL_ALLOW_PRIVATE_NETWORK",
        value_delimiter = ','
    )]
    pub allow_private_network: Vec<ipnet::IpNet>,
    /// A PEM file of CA certificates plugins' HTTPS requests trust besides
    /// the Mozilla roots (an internal CA).
    #[arg(long, value_name = "PEM", env = "CORRAL_OUTBOUND_CA_FILE")]
    pub outbound_ca_file: Option<PathBuf>,
    /// The only hosts tenants' allow-lists may name (`api.example.com`,
    /// `*.example.com`, an IP literal); any host when unset. An upload or
    /// PATCH naming another is refused (422), and entries stored before the
    /// flag narrowed are not applied. Repeatable, or comma-separated.
    #[arg(
        long = "outbound-hosts",
        value_name = "HOST",
        env = "CORRAL_OUTBOUND_HOSTS",
        value_delimiter = ','
    )]
    pub outbound_hosts: Vec<String>,
}

impl OutboundArgs {
    /// The outbound context these flags describe.
    pub fn context(&self) -> Result<crate::runtime::outbound::OutboundContext, String> {
        let pem = match &self.outbound_ca_file {
            Some(path) => std::fs::read(path)
                .map_err(|e| format!("--outbound-ca-file {}: {e}", path.display()))?,
            None => Vec::new(),
        };
        let mut context = crate::runtime::outbound::OutboundContext::new(
            crate::runtime::outbound::NetworkPolicy {
                allowed_private: self.allow_private_network.clone(),
            },
            &pem,
        )?;
        context.hosts = crate::runtime::outbound::HostLimit::parse(&self.outbound_hosts)?;
        Ok(context)
    }
}

impl ServeArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if !(1..=crate::worker::MAX_CLAIM_BATCH).contains(&self.claim_batch) {
            return Err(format!(
                "--claim-batch must be between 1 and {}",
                crate::worker::MAX_CLAIM_BATCH
            ));
        }
        if self
            .sandbox_threads
            .is_some_and(|n| n > crate::worker::sandbox_threads::MAX_SANDBOX_THREADS)
        {
            return Err(format!(
                "--sandbox-threads must be at most {}",
                crate::worker::sandbox_threads::MAX_SANDBOX_THREADS
            ));
        }
        if self.lease_secs == 0
            || self.heartbeat_ms == 0
            || self.poll_ms == 0
            || self.janitor_ms == 0
        {
            return Err(
                "--lease-secs, --heartbeat-ms, --poll-ms and --janitor-ms must be positive".into(),
            );
        }
        if self.heartbeat_ms >= self.lease_secs * 1000 {
            return Err(format!(
                "--heartbeat-ms ({}) must be shorter than the lease ({} s), or leases expire between heartbeats",
                self.heartbeat_ms, self.lease_secs
            ));
        }
        if self.header_timeout_ms == 0
            || self.request_timeout_ms == 0
            || self.max_connections == 0
            || self.max_connections_per_address == 0
        {
            return Err("--header-timeout-ms, --request-timeout-ms, --max-connections and --max-connections-per-address must be positive".into());
        }
        self.outbound.context()?;
        Ok(())
    }

    /// The HTTP server's bounds.
    pub fn server_limits(&self) -> crate::http::server::ServerLimits {
        use std::time::Duration;
        crate::http::server::ServerLimits {
            header_read_timeout: Duration::from_millis(self.header_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
        }
    }

    pub fn worker_config(&self) -> crate::worker::WorkerConfig {
        use std::time::Duration;
        crate::worker::WorkerConfig {
            host_id: self
                .host_id
                .clone()
                .unwrap_or_else(crate::worker::default_host_id),
            concurrency: self.concurrency,
            claim_batch: self.claim_batch,
            sandbox_threads: self
                .sandbox_threads
                .unwrap_or_else(crate::worker::sandbox_threads::default_count),
            lease: Duration::from_secs(self.lease_secs),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            poll_interval: Duration::from_millis(self.poll_ms),
            janitor_interval: Duration::from_millis(self.janitor_ms),
            grace: Duration::from_secs(self.grace_secs),
            retention: Duration::from_secs(self.retention_days * 24 * 3600),
            backoff: crate::worker::Backoff {
                base: Duration::from_millis(self.backoff_base_ms),
                cap: Duration::from_secs(self.backoff_cap_secs),
            },
            queues: self.queues.clone(),
            outbound: std::sync::Arc::new(
                self.outbound
                    .context()
                    .unwrap_or_else(|_| crate::runtime::outbound::OutboundContext::default()),
            ),
            ..crate::worker::WorkerConfig::default()
        }
    }
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
    /// An allow-list entry for the plugin's outbound HTTP: a URL such as
    /// `https://api.example.com`, or the JSON of an entry with methods and
    /// secrets. Repeatable; none denies every request.
    #[arg(long = "allow-host", value_name = "URL|JSON")]
    pub allow_host: Vec<String>,
    /// A secret the plugin's requests may carry where an allow-list entry
    /// names it, as NAME=VALUE. Repeatable.
    #[arg(long = "secret", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub secret: Vec<(String, String)>,
    #[command(flatten)]
    pub outbound: OutboundArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}
