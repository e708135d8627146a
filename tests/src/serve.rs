//! Real `corral serve` worker processes for tests, with their logs kept.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sqlx::Connection;

use crate::corral_bin;

/// A `corral serve` process, killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl ServeProcess {
    /// A worker with short leases (2 s), heartbeats and janitor passes
    /// (300 ms), quick polls and backoff, and `extra` flags.
    pub fn start(database_url: &str, host_id: &str, cache: &Path, extra: &[&str]) -> ServeProcess {
        let mut flags = vec![
            "--lease-secs",
            "2",
            "--heartbeat-ms",
            "300",
            "--janitor-ms",
            "300",
            "--poll-ms",
            "500",
            "--backoff-base-ms",
            "50",
            "--backoff-cap-secs",
            "1",
        ];
        flags.extend_from_slice(extra);
        ServeProcess::start_with(database_url, host_id, cache, &flags)
    }

    /// A worker with exactly `flags` beside its mode, port and host id.
    pub fn start_with(
        database_url: &str,
        host_id: &str,
        cache: &Path,
        flags: &[&str],
    ) -> ServeProcess {
        let log = cache.join(format!("{host_id}.log"));
        // Appended: a host restarted under the same id keeps one log.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(corral_bin())
            .args(["serve", "--mode", "worker"])
            // Several workers share this machine: each takes a free port for its ops routes.
            .args(["--port", "0"])
            .args(["--host-id", host_id])
            .args(flags)
            .env("DATABASE_URL", database_url)
            .env("CORRAL_CACHE_DIR", cache.join("artifacts"))
            // `CORRAL_BENCH_RUST_LOG=info,sqlx::query=debug`: every statement
            // with its time, to profile a drain.
            .env(
                "RUST_LOG",
                std::env::var("CORRAL_BENCH_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("corral serve starts");
        ServeProcess { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "serve exited with {status}; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One value of one query, on PostgreSQL.
pub async fn scalar(url: &str, sql: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect(sql)
}
