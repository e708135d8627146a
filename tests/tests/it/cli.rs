//! The `corral` client verbs, end to end: a real `corral serve` (API and
//! worker on a SQLite file) driven by the real `corral` binary as a
//! subprocess, the way a person or a script would.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral_tests::{corral_bin, free_port, plugin_path, serve_api};
use serde_json::Value;

/// The admin key the test servers are started with.
const ADMIN: &str = "cli-test-admin-token-0123456789";

/// Longest a client command may take (a `--wait` includes compiling and
/// running a job on a loaded machine); past it, the command is killed and
/// the test fails.
const PATIENCE: Duration = Duration::from_secs(300);

/// A `corral serve` on a fresh SQLite file, stopped when dropped.
struct Server {
    child: Option<Child>,
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
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// A client command with `token` (none: no key at all).
    fn corral(&self, token: Option<&str>, args: &[&str]) -> Run {
        corral(&self.url, token, args, None)
    }

    /// The admin's command.
    fn admin(&self, args: &[&str]) -> Run {
        self.corral(Some(ADMIN), args)
    }

    /// A new key of `tenant`, made by the admin.
    fn key(&self, tenant: &str) -> String {
        self.admin(&["key", "create", tenant, "--json"])
            .success()
            .json()["key"]
            .as_str()
            .expect("a key")
            .to_string()
    }

    /// A tenant with a key, and the `echo` plugin pushed; returns the key.
    fn tenant_with_echo(&self, tenant: &str) -> String {
        self.admin(&["tenant", "create", tenant]).success();
        let key = self.key(tenant);
        self.corral(Some(&key), &["plugin", "push", "echo", &path_of("echo")])
            .success();
        key
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

fn path_of(plugin: &str) -> String {
    plugin_path(plugin).display().to_string()
}

/// A finished client command.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    /// Exited with `code`, and said `message` on stderr.
    fn fails(self, code: i32, message: &str) -> Run {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert!(
            self.stderr.contains(message),
            "{message:?} not in {self:#?}"
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Run `corral args` against `server`, feeding `stdin` if given; killed
/// (and the test failed) after `PATIENCE`.
fn corral(server: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(corral_bin());
    command
        .args(args)
        .env("CORRAL_SERVER", server)
        .env_remove("CORRAL_TOKEN")
        .env_remove("CORRAL_TOKEN_FILE")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("CORRAL_TOKEN", token);
    }
    let mut child = command.spawn().expect("corral starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let pid = child.id() as i32;
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("corral runs"),
        Err(_) => {
            // SAFETY: killing our own child process, which outlived its patience.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!(
                "`corral {}` did not finish within {PATIENCE:?}",
                args.join(" ")
            );
        }
    };
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn the_admin_manages_tenants_and_keys_and_a_tenant_pushes_plugins() {
    let server = Server::start();

    let acme = server
        .admin(&[
            "tenant",
            "create",
            "acme",
            "--name",
            "Acme Inc",
            "--max-concurrency",
            "4",
            "--max-memory-mb",
            "128",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(acme["id"], "acme");
    assert_eq!(acme["name"], "Acme Inc");
    assert_eq!(acme["quotas"]["max_concurrency"], 4);
    assert_eq!(acme["quotas"]["max_memory_mb"], 128);

    let beta = server
        .admin(&["tenant", "create", "beta", "--enqueue-per-minute", "60"])
        .success();
    assert!(beta.stdout.contains("enqueue_per_minute:"), "{beta:#?}");
    assert!(
        beta.stderr.is_empty(),
        "a client command logs nothing: {beta:#?}"
    );

    let list = server.admin(&["tenant", "list"]).success();
    assert!(list.stdout.starts_with("ID"), "{list:#?}");
    assert!(
        list.stdout.contains("acme") && list.stdout.contains("beta"),
        "{list:#?}"
    );
    let tenants = server.admin(&["tenant", "list", "--json"]).success().json();
    assert_eq!(tenants["tenants"].as_array().map(Vec::len), Some(2));
    let show = server.admin(&["tenant", "show", "acme"]).success();
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("max_memory_mb:") && l.ends_with(" 128")),
        "{show:#?}"
    );
    let updated = server
        .admin(&[
            "tenant",
            "update",
            "acme",
            "--max-concurrency",
            "8",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(updated["quotas"]["max_concurrency"], 8);
    assert_eq!(updated["quotas"]["max_memory_mb"], 128, "kept");

    // Keys: printed once (human and JSON), revoked at once.
    let human = server.admin(&["key", "create", "acme"]).success();
    assert!(human.stdout.contains("key:") && human.stdout.contains("corral_"));
    assert!(human.stderr.contains("shown only this once"), "{human:#?}");
    let spare = server
        .admin(&["key", "create", "acme", "--json"])
        .success()
        .json();
    let key = server.key("acme");
    let spare_key = spare["key"].as_str().expect("key");
    server
        .corral(Some(spare_key), &["plugin", "list"])
        .success();
    server
        .admin(&[
            "key",
            "revoke",
            "acme",
            spare["key_id"].as_str().expect("key_id"),
        ])
        .success();
    server
        .corral(Some(spare_key), &["plugin", "list"])
        .fails(2, "(unauthorized, HTTP 401)");

    // Push: a new version, then the same bytes again.
    let pushed = server
        .corral(
            Some(&key),
            &[
                "plugin",
                "push",
                "echo",
                &path_of("echo"),
                "--max-attempts",
                "2",
                "--fuel",
                "5000000",
            ],
        )
        .success();
    assert!(
        pushed.stderr.contains("pushed echo version 1"),
        "{pushed:#?}"
    );
    assert!(pushed.stdout.contains("digest:") && pushed.stdout.contains("sha256:"));
    let again = server
        .corral(Some(&key), &["plugin", "push", "echo", &path_of("echo")])
        .success();
    assert!(
        again.stderr.contains("unchanged: version 1 of echo"),
        "{again:#?}"
    );
    let markdown = server
        .corral(
            Some(&key),
            &["plugin", "push", "markdown", &path_of("markdown"), "--json"],
        )
        .success()
        .json();
    assert_eq!(
        (markdown["name"].as_str(), markdown["version"].as_u64()),
        (Some("markdown"), Some(1))
    );

    let listed = server
        .corral(Some(&key), &["plugin", "list", "--json"])
        .success()
        .json();
    let mut names: Vec<&str> = listed["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["echo", "markdown"]);
    let table = server.corral(Some(&key), &["plugin", "list"]).success();
    assert!(table.stdout.contains("echo") && table.stdout.contains("markdown"));
    let versions = server
        .corral(Some(&key), &["plugin", "show", "echo"])
        .success();
    assert!(versions.stdout.starts_with("NAME"), "{versions:#?}");
    let one = server
        .corral(Some(&key), &["plugin", "show", "echo", "1", "--json"])
        .success()
        .json();
    assert_eq!(
        (one["max_attempts"].as_u64(), one["limits"]["fuel"].as_u64()),
        (Some(2), Some(5_000_000))
    );

    // Refusals name the problem.
    server
        .corral(Some(&key), &["plugin", "show", "echo", "9"])
        .fails(
            2,
            "error: no version `9` of plugin `echo` (not_found, HTTP 404)",
        );
    server
        .corral(Some(&key), &["plugin", "push", "x", "/no/such/file.wasm"])
        .fails(2, "cannot read /no/such/file.wasm");
    let not_wasm = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_wasm.path(), b"not a component").expect("write");
    server
        .corral(
            Some(&key),
            &[
                "plugin",
                "push",
                "x",
                &not_wasm.path().display().to_string(),
            ],
        )
        .fails(2, "(invalid_component, HTTP 422)");
    server
        .corral(
            Some(&key),
            &[
                "plugin",
                "push",
                "echo",
                &path_of("echo"),
                "--memory-mb",
                "4096",
            ],
        )
        .fails(2, "(over_limit, HTTP 422)");
    server
        .corral(Some(&key), &["tenant", "list"])
        .fails(2, "(forbidden, HTTP 403)");
}

/// A refusal the server sends before it reads an upload (limits over the
/// tenant's quotas; a `Content-Length` over its cap) reaches the client
/// whole, however large the upload: the server drains what the client is
/// still sending before it closes. Closed with those bytes unread, the
/// connection was reset under the client, which then reported a broken
/// pipe instead of the refusal (more often the larger the upload).
#[test]
fn refusals_sent_before_an_upload_is_read_reach_the_client() {
    let server = Server::start();
    server
        .admin(&["tenant", "create", "acme", "--max-plugin-bytes", "1048576"])
        .success();
    let key = server.key("acme");
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.wasm");
    // Far more than the socket buffers hold, so most of it is still on its
    // way when the refusal is sent.
    std::fs::write(&big, vec![0u8; 32 << 20]).expect("write the upload");
    let big = big.display().to_string();
    for _ in 0..3 {
        server
            .corral(
                Some(&key),
                &["plugin", "push", "big", &big, "--memory-mb", "4096"],
            )
            .fails(2, "(over_limit, HTTP 422)");
        server
            .corral(Some(&key), &["plugin", "push", "big", &big])
            .fails(2, "HTTP 413");
    }
}

#[test]
fn jobs_from_creation_to_replay() {
    let server = Server::start();
    let key = server.tenant_with_echo("acme");
    let tenant = |args: &[&str]| server.corral(Some(&key), args);

    // --wait follows the job to its end and prints it.
    let waited = tenant(&[
        "job",
        "create",
        "echo",
        "--input",
        r#"{"hello": "world"}"#,
        "--wait",
    ])
    .success();
    assert!(
        waited
            .stdout
            .lines()
            .any(|l| l.starts_with("state:") && l.ends_with("completed")),
        "{waited:#?}"
    );
    assert!(
        waited
            .stdout
            .lines()
            .any(|l| l.starts_with("result:") && l.contains(r#"{"hello":"world"}"#)),
        "{waited:#?}"
    );
    let waited_json = tenant(&[
        "job", "create", "echo", "--input", "[1, 2]", "--wait", "--json",
    ])
    .success()
    .json();
    assert_eq!(
        (waited_json["state"].as_str(), &waited_json["result"]),
        (Some("completed"), &serde_json::json!([1, 2]))
    );

    // Input from stdin, then get, watch, list, logs, attempts.
    let created = corral(
        &server.url,
        Some(&key),
        &[
            "job",
            "create",
            "echo",
            "--input-file",
            "-",
            "--json",
            "--priority",
            "-5",
        ],
        Some(r#"{"n": 1}"#),
    )
    .success()
    .json();
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(
        (created["input"].clone(), created["priority"].as_i64()),
        (serde_json::json!({"n": 1}), Some(-5))
    );

    let watched = tenant(&["job", "watch", &id]).success();
    let last = watched.stdout.lines().last().unwrap_or_default();
    assert!(last.contains("completed"), "{watched:#?}");
    let events = tenant(&["job", "watch", &id, "--json"]).success();
    let events: Vec<Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let final_event = events.last().expect("an event");
    assert_eq!(
        (
            final_event["event"].as_str(),
            final_event["data"]["state"].as_str()
        ),
        (Some("state"), Some("completed"))
    );

    let job = tenant(&["job", "get", &id, "--json"]).success().json();
    assert_eq!(
        (job["state"].as_str(), &job["result"]),
        (Some("completed"), &serde_json::json!({"n": 1}))
    );
    let human = tenant(&["job", "get", &id]).success();
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("plugin:") && l.ends_with("echo (version 1)")),
        "{human:#?}"
    );

    let logs = tenant(&["job", "logs", &id, "--json"]).success().json();
    assert_eq!(logs["logs"][0]["attempt"], 1);
    tenant(&["job", "logs", &id]).success();
    let attempts = tenant(&["job", "attempts", &id, "--json"]).success().json();
    assert_eq!(attempts["attempts"][0]["outcome"], "completed");
    let table = tenant(&["job", "attempts", &id]).success();
    assert!(
        table.stdout.starts_with("ATTEMPT") && table.stdout.contains("completed"),
        "{table:#?}"
    );

    // A scheduled job is cancelled at once; watching it ends in `cancelled` (exit 1).
    let scheduled = tenant(&["job", "create", "echo", "--run-at", "+1h", "--json"])
        .success()
        .json();
    assert_eq!(scheduled["state"], "scheduled");
    let later = scheduled["id"].as_str().expect("id");
    let cancelled = tenant(&["job", "cancel", later, "--json"]).success().json();
    assert_eq!(cancelled["state"], "cancelled");
    tenant(&["job", "watch", later]).fails(1, "");
    tenant(&["job", "cancel", later]).fails(2, "(conflict, HTTP 409)");

    // Lists: filters, pages, --all.
    let all = tenant(&["job", "list", "--json"]).success().json();
    assert_eq!(all["jobs"].as_array().map(Vec::len), Some(4));
    assert_eq!(all["next_cursor"], Value::Null);
    let page = tenant(&[
        "job",
        "list",
        "--state",
        "completed",
        "--plugin",
        "echo",
        "--limit",
        "1",
        "--json",
    ])
    .success()
    .json();
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(1));
    let cursor = page["next_cursor"].as_str().expect("more pages");
    let next = tenant(&[
        "job",
        "list",
        "--state",
        "completed",
        "--limit",
        "1",
        "--cursor",
        cursor,
        "--json",
    ])
    .success()
    .json();
    assert_ne!(next["jobs"][0]["id"], page["jobs"][0]["id"]);
    let followed = tenant(&["job", "list", "--all", "--limit", "1", "--json"])
        .success()
        .json();
    assert_eq!(followed["jobs"], all["jobs"], "--all follows every cursor");
    let human = tenant(&["job", "list", "--limit", "1"]).success();
    assert!(human.stdout.starts_with("ID"), "{human:#?}");
    assert!(human.stderr.contains("--cursor"), "{human:#?}");
    let cancelled_only = tenant(&["job", "list", "--state", "cancelled", "--json"])
        .success()
        .json();
    assert_eq!(cancelled_only["jobs"][0]["id"].as_str(), Some(later));

    // Replay: a new job linked to the original.
    let replayed = tenant(&["job", "replay", &id, "--json"]).success().json();
    assert_eq!(replayed["replay_of"].as_str(), Some(id.as_str()));
    let replay_waited = tenant(&["job", "replay", &id, "--wait"]).success();
    assert!(
        replay_waited.stdout.contains("replay_of:"),
        "{replay_waited:#?}"
    );

    // Bad input is refused before anything is sent.
    tenant(&["job", "create", "echo", "--input", "{oops"])
        .fails(2, "error: --input is not valid JSON");
    tenant(&["job", "create", "echo", "--run-at", "soon"]).fails(2, "`soon` is neither RFC 3339");
    tenant(&["job", "create", "nope"]).fails(2, "(unknown_plugin, HTTP 422)");
    tenant(&["job", "get", "0190a0d4-0000-7000-8000-000000000000"])
        .fails(2, "(not_found, HTTP 404)");
}

#[test]
fn failures_exit_1_for_a_dead_job_and_2_for_errors() {
    let server = Server::start();
    let key = server.tenant_with_echo("acme");
    server
        .corral(Some(&key), &["plugin", "push", "panic", &path_of("panic")])
        .success();

    let dead = server
        .corral(
            Some(&key),
            &["job", "create", "panic", "--max-attempts", "1", "--wait"],
        )
        .fails(1, "");
    assert!(
        dead.stdout
            .lines()
            .any(|l| l.starts_with("state:") && l.ends_with("dead")),
        "{dead:#?}"
    );
    assert!(
        dead.stdout
            .lines()
            .any(|l| l.starts_with("error:") && !l.ends_with(" -")),
        "the error is shown: {dead:#?}"
    );

    // A wrong key, no key, and a wrong kind of key.
    server
        .corral(Some("corral_0000000000000000_nope"), &["job", "list"])
        .fails(2, "(unauthorized, HTTP 401)");
    server.corral(None, &["job", "list"]).fails(
        2,
        "(unauthorized, HTTP 401); pass --token or set CORRAL_TOKEN",
    );

    // No server at all: the message names the URL.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let run = corral(&nowhere, Some(&key), &["job", "list"], None).fails(
        2,
        &format!("error: cannot connect to the Corral server at {nowhere}"),
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {run:#?}");
    corral("localhost:8080", Some(&key), &["job", "list"], None).fails(
        2,
        "--server `localhost:8080` is not an http:// or https:// URL",
    );
    // --server on the command line wins over CORRAL_SERVER.
    corral(
        &server.url,
        Some(&key),
        &["job", "list", "--server", &nowhere],
        None,
    )
    .fails(2, &nowhere);

    // Usage errors are clap's, also exit 2.
    server
        .corral(Some(&key), &["job", "frobnicate"])
        .fails(2, "unrecognized subcommand");
    let help = server.corral(None, &["job", "create", "--help"]).success();
    assert!(help.stdout.contains("Exit codes:"), "{help:#?}");
}

#[test]
fn jobs_are_replayed_and_cancelled_by_filter() {
    let server = Server::start();
    let key = server.tenant_with_echo("acme");
    let tenant = |args: &[&str]| server.corral(Some(&key), args);
    tenant(&["plugin", "push", "panic", &path_of("panic")]).success();
    for _ in 0..3 {
        tenant(&["job", "create", "panic", "--max-attempts", "1", "--wait"]).fails(1, "");
    }
    // The list's new filters: text in the error, a time range.
    let all = tenant(&["job", "list", "--state", "dead", "--json"])
        .success()
        .json();
    let error = all["jobs"][0]["error"]
        .as_str()
        .expect("an error")
        .to_string();
    let some_of_it: String = error.chars().take(12).collect();
    let dead = tenant(&[
        "job",
        "list",
        "--state",
        "dead",
        "--error",
        &some_of_it,
        "--created-after",
        "-1h",
        "--json",
    ])
    .success()
    .json();
    assert_eq!(dead["jobs"].as_array().unwrap().len(), 3, "{dead}");
    let none = tenant(&["job", "list", "--created-before", "-1h", "--json"])
        .success()
        .json();
    assert_eq!(none["jobs"], serde_json::json!([]));
    let counted = tenant(&["job", "replay", "--plugin", "panic", "--dry-run"]).success();
    assert_eq!(counted.stdout.trim(), "3 jobs match; nothing was changed");
    let replayed = tenant(&["job", "replay", "--plugin", "panic"]).success();
    let originals: Vec<&str> = replayed
        .stdout
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(originals.len(), 3, "{replayed:#?}");
    assert!(replayed.stderr.contains("3 jobs replayed"), "{replayed:#?}");
    // Replayed once: a second run never names the same originals (it may
    // replay the replays, which die too).
    let again = tenant(&["job", "replay", "--plugin", "panic", "--json"]).success();
    for line in again.stdout.lines() {
        let outcome: Value = serde_json::from_str(line).unwrap();
        for id in outcome["jobs"].as_array().unwrap() {
            assert!(!originals.contains(&id.as_str().unwrap()), "{again:#?}");
        }
    }

    for _ in 0..2 {
        tenant(&["job", "create", "echo", "--run-at", "+1h"]).success();
    }
    let counted = tenant(&["job", "cancel", "--state", "scheduled", "--dry-run"]).success();
    assert_eq!(counted.stdout.trim(), "2 jobs match; nothing was changed");
    let cancelled = tenant(&["job", "cancel", "--state", "scheduled"]).success();
    assert_eq!(cancelled.stdout.lines().count(), 2, "{cancelled:#?}");
    let left = tenant(&["job", "list", "--state", "scheduled", "--json"])
        .success()
        .json();
    assert_eq!(left["jobs"], serde_json::json!([]));
    // Neither an id nor a filter: a usage error, nothing cancelled.
    tenant(&["job", "cancel"]).fails(2, "required");
    tenant(&["job", "cancel", "--state", "dead"]).fails(2, "invalid_filter");
}

#[test]
fn the_verbs_guides_used_curl_for() {
    let server = Server::start();
    let key = server.tenant_with_echo("acme");
    let dir = tempfile::tempdir().expect("temp dir");

    // --token-file instead of --token, whitespace around the key ignored.
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let file = key_file.display().to_string();
    let listed = server
        .corral(None, &["plugin", "list", "--token-file", &file])
        .success();
    assert!(listed.stdout.contains("echo"), "{listed:#?}");
    server
        .corral(Some(&key), &["plugin", "list", "--token-file", &file])
        .fails(2, "not both");

    // plugin config replaces the whole config; show lists the keys only.
    let set = server
        .corral(
            Some(&key),
            &["plugin", "config", "echo", "greeting=hi=there", "lang=en"],
        )
        .success();
    assert!(set.stdout.contains("greeting, lang"), "{set:#?}");
    assert!(
        !set.stdout.contains("hi=there"),
        "values are write-only: {set:#?}"
    );
    let shown = server
        .corral(Some(&key), &["plugin", "show", "echo", "1", "--json"])
        .success()
        .json();
    assert_eq!(
        shown["config_keys"],
        serde_json::json!(["greeting", "lang"])
    );
    server
        .corral(Some(&key), &["plugin", "config", "echo", "novalue"])
        .fails(2, "`novalue` is not KEY=VALUE");
    let cleared = server
        .corral(Some(&key), &["plugin", "config", "echo", "--json"])
        .success()
        .json();
    assert_eq!(cleared["config_keys"], serde_json::json!([]));

    // plugin http from YAML; a bad entry is the API's 422.
    let http = dir.path().join("http.yaml");
    std::fs::write(
        &http,
        "allow: [\"https://hooks.example.com\"]\nmax_requests: 5\n",
    )
    .unwrap();
    let allowed = server
        .corral(
            Some(&key),
            &["plugin", "http", "echo", &http.display().to_string()],
        )
        .success();
    assert!(
        allowed
            .stdout
            .lines()
            .any(|l| l.starts_with("http_allow:") && l.ends_with("https://hooks.example.com")),
        "{allowed:#?}"
    );
    std::fs::write(&http, "allow: [\"ftp://nope\"]\n").unwrap();
    server
        .corral(
            Some(&key),
            &["plugin", "http", "echo", &http.display().to_string()],
        )
        .fails(2, "(invalid_http, HTTP 422)");

    // job batch: a YAML list, ids printed in order; a non-list refused locally.
    let batch = dir.path().join("jobs.yaml");
    std::fs::write(
        &batch,
        "- {plugin: echo, input: {n: 1}}\n- {plugin: echo, input: {n: 2}, priority: 5}\n",
    )
    .unwrap();
    let ids = server
        .corral(Some(&key), &["job", "batch", &batch.display().to_string()])
        .success();
    let ids: Vec<&str> = ids.stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let second = server
        .corral(Some(&key), &["job", "get", ids[1], "--json"])
        .success()
        .json();
    assert_eq!(second["input"], serde_json::json!({"n": 2}));
    let piped = corral(
        &server.url,
        Some(&key),
        &["job", "batch", "-", "--json"],
        Some(r#"{"jobs": [{"plugin": "echo", "input": {}}]}"#),
    )
    .success()
    .json();
    assert_eq!(piped["ids"].as_array().map(Vec::len), Some(1));
    std::fs::write(&batch, "plugin: echo\n").unwrap();
    server
        .corral(Some(&key), &["job", "batch", &batch.display().to_string()])
        .fails(2, "must hold a list of jobs");

    // plugin delete: a version pinned by unfinished jobs is refused; an
    // unpinned one goes.
    server
        .corral(Some(&key), &["job", "create", "echo", "--run-at", "+1d"])
        .success();
    server
        .corral(Some(&key), &["plugin", "delete", "echo", "1"])
        .fails(2, "HTTP 409");
    server
        .corral(Some(&key), &["plugin", "push", "panic", &path_of("panic")])
        .success();
    let deleted = server
        .corral(Some(&key), &["plugin", "delete", "panic", "1"])
        .success();
    assert!(
        deleted.stderr.contains("deleted version 1 of panic"),
        "{deleted:#?}"
    );
    server
        .corral(Some(&key), &["plugin", "show", "panic", "1"])
        .fails(2, "HTTP 404");

    // Completions for each shell name the verbs.
    for shell in ["bash", "zsh", "fish"] {
        let script = server.corral(None, &["completions", shell]).success();
        assert!(
            script.stdout.contains("corral") && script.stdout.contains("plugin"),
            "{shell}: {script:#?}"
        );
    }
}

#[test]
fn workflows_from_apply_to_cancel() {
    let server = Server::start();
    let key = server.tenant_with_echo("acme");
    for plugin in ["step", "sleep"] {
        server
            .corral(Some(&key), &["plugin", "push", plugin, &path_of(plugin)])
            .success();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("diamond.yaml");
    std::fs::write(
        &file,
        "name: diamond\n\
         steps:\n\
         \x20 - {name: a, plugin: step}\n\
         \x20 - {name: b, plugin: step, depends_on: [a]}\n\
         \x20 - {name: c, plugin: step, depends_on: [a], input: {fixed: true}}\n\
         \x20 - {name: d, plugin: step, depends_on: [b, c]}\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let applied = server
        .corral(Some(&key), &["workflow", "apply", &file])
        .success();
    assert!(
        applied.stderr.contains("applied diamond version 1"),
        "{applied:#?}"
    );
    assert!(applied.stdout.contains("DEPENDS ON"), "{applied:#?}");
    let again = server
        .corral(Some(&key), &["workflow", "apply", &file])
        .success();
    assert!(again.stderr.contains("unchanged: version 1"), "{again:#?}");

    // Run to the end: the last step saw the run input and every upstream result.
    let done = server
        .corral(
            Some(&key),
            &[
                "workflow",
                "run",
                "diamond",
                "--input",
                r#"{"n": 1}"#,
                "--wait",
                "--json",
            ],
        )
        .success()
        .json();
    assert_eq!(done["state"], "completed", "{done}");
    let seen = &done["steps"][3]["result"]["context"];
    assert_eq!(seen["input"], serde_json::json!({"n": 1}));
    assert_eq!(
        seen["steps"]["c"]["input"],
        serde_json::json!({"fixed": true})
    );
    let id = done["id"].as_str().unwrap();
    let status = server
        .corral(Some(&key), &["workflow", "status", id])
        .success();
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("state:") && l.ends_with("completed")),
        "{status:#?}"
    );
    assert!(
        status.stdout.contains("STEP"),
        "a table of steps: {status:#?}"
    );
    let diagram = server
        .corral(Some(&key), &["workflow", "diagram", id])
        .success();
    assert!(diagram.stdout.starts_with("graph TD\n"), "{diagram:#?}");
    assert!(
        diagram.stdout.contains("class s0,s1,s2,s3 completed"),
        "{diagram:#?}"
    );
    let runs = server
        .corral(Some(&key), &["workflow", "runs", "--workflow", "diamond"])
        .success();
    assert!(runs.stdout.contains(id), "{runs:#?}");
    let list = server.corral(Some(&key), &["workflow", "list"]).success();
    assert!(list.stdout.contains("diamond"), "{list:#?}");

    // A failing step with the default policy: the run fails, exit 1.
    let failing = dir.path().join("failing.json");
    std::fs::write(
        &failing,
        r#"{"steps": [{"name": "f", "plugin": "step", "input": {"fail": "boom"}}]}"#,
    )
    .unwrap();
    server
        .corral(
            Some(&key),
            &["workflow", "apply", &failing.display().to_string()],
        )
        .success();
    let failed = server
        .corral(Some(&key), &["workflow", "run", "failing", "--wait"])
        .fails(1, "");
    assert!(
        failed
            .stdout
            .lines()
            .any(|l| l.starts_with("error:") && l.contains("boom")),
        "{failed:#?}"
    );

    // Cancel a run while its step sleeps.
    let slow = dir.path().join("slow.json");
    std::fs::write(
        &slow,
        r#"{"name": "slow", "steps": [{"name": "nap", "plugin": "sleep", "input": {"ms": 60000}}]}"#,
    )
    .unwrap();
    server
        .corral(
            Some(&key),
            &["workflow", "apply", &slow.display().to_string()],
        )
        .success();
    let started = server
        .corral(Some(&key), &["workflow", "run", "slow", "--json"])
        .success()
        .json();
    let slow_id = started["id"].as_str().unwrap();
    let cancelled = server
        .corral(Some(&key), &["workflow", "cancel", slow_id, "--json"])
        .success()
        .json();
    assert_eq!(cancelled["state"], "cancelled");
    server
        .corral(Some(&key), &["workflow", "cancel", slow_id])
        .fails(2, "(conflict, HTTP 409)");

    // A bad definition: exit 2, the server's message.
    let cycle = dir.path().join("cycle.json");
    std::fs::write(
        &cycle,
        r#"{"name": "cycle", "steps": [
            {"name": "a", "plugin": "step", "depends_on": ["b"]},
            {"name": "b", "plugin": "step", "depends_on": ["a"]}]}"#,
    )
    .unwrap();
    server
        .corral(
            Some(&key),
            &["workflow", "apply", &cycle.display().to_string()],
        )
        .fails(2, "the steps form a cycle: a -> b -> a");
}

#[test]
fn schedules_from_apply_to_delete() {
    let server = Server::start();
    let key = server.tenant_with_echo("acme");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nightly.yaml");
    std::fs::write(
        &file,
        "name: nightly\n\
         cron: \"30 2 * * *\"\n\
         timezone: Europe/Berlin\n\
         target:\n\
         \x20 plugin: echo\n\
         \x20 input: {report: daily}\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let created = server
        .corral(Some(&key), &["schedule", "apply", &file])
        .success();
    assert!(
        created.stderr.contains("created schedule nightly"),
        "{created:#?}"
    );
    assert!(
        created
            .stdout
            .lines()
            .any(|l| l.starts_with("time zone:") && l.ends_with("Europe/Berlin")),
        "{created:#?}"
    );
    let replaced = server
        .corral(Some(&key), &["schedule", "apply", &file])
        .success();
    assert!(
        replaced.stderr.contains("replaced schedule nightly"),
        "{replaced:#?}"
    );
    let list = server.corral(Some(&key), &["schedule", "list"]).success();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("nightly") && l.contains("plugin echo") && l.contains("active")),
        "{list:#?}"
    );
    let paused = server
        .corral(Some(&key), &["schedule", "pause", "nightly", "--json"])
        .success()
        .json();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_tick"], Value::Null);
    let resumed = server
        .corral(Some(&key), &["schedule", "resume", "nightly", "--json"])
        .success()
        .json();
    assert!(resumed["next_tick"].is_string(), "{resumed}");
    let shown = server
        .corral(Some(&key), &["schedule", "show", "nightly", "--json"])
        .success()
        .json();
    assert_eq!(
        shown["target"]["input"],
        serde_json::json!({"report": "daily"})
    );
    server
        .corral(Some(&key), &["schedule", "delete", "nightly"])
        .success();
    server
        .corral(Some(&key), &["schedule", "show", "nightly"])
        .fails(2, "(not_found, HTTP 404)");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "bad", "cron": "* * *", "target": {"plugin": "echo"}}"#,
    )
    .unwrap();
    server
        .corral(
            Some(&key),
            &["schedule", "apply", &bad.display().to_string()],
        )
        .fails(2, "has 3 fields");
}

/// `corral new LANGUAGE NAME` writes a project into a fresh folder, the one
/// command it prints builds it with nothing from this checkout, and `corral
/// run` runs what it built: the handler greets, and refuses bad input as a
/// fatal error.
fn a_new_project_builds_and_runs(language: &str, build: &[&str], wasm: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path().join("hello-kit");
    let made = corral(
        "http://unused",
        None,
        &[
            "new",
            language,
            "hello-kit",
            "--dir",
            project.to_str().unwrap(),
        ],
        None,
    )
    .success();
    assert!(made.stdout.contains(build[0]), "{}", made.stdout);
    let again = corral(
        "http://unused",
        None,
        &[
            "new",
            language,
            "hello-kit",
            "--dir",
            project.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        again.code,
        Some(2),
        "a folder with files is not written over"
    );

    let mut command = Command::new(build[0]);
    command.args(&build[1..]).current_dir(&project);
    // A Rust project keeps its build in the plugins' target folder, so
    // its dependencies compile once per machine, not once per run.
    command.env_remove("CARGO_TARGET_DIR");
    let wasm = if language == "rust" {
        let target = std::env::var_os("CORRAL_PLUGINS_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| corral_tests::root().join("plugins/target"))
            .join("new-rust");
        command.env("CARGO_TARGET_DIR", &target);
        target.join(wasm)
    } else {
        project.join(wasm)
    };
    let status = command.status().expect("the build command runs");
    assert!(
        status.success(),
        "`{}` failed for {language}",
        build.join(" ")
    );

    let ran = corral(
        "http://unused",
        None,
        &[
            "run",
            wasm.to_str().unwrap(),
            "--input",
            r#"{"name": "Ada"}"#,
        ],
        None,
    )
    .success();
    assert!(ran.stdout.contains("Hello, Ada!"), "{}", ran.stdout);
    let refused = corral(
        "http://unused",
        None,
        &["run", wasm.to_str().unwrap(), "--input", r#"{"name": ""}"#],
        None,
    );
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(refused.stdout.contains("fatal"), "{}", refused.stdout);
}

#[test]
fn a_new_rust_project_builds_and_runs() {
    a_new_project_builds_and_runs(
        "rust",
        &["cargo", "build", "--release"],
        "wasm32-wasip2/release/hello_kit.wasm",
    );
}

#[test]
fn a_new_python_project_builds_and_runs() {
    a_new_project_builds_and_runs("python", &["./build.sh"], "hello-kit.wasm");
}

#[test]
fn a_new_javascript_project_builds_and_runs() {
    a_new_project_builds_and_runs("js", &["./build.sh"], "hello-kit.wasm");
}

/// The README's shell sessions (the quick start's first job, then the
/// workflow and the schedule), run by bash as written against a real
/// server: the one change is the admin key the README says to paste.
#[test]
fn the_readme_shell_sessions_run_as_written() {
    let readme = std::fs::read_to_string(corral_tests::root().join("README.md")).expect("README");
    let blocks: Vec<&str> = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect();
    let session = |marker: &str| {
        blocks
            .iter()
            .find(|block| block.contains(marker))
            .unwrap_or_else(|| panic!("no README block with {marker:?}"))
            .to_string()
    };
    let first = session("corral tenant create acme");
    assert!(first.contains("export CORRAL_TOKEN=corral_…"), "{first}");
    let script = format!(
        "set -euo pipefail\n{}\n{}\n",
        first.replace("corral_…", ADMIN),
        session("corral workflow apply pair.yaml")
    );
    let server = Server::start();
    let bin_dir = corral_bin().parent().expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The session runs where a reader would: in the checkout's root (its
    // plugin paths are relative to it, and `just plugins rust` builds them
    // there). It writes two YAML files there, removed after it.
    let written = ["pair.yaml", "nightly.yaml"].map(|f| corral_tests::root().join(f));
    assert!(
        written.iter().all(|f| !f.exists()),
        "a pair.yaml or nightly.yaml is in the checkout's root already"
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(corral_tests::root())
        .env("PATH", path)
        .env("CORRAL_SERVER", &server.url)
        .env_remove("CORRAL_TOKEN")
        .env_remove("CORRAL_TOKEN_FILE")
        .env_remove("CORRAL_PLUGINS_TARGET_DIR")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("bash runs");
    for file in &written {
        let _ = std::fs::remove_file(file);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README's session failed\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("<h1>Hello</h1>"), "{stdout}");
    assert!(stdout.contains("graph TD"), "{stdout}");
}
