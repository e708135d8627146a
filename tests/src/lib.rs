//! Test support: builds the real plugins and the real `corral` binary (never
//! committed, always built from source), and hands out runtimes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corral::runtime::{Compiler, Plugin, Runtime, RuntimeConfig};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Build every plugin under `plugins/` once per test process (cargo's own
/// lock makes concurrent processes safe) and return the output folder.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let plugins = root().join("plugins");
        // Same folder as `just plugins`; the host's CARGO_TARGET_DIR must not
        // leak into the plugin workspace's build.
        let target = std::env::var_os("CORRAL_PLUGINS_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| plugins.join("target"));
        let status = Command::new(cargo())
            .current_dir(&plugins)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--quiet",
                "--target-dir",
            ])
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the plugins failed");
        target.join("wasm32-wasip2/release")
    })
}

/// The path of a built plugin, by crate name (`alloc-bomb` or `alloc_bomb`).
pub fn plugin_path(name: &str) -> PathBuf {
    plugins_dir().join(format!("{}.wasm", name.replace('-', "_")))
}

pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let path = plugin_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A guest language built by `scripts/plugins` (componentize-py,
/// componentize-js) rather than by cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    Python,
    JavaScript,
}

impl Guest {
    /// Its folder under `plugins/` and under the plugins' target folder, and
    /// its argument to `scripts/plugins`.
    pub fn folder(self) -> &'static str {
        match self {
            Guest::Python => "python",
            Guest::JavaScript => "js",
        }
    }
}

/// Build the plugins of `guest` once per test process (installing the
/// toolchain into the project's ignored folders when missing; the script's
/// own lock makes concurrent processes safe) and return the output folder.
pub fn guest_plugins_dir(guest: Guest) -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    static JAVASCRIPT: OnceLock<PathBuf> = OnceLock::new();
    let cell = match guest {
        Guest::Python => &PYTHON,
        Guest::JavaScript => &JAVASCRIPT,
    };
    cell.get_or_init(|| {
        let plugins = root().join("plugins");
        let target = std::env::var_os("CORRAL_PLUGINS_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| plugins.join("target"));
        let status = Command::new(root().join("scripts/plugins"))
            .arg(guest.folder())
            .env("CORRAL_PLUGINS_TARGET_DIR", &target)
            .status()
            .expect("scripts/plugins runs");
        assert!(status.success(), "building the {guest:?} plugins failed");
        target.join(guest.folder())
    })
}

/// The bytes of a built Python or JavaScript plugin, by folder name.
pub fn guest_plugin_bytes(guest: Guest, name: &str) -> Vec<u8> {
    let path = guest_plugins_dir(guest).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Build the `corral` binary once per test process and return its path
/// (`just test` builds it before the tests, so this finds it fresh).
/// `CORRAL_BENCH_BIN` names a binary to use instead (a benchmark comparing
/// two builds of the code in turn).
pub fn corral_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CORRAL_BENCH_BIN") {
            return PathBuf::from(bin);
        }
        let mut command = Command::new(cargo());
        command.current_dir(root()).args([
            "build",
            "-p",
            "corral",
            "--bin",
            "corral",
            "--message-format=json",
        ]);
        // Optimized under `cargo bench`, in the bench profile it built.
        if !cfg!(debug_assertions) {
            command.args(["--profile", "bench"]);
        }
        // Not the variables cargo set for this test or bench: build scripts
        // watch some (ring's reruns when `CARGO_MANIFEST_DIR` changes), so
        // this build and the next `cargo bench` rebuilt most of the graph
        // for each other.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || matches!(
                    &*name,
                    "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
                )
            {
                command.env_remove(&*name);
            }
        }
        let output = command.output().expect("cargo runs");
        assert!(
            output.status.success(),
            "building corral failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "corral")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the corral executable")
    })
}

/// How long a `corral serve` may take to start listening, and to print
/// its admin key: generous, for a loaded machine.
pub const SERVE_PATIENCE: Duration = Duration::from_secs(300);

/// Start `corral serve` (API and worker) and wait, by reading its log, until
/// it listens. Returns the process and the first line it printed on stdout
/// (the admin key, when one was generated).
pub fn serve_api(
    database_url: &str,
    port: u16,
    cache: &Path,
    admin_token: Option<&str>,
) -> (Child, String) {
    serve_api_with(database_url, port, cache, admin_token, &[])
}

/// [`serve_api`] with more `corral serve` flags.
pub fn serve_api_with(
    database_url: &str,
    port: u16,
    cache: &Path,
    admin_token: Option<&str>,
    flags: &[&str],
) -> (Child, String) {
    serve_api_env(database_url, port, cache, admin_token, flags, &[])
}

/// [`serve_api_with`] with more environment variables.
pub fn serve_api_env(
    database_url: &str,
    port: u16,
    cache: &Path,
    admin_token: Option<&str>,
    flags: &[&str],
    envs: &[(&str, &str)],
) -> (Child, String) {
    serve_api_logged(
        database_url,
        port,
        cache,
        admin_token,
        flags,
        envs,
        None,
        None,
    )
}

/// [`serve_api_with`], and each line of its log (stderr, `RUST_LOG=info`)
/// as it comes: a test can wait on what the host says it did.
pub fn serve_api_with_log_lines(
    database_url: &str,
    port: u16,
    cache: &Path,
    admin_token: Option<&str>,
    flags: &[&str],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let (lines, received) = std::sync::mpsc::channel();
    let (child, printed) = serve_api_logged(
        database_url,
        port,
        cache,
        admin_token,
        flags,
        &[],
        None,
        Some(lines),
    );
    (child, printed, received)
}

/// [`serve_api_env`], its log (stderr; `RUST_LOG=info` unless `envs` set
/// it) also written to `log` and sent line by line to `lines`, when given.
#[allow(clippy::too_many_arguments)]
pub fn serve_api_logged(
    database_url: &str,
    port: u16,
    cache: &Path,
    admin_token: Option<&str>,
    flags: &[&str],
    envs: &[(&str, &str)],
    log: Option<&Path>,
    lines: Option<std::sync::mpsc::Sender<String>>,
) -> (Child, String) {
    use std::io::{BufRead, BufReader, Write};
    let mut log = log.map(|path| std::fs::File::create(path).expect("the host's log file"));
    let mut command = Command::new(corral_bin());
    command
        .args(["serve", "--port", &port.to_string()])
        .args(flags)
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied())
        .env("DATABASE_URL", database_url)
        .env("CORRAL_CACHE_DIR", cache.join("artifacts"))
        .env_remove("CORRAL_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = admin_token {
        command.env("CORRAL_ADMIN_TOKEN", token);
    }
    let mut child = command.spawn().expect("corral serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (listening_tx, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(log) = log.as_mut() {
                let _ = writeln!(log, "{line}");
            }
            if line.contains("the API is listening") {
                let _ = listening_tx.send(());
            }
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    });
    listening
        .recv_timeout(SERVE_PATIENCE)
        .expect("the API starts listening");
    // `corral serve` prints the admin key (one line on stdout) before its
    // API listens, or nothing: what stdout holds now is all it will hold,
    // so it is read without waiting (a blocking read would wait for a line
    // that never comes, until the patience runs out).
    let printed = if admin_token.is_none() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let mut stdout = child.stdout.take().expect("stdout");
        let fd = stdout.as_raw_fd();
        // SAFETY: fcntl on a descriptor this process owns, changing only its flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let mut bytes = Vec::new();
        // Ends at WouldBlock, with what was there.
        let _ = stdout.read_to_end(&mut bytes);
        // Kept open: a later line must not meet a closed pipe.
        child.stdout = Some(stdout);
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        String::new()
    };
    (child, printed)
}

/// A TCP port nothing listens on now (the OS picks it; it may be taken
/// again later, which the tests accept).
/// An answer read off a plain socket.
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, lower-cased.
    pub headers: String,
    pub body: String,
}

/// One HTTP/1.1 exchange over a plain socket.
pub fn http_exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    RawResponse {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SIGTERM a `corral serve` and check that it exits cleanly.
pub fn stop(mut child: Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "serve exited with {status}");
}

/// A runtime whose compiled-artifact cache is `cache_dir`.
pub fn runtime_in(cache_dir: &Path) -> Runtime {
    runtime_with_pool(cache_dir, Default::default())
}

/// [`runtime_in`] with a pool of `pool`'s sizes: a small pool makes
/// attempts share slots, or run out of them.
pub fn runtime_with_pool(cache_dir: &Path, pool: corral::runtime::PoolSizes) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: cache_dir.to_path_buf(),
        compiler: Compiler::new(corral_bin()),
        pool,
        max_loaded_bytes: corral::runtime::loaded::MAX_LOADED_PLUGIN_BYTES,
    })
    .expect("runtime starts")
}

/// One runtime shared by the tests of a process, caching compiled plugins
/// in a folder shared across runs (artifacts are keyed by digest and engine).
pub fn shared_runtime() -> &'static Runtime {
    runtime_arc()
}

/// The shared runtime, for a worker.
pub fn runtime_arc() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Arc::new(runtime_in(
            &std::env::temp_dir().join("corral-test-artifacts"),
        ))
    })
}

/// The single text column of a query's rows, on the test's database: the
/// query for each backend (their casts differ).
pub async fn db_texts(db: &db::TestDb, postgres: &str, sqlite: &str) -> Vec<String> {
    let rows: Vec<Option<String>> = match db.url.strip_prefix("sqlite://") {
        Some(file) => {
            let mut conn =
                <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{file}"))
                    .await
                    .expect("sqlite");
            sqlx::query_scalar(sqlite)
                .fetch_all(&mut conn)
                .await
                .expect("query")
        }
        None => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .expect("postgres");
            sqlx::query_scalar(postgres)
                .fetch_all(&mut conn)
                .await
                .expect("query")
        }
    };
    rows.into_iter().flatten().collect()
}

/// The key the tests' API and workers seal and open tenant secrets with.
pub fn secret_key() -> Arc<corral::secrets::SecretKey> {
    static KEY: OnceLock<Arc<corral::secrets::SecretKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        Arc::new(corral::secrets::SecretKey::from_hex(&"5e".repeat(32)).expect("a valid test key"))
    })
    .clone()
}

/// Load a built plugin into the shared runtime.
pub async fn load(name: &str) -> Arc<Plugin> {
    shared_runtime()
        .load(&plugin_bytes(name))
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

pub mod api;
pub mod bench;
pub mod serve;
pub mod worker;

pub mod db {
    //! Real databases for tests: a fresh PostgreSQL database per test (on the
    //! server at `CORRAL_TEST_POSTGRES`, which `just test` sets through
    //! `scripts/with-postgres`; default the machine's local one), or
    //! a fresh SQLite file in a temporary folder. Migrations applied.

    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use corral::model::{JobId, JobState, Limits, Quotas, Tenant};
    use corral::store::{NewPlugin, Store};
    use sqlx::Connection;

    /// The server tests create their databases on.
    pub fn postgres_admin_url() -> String {
        std::env::var("CORRAL_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        Postgres,
        Sqlite,
    }

    pub struct TestDb {
        pub url: String,
        pub store: Arc<dyn Store>,
        postgres_name: Option<String>,
        admin: String,
        _dir: Option<tempfile::TempDir>,
    }

    /// A tenant with default quotas but `max_concurrency`, in any store
    /// (a spawned task holds the store, not the `TestDb`).
    pub async fn add_tenant(store: &dyn Store, id: &str, max_concurrency: u32) {
        store
            .tenant_insert(&Tenant {
                id: id.into(),
                name: id.into(),
                quotas: Quotas {
                    max_concurrency,
                    ..Quotas::default()
                },
                created_at: chrono::Utc::now(),
            })
            .await
            .expect("tenant");
    }

    /// Store `bytes` as plugin `name` of `tenant`; its version.
    pub async fn add_plugin(
        store: &dyn Store,
        tenant: &str,
        name: &str,
        bytes: &[u8],
        limits: Limits,
        max_attempts: u32,
    ) -> u32 {
        let (plugin, _) = store
            .plugin_insert(
                &NewPlugin {
                    tenant_id: tenant.into(),
                    name: name.into(),
                    digest: corral::model::Digest::of(bytes).to_string(),
                    limits,
                    max_attempts,
                    http: None,
                },
                bytes,
                chrono::Utc::now(),
            )
            .await
            .expect("plugin");
        plugin.version
    }

    impl TestDb {
        pub async fn new(kind: Kind) -> TestDb {
            match kind {
                Kind::Postgres => TestDb::on_postgres_server(&postgres_admin_url()).await,
                Kind::Sqlite => {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let url = format!("sqlite://{}", dir.path().join("corral.db").display());
                    let store = corral::store::connect(&url).await.expect("connect");
                    store.migrate().await.expect("migrate");
                    TestDb {
                        url,
                        store,
                        postgres_name: None,
                        admin: String::new(),
                        _dir: Some(dir),
                    }
                }
            }
        }

        /// A fresh database on the PostgreSQL server `admin` (a URL ending in
        /// an existing database to connect to while creating it): a copy of
        /// a migrated template, which is much cheaper than migrating.
        pub async fn on_postgres_server(admin: &str) -> TestDb {
            let template = postgres_template(admin).await;
            TestDb::created_on(admin, &format!("TEMPLATE {template}")).await
        }

        /// An empty PostgreSQL database, its store connected before any
        /// migration (as `corral serve` connects to a new database).
        pub async fn unmigrated_postgres() -> TestDb {
            TestDb::created_on(&postgres_admin_url(), "").await
        }

        async fn created_on(admin: &str, options: &str) -> TestDb {
            let name = format!("corral_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(admin)
                .await
                .expect("PostgreSQL is reachable");
            sqlx::query(&format!("CREATE DATABASE {name} {options}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let _ = conn.close().await;
            let url = database_url(admin, &name);
            let store = corral::store::connect(&url).await.expect("connect");
            TestDb {
                url,
                store,
                postgres_name: Some(name),
                admin: admin.to_string(),
                _dir: None,
            }
        }

        /// A tenant with default quotas but `max_concurrency`.
        pub async fn tenant(&self, id: &str, max_concurrency: u32) {
            add_tenant(&*self.store, id, max_concurrency).await;
        }

        /// Store `bytes` as plugin `name` of `tenant`.
        pub async fn plugin(
            &self,
            tenant: &str,
            name: &str,
            bytes: &[u8],
            limits: Limits,
            max_attempts: u32,
        ) -> u32 {
            add_plugin(&*self.store, tenant, name, bytes, limits, max_attempts).await
        }

        /// How many jobs a tenant has, in any state.
        pub async fn job_total(&self, tenant: &str) -> u64 {
            self.store
                .job_counts(Some(tenant))
                .await
                .expect("counts")
                .values()
                .sum()
        }

        /// Wait (on the store's notifications, never by sleeping) until the
        /// job is in a state `done` accepts; panics after `patience`.
        pub async fn wait_for(
            &self,
            tenant: &str,
            id: JobId,
            patience: Duration,
            done: impl Fn(JobState) -> bool,
        ) -> JobState {
            let mut events = self.store.subscribe();
            let deadline = tokio::time::Instant::now() + patience;
            loop {
                let job = self
                    .store
                    .job_get(tenant, id)
                    .await
                    .expect("job_get")
                    .expect("job exists");
                if done(job.state) {
                    return job.state;
                }
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => events = self.store.subscribe(),
                    Err(_) => panic!("job {id} still {} after {patience:?}", job.state),
                }
            }
        }

        /// Wait until no job of `tenant` is waiting or running.
        pub async fn wait_until_drained(&self, tenant: Option<&str>, patience: Duration) {
            let mut events = self.store.subscribe();
            let deadline = tokio::time::Instant::now() + patience;
            loop {
                let counts = self.store.job_counts(tenant).await.expect("counts");
                let open: u64 = counts
                    .iter()
                    .filter(|(s, _)| !s.is_terminal())
                    .map(|(_, n)| n)
                    .sum();
                if open == 0 {
                    return;
                }
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => events = self.store.subscribe(),
                    Err(_) => panic!("{open} jobs still open after {patience:?}: {counts:?}"),
                }
            }
        }
    }

    /// Wake-ups when the database changes, whoever changed it: the store's
    /// notifications on PostgreSQL (NOTIFY crosses processes); on SQLite,
    /// whose notifications stay in the process that wrote, changes to the
    /// database's files (its `-wal` file changes on every commit), so a
    /// test can wait on what a `corral serve` subprocess does.
    pub enum Changes {
        Events(tokio::sync::broadcast::Receiver<corral::store::StoreEvent>),
        Files {
            _watcher: notify::RecommendedWatcher,
            changed: tokio::sync::mpsc::UnboundedReceiver<()>,
        },
    }

    /// How long after the last file event a waiter looks again (see `next`).
    const FILE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

    impl Changes {
        /// Wait for the next change; false when `deadline` passed first.
        pub async fn next(&mut self, deadline: tokio::time::Instant) -> bool {
            match self {
                // Lagged: some were missed; the caller looks again anyway.
                Changes::Events(events) => matches!(
                    tokio::time::timeout_at(deadline, events.recv()).await,
                    Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)))
                ),
                // A file event can come before the commit it belongs to is
                // visible (SQLite writes the WAL frame, then updates its
                // index), and a commit's events may all be taken before it
                // is: so the caller also looks again a second after the
                // last event, lest the final change go unseen.
                Changes::Files { changed, .. } => {
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    let look_again = (tokio::time::Instant::now() + FILE_RECHECK).min(deadline);
                    match tokio::time::timeout_at(look_again, changed.recv()).await {
                        Ok(Some(())) => true,
                        Ok(None) => false,
                        Err(_) => tokio::time::Instant::now() < deadline,
                    }
                }
            }
        }
    }

    impl TestDb {
        /// Subscribe to changes (before doing what will cause them).
        pub fn changes(&self) -> Changes {
            let Some(file) = self.url.strip_prefix("sqlite://") else {
                return Changes::Events(self.store.subscribe());
            };
            use notify::Watcher;
            let dir = std::path::Path::new(file)
                .parent()
                .expect("the database file is in a folder")
                .to_path_buf();
            let (tx, changed) = tokio::sync::mpsc::unbounded_channel();
            let mut watcher = notify::recommended_watcher(move |_event| {
                let _ = tx.send(());
            })
            .expect("a file watcher");
            watcher
                .watch(&dir, notify::RecursiveMode::NonRecursive)
                .expect("watching the database's folder");
            Changes::Files {
                _watcher: watcher,
                changed,
            }
        }
    }

    /// `admin` with its database replaced by `name`.
    fn database_url(admin: &str, name: &str) -> String {
        match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("a PostgreSQL URL must end with /database"),
        }
    }

    /// The name of a database on `admin` that holds the migrated schema and
    /// nothing else, made once per server and set of migrations (its name
    /// carries their checksums) and kept for the next run. Test databases
    /// are copies of it (`CREATE DATABASE … TEMPLATE`).
    async fn postgres_template(admin: &str) -> String {
        // One per server this process uses (a test may start a cluster of
        // its own).
        static TEMPLATES: tokio::sync::Mutex<BTreeMap<String, String>> =
            tokio::sync::Mutex::const_new(BTreeMap::new());
        let mut templates = TEMPLATES.lock().await;
        if let Some(name) = templates.get(admin) {
            return name.clone();
        }
        let name = make_postgres_template(admin.to_string()).await;
        templates.insert(admin.to_string(), name.clone());
        name
    }

    async fn make_postgres_template(admin: String) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for migration in sqlx::migrate!("../migrations/postgres").iter() {
            (migration.version, &migration.checksum[..]).hash(&mut hasher);
        }
        let name = format!("corral_template_{:016x}", hasher.finish());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is reachable");
        // Test processes run side by side: one builds, the others wait.
        sqlx::query("SELECT pg_advisory_lock(7283514)")
            .execute(&mut conn)
            .await
            .expect("template lock");
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await
                .expect("look for the template");
        if !exists {
            // Built under another name and renamed when complete, so a run
            // killed halfway never leaves a half-migrated template behind.
            let building = format!("{name}_building");
            for statement in [
                format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
                format!("CREATE DATABASE {building}"),
            ] {
                sqlx::query(&statement)
                    .execute(&mut conn)
                    .await
                    .expect("create the template");
            }
            {
                let store = corral::store::connect(&database_url(&admin, &building))
                    .await
                    .expect("connect to the template");
                store.migrate().await.expect("migrate the template");
            }
            // The store's connections (and its listener) may outlive it a
            // moment; a database with connections can be neither renamed
            // nor copied.
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&building)
            .execute(&mut conn)
            .await
            .expect("close the template's connections");
            sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut conn)
                .await
                .expect("name the template");
        }
        sqlx::query("SELECT pg_advisory_unlock(7283514)")
            .execute(&mut conn)
            .await
            .expect("template unlock");
        let _ = conn.close().await;
        name
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let Some(name) = self.postgres_name.take() else {
                return;
            };
            // Drop the database from a thread of its own: Drop cannot await.
            let admin = self.admin.clone();
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Turns `async fn name(db: TestDb)` test bodies into `postgres::name` and
/// `sqlite::name` tests: every listed test runs on both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::db::TestDb::new($crate::db::Kind::Postgres).await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::db::TestDb::new($crate::db::Kind::Sqlite).await).await;
                }
            )*
        }
    };
}

/// The lease a claim took, as a heartbeat names it.
pub fn lease_of(job: &corral::model::ClaimedJob) -> corral::store::Lease {
    corral::store::Lease {
        job_id: job.id,
        lease_token: job.lease_token,
    }
}

/// Claim every waiting job of the database and finish each as
/// [`finish_of`] does: `Err(message)` kills it (fatal), `Ok(result)`
/// completes it.
pub async fn finish_all(db: &db::TestDb, outcome: Result<&str, &str>) {
    loop {
        let claimed = db
            .store
            .job_claim(&corral::store::ClaimRequest {
                host_id: "test".into(),
                now: chrono::Utc::now(),
                limit: 100,
                lease: std::time::Duration::from_secs(30),
                queues: None,
                tenants: None,
            })
            .await
            .unwrap();
        if claimed.is_empty() {
            return;
        }
        let finishes: Vec<_> = claimed
            .iter()
            .map(|c| finish_of(c, outcome.map(str::to_string), chrono::Utc::now()))
            .collect();
        db.store.job_finish(&finishes).await.unwrap();
    }
}

/// The finish a worker writes for a claimed job at `now`: `Ok(result)`
/// (JSON text) completes it, `Err(message)` is a fatal outcome (dead at once).
pub fn finish_of(
    job: &corral::model::ClaimedJob,
    outcome: Result<String, &str>,
    now: chrono::DateTime<chrono::Utc>,
) -> corral::model::Finish {
    use corral::model::{Attempt, Finish, OutcomeKind, Transition};
    let (kind, transition, message) = match outcome {
        Ok(result) => (
            OutcomeKind::Completed,
            Transition::Complete { result },
            None,
        ),
        Err(message) => (
            OutcomeKind::Fatal,
            Transition::Dead {
                error: message.to_string(),
            },
            Some(message.to_string()),
        ),
    };
    Finish {
        job_id: job.id,
        lease_token: job.lease_token,
        workflow_run_id: job.workflow_run_id,
        progress: None,
        attempt: Attempt {
            attempt: job.attempt,
            outcome: kind,
            message,
            started_at: now,
            finished_at: now,
            fuel_consumed: 1,
            peak_memory_bytes: 1,
            host_id: "test".into(),
            log: String::new(),
            log_dropped_bytes: 0,
            http: None,
        },
        transition,
    }
}
