//! The TypeScript and Python clients (clients/), each tested by its own
//! language's runner (`node --test`, pytest) against a real `corral serve`
//! on a SQLite file, and the OpenAPI document they are generated from
//! checked against the server's.

use std::path::Path;
use std::process::{Child, Command};

use corral_tests::{free_port, plugin_path, root, serve_api};

const ADMIN: &str = "clients-test-admin-token-0123456789";

/// A `corral serve` (API and worker), stopped when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite://{}", dir.path().join("corral.db").display());
        let port = free_port();
        let (child, _) = serve_api(&database, port, dir.path(), Some(ADMIN));
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// `program args` in `dir` with the server's address, the admin key and
    /// the echo plugin's path in its environment; panics unless it succeeds.
    fn run(&self, dir: &Path, program: &str, args: &[&str]) {
        let status = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("CORRAL_URL", &self.url)
            .env("CORRAL_ADMIN_TOKEN", ADMIN)
            .env("CORRAL_ECHO_WASM", plugin_path("echo"))
            .status()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(
            status.success(),
            "`{program} {}` failed in {}",
            args.join(" "),
            dir.display()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `out` is missing or older than `input`.
fn stale(out: &Path, input: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(out), modified(input)) {
        (Some(out), Some(input)) => out < input,
        _ => true,
    }
}

#[test]
fn the_typescript_client_passes_its_tests_against_a_real_server() {
    let dir = root().join("clients/typescript");
    let server = Server::start();
    if stale(
        &dir.join("node_modules/.package-lock.json"),
        &dir.join("package-lock.json"),
    ) {
        server.run(
            &dir,
            "npm",
            &[
                "install",
                "--no-save",
                "--no-fund",
                "--no-audit",
                "--loglevel=error",
            ],
        );
    }
    // tsc type-checks the hand-written layer against the generated schema.
    server.run(&dir, "npm", &["run", "--silent", "build"]);
    server.run(&dir, "npm", &["test", "--silent"]);
}

#[test]
fn the_python_client_passes_its_tests_against_a_real_server() {
    let dir = root().join("clients/python");
    let server = Server::start();
    let venv = dir.join(".venv");
    let installed = venv.join(".installed");
    if stale(&installed, &dir.join("pyproject.toml")) {
        let _ = std::fs::remove_dir_all(&venv);
        server.run(&dir, "python3", &["-m", "venv", ".venv"]);
        server.run(
            &dir,
            ".venv/bin/pip",
            &[
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                ".[test]",
            ],
        );
        std::fs::write(&installed, "").expect("mark the venv installed");
    }
    server.run(
        &dir,
        ".venv/bin/pytest",
        &["-q", "-p", "no:cacheprovider", "tests"],
    );
}

/// The clients are generated from clients/openapi.json (`just clients`);
/// it must be the document this server serves, or they are stale.
#[test]
fn the_clients_openapi_document_is_the_servers() {
    let committed =
        std::fs::read_to_string(root().join("clients/openapi.json")).expect("clients/openapi.json");
    assert!(
        committed.trim_end() == corral::http::openapi::document().trim_end(),
        "clients/openapi.json is stale against the server's document: run `just clients` and commit the result"
    );
}

/// Where the kit checks keep their tools between runs.
fn kit_tools() -> std::path::PathBuf {
    std::env::var_os("CORRAL_PLUGINS_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("plugins/target"))
        .join("kit-tools")
}

/// `program args` in `dir`; its status and what it printed.
fn output_of(dir: &Path, program: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The Python plugin kit installs as a package (`pip install plugins/python`)
/// and its `@corral.handler` is typed: mypy --strict accepts a plugin that
/// uses it well and refuses one that uses its result as the wrong type.
#[test]
fn the_python_plugin_kit_installs_and_type_checks() {
    let venv = kit_tools().join("python");
    let kit = root().join("plugins/python");
    let installed = venv.join(".installed");
    if stale(&installed, &kit.join("pyproject.toml"))
        || stale(&installed, &kit.join("corral/__init__.py"))
    {
        let _ = std::fs::remove_dir_all(&venv);
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success());
        let status = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "mypy==2.4.1",
            ])
            .arg(&kit)
            .status()
            .expect("pip runs");
        assert!(status.success(), "installing the kit and mypy failed");
        std::fs::write(&installed, "").expect("mark installed");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("good.py"),
        "import corral\n\n\n@corral.handler\ndef greet(input: dict[str, str], job: corral.Job) -> dict[str, str]:\n    \
         corral.log.info(f\"attempt {job.attempt}\")\n    return {\"greeting\": f\"Hello, {input['name']}!\"}\n\n\n\
         @corral.handler\ndef double(input: int) -> int:\n    return input * 2\n\n\ntwice: int = double(2)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.py"),
        "import corral\n\n\n@corral.handler\ndef double(input: int) -> int:\n    return input * 2\n\n\n\
         wrong: str = double(2)\n",
    )
    .unwrap();
    let mypy = venv.join("bin/mypy");
    let (ok, text) = output_of(
        dir.path(),
        &mypy,
        &["--strict", "--no-incremental", "good.py"],
    );
    assert!(ok, "{text}");
    let (ok, text) = output_of(
        dir.path(),
        &mypy,
        &["--strict", "--no-incremental", "bad.py"],
    );
    assert!(
        !ok && text.contains("Incompatible types in assignment"),
        "{text}"
    );
}

/// The JavaScript plugin kit is an npm package (`corral-plugin`) with
/// types: a TypeScript plugin that imports it type-checks, one that reads
/// a field a job does not have does not.
#[test]
fn the_javascript_plugin_kit_type_checks() {
    // TypeScript comes from the TypeScript client's pinned devDependencies.
    let client = root().join("clients/typescript");
    if stale(
        &client.join("node_modules/.package-lock.json"),
        &client.join("package-lock.json"),
    ) {
        let status = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-fund",
                "--no-audit",
                "--loglevel=error",
            ])
            .current_dir(&client)
            .status()
            .expect("npm runs");
        assert!(status.success());
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let modules = dir.path().join("node_modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::os::unix::fs::symlink(root().join("plugins/js"), modules.join("corral-plugin")).unwrap();
    std::fs::write(
        dir.path().join("tsconfig.json"),
        r#"{"compilerOptions": {"strict": true, "noEmit": true, "module": "NodeNext", "moduleResolution": "NodeNext", "target": "ES2022", "skipLibCheck": false}}"#,
    )
    .unwrap();
    let plugin = |body: &str| {
        format!(
            "import {{ handler as register, Fatal, log, progress, config }} from 'corral-plugin';\n\
             export const handler = register((input: {{ name: string }}, job) => {{\n{body}\n}});\n"
        )
    };
    let tsc = client.join("node_modules/.bin/tsc");
    std::fs::write(
        dir.path().join("app.ts"),
        plugin(
            "  if (!input.name) throw new Fatal('no name');\n  log.info(`attempt ${job.attempt} of ${job.maxAttempts}`);\n  \
             progress(50, 'half');\n  return { greeting: `Hello, ${input.name}${config('punctuation') ?? '!'}` };",
        ),
    )
    .unwrap();
    let (ok, text) = output_of(dir.path(), &tsc, &["-p", "."]);
    assert!(ok, "{text}");
    std::fs::write(
        dir.path().join("app.ts"),
        plugin("  return { attempt: job.attemptz };"),
    )
    .unwrap();
    let (ok, text) = output_of(dir.path(), &tsc, &["-p", "."]);
    assert!(!ok && text.contains("attemptz"), "{text}");
}

/// The Rust client (`corral-client`, whose types the server answers with)
/// against a real server: upload, enqueue and wait, watch, batches and
/// idempotency keys, and refusals as typed errors.
#[test]
fn the_rust_client_works_against_a_real_server() {
    use corral_client::{Client, CreateJob, Enqueue, Error, JobEvent, JobState, UploadLimits};
    use futures_util::StreamExt;
    use std::time::Duration;

    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let admin = Client::new(&server.url, ADMIN).unwrap();
        // Any route, typed with the server's own response types.
        let tenant: corral_client::api::Tenant = admin
            .json(
                admin
                    .request(reqwest::Method::POST, &["v1", "tenants"])
                    .json(&serde_json::json!({"id": "rust"})),
            )
            .await
            .unwrap();
        assert_eq!(tenant.id, "rust");
        let key: corral_client::api::CreatedKey = admin
            .json(admin.request(reqwest::Method::POST, &["v1", "tenants", "rust", "keys"]))
            .await
            .unwrap();
        let corral = Client::new(&server.url, key.key).unwrap();
        let uploaded = corral
            .upload_plugin(
                "echo",
                corral_tests::plugin_bytes("echo"),
                &UploadLimits {
                    fuel: Some(100_000_000),
                    ..UploadLimits::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((uploaded.name.as_str(), uploaded.version), ("echo", 1));

        let patience = Duration::from_secs(120);
        let job = corral
            .enqueue(
                Enqueue::new("echo", &serde_json::json!({"hello": "world"}))
                    .unwrap()
                    .with(|job| job.priority = Some(5)),
            )
            .await
            .unwrap();
        // The job as it is when the answer is written: a worker may have
        // claimed it already.
        assert_eq!(job.priority, 5);
        let done = corral.wait(job.id, patience).await.unwrap();
        assert_eq!(done.state, JobState::Completed);
        assert_eq!(done.result.unwrap().get(), r#"{"hello":"world"}"#);
        let attempts: corral_client::api::AttemptList = corral
            .json(corral.request(
                reqwest::Method::GET,
                &["v1", "jobs", &job.id.to_string(), "attempts"],
            ))
            .await
            .unwrap();
        assert_eq!(
            attempts
                .attempts
                .iter()
                .map(|a| a.outcome)
                .collect::<Vec<_>>(),
            [corral_client::api::OutcomeKind::Completed]
        );
        let plugins: corral_client::api::PluginList = corral
            .json(corral.request(reqwest::Method::GET, &["v1", "plugins"]))
            .await
            .unwrap();
        assert_eq!(plugins.plugins[0].limits.fuel, 100_000_000);

        let job = corral
            .enqueue(Enqueue::new("echo", &[1, 2, 3]).unwrap())
            .await
            .unwrap();
        let events = corral.watch(job.id).await.unwrap();
        let states: Vec<JobState> = events
            .filter_map(|e| async move {
                match e.unwrap() {
                    JobEvent::State(job) => Some(job.state),
                    JobEvent::Progress(_) => None,
                }
            })
            .collect()
            .await;
        assert_eq!(states.last(), Some(&JobState::Completed), "{states:?}");

        let first = corral
            .enqueue(Enqueue::new("echo", &1).unwrap().key("rs-1"))
            .await
            .unwrap();
        let again = corral
            .enqueue(Enqueue::new("echo", &1).unwrap().key("rs-1"))
            .await
            .unwrap();
        assert_eq!(again.id, first.id);
        let reused = corral
            .enqueue(Enqueue::new("echo", &2).unwrap().key("rs-1"))
            .await
            .unwrap_err();
        assert_eq!(reused.code(), Some("idempotency_key_reused"), "{reused}");

        let jobs: Vec<CreateJob> = (0..3)
            .map(|n| CreateJob::new("echo", serde_json::value::to_raw_value(&n).unwrap()))
            .collect();
        let ids = corral
            .enqueue_batch(jobs.clone(), Some("rs-batch"))
            .await
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(
            corral.enqueue_batch(jobs, Some("rs-batch")).await.unwrap(),
            ids
        );

        match corral
            .enqueue(Enqueue::new("no-such-plugin", &0).unwrap())
            .await
        {
            Err(Error::Api {
                status,
                code,
                message,
                ..
            }) => {
                assert_eq!((status.as_u16(), code.as_str()), (422, "unknown_plugin"));
                assert!(message.contains("no-such-plugin"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let refused = corral
            .upload_plugin("bad", b"not wasm".to_vec(), &UploadLimits::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("invalid_component"));
        let later = corral
            .enqueue(
                Enqueue::new("echo", &0)
                    .unwrap()
                    .with(|job| job.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1))),
            )
            .await
            .unwrap();
        assert!(matches!(
            corral.wait(later.id, Duration::from_millis(300)).await,
            Err(Error::Timeout(id)) if id == later.id
        ));
        // Bulk: the scheduled job is the one unfinished job; cancel it by filter.
        let mut bulk = corral_client::api::BulkRequest {
            filter: corral_client::api::JobSelector {
                state: Some(JobState::Scheduled),
                ..Default::default()
            },
            dry_run: true,
            ..Default::default()
        };
        let counted = corral.cancel_jobs(&bulk).await.unwrap();
        assert_eq!(counted.matched, Some(1));
        bulk.dry_run = false;
        let cancelled = corral.cancel_jobs(&bulk).await.unwrap();
        assert_eq!(cancelled.jobs, vec![later.id]);
        let nothing_dead = corral
            .replay_jobs(&corral_client::api::BulkRequest::default())
            .await
            .unwrap();
        assert!(nothing_dead.jobs.is_empty() && nothing_dead.next_cursor.is_none());
        let stranger = Client::new(&server.url, "corral_not_a_key").unwrap();
        let denied = stranger.job(later.id).await.unwrap_err();
        assert!(matches!(denied, Error::Api { status, .. } if status.as_u16() == 401));
    });
}
