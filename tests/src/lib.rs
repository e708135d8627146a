//! Test support: builds the real plugins and the real `corral` binary (never
//! committed, always built from source), and hands out runtimes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

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

/// Build the `corral` binary once per test process and return its path.
pub fn corral_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut command = Command::new(cargo());
        command.current_dir(root()).args([
            "build",
            "-p",
            "corral",
            "--bin",
            "corral",
            "--message-format=json",
        ]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
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

/// A runtime whose compiled-artifact cache is `cache_dir`.
pub fn runtime_in(cache_dir: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: cache_dir.to_path_buf(),
        compiler: Compiler::new(corral_bin()),
    })
    .expect("runtime starts")
}

/// One runtime shared by the tests of a process, caching compiled plugins
/// in a folder shared across runs (artifacts are keyed by digest and engine).
pub fn shared_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| runtime_in(&std::env::temp_dir().join("corral-test-artifacts")))
}

/// Load a built plugin into the shared runtime.
pub async fn load(name: &str) -> Arc<Plugin> {
    shared_runtime()
        .load(&plugin_bytes(name))
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}
