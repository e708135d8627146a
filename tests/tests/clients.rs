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
