//! Real `corral serve` processes on one PostgreSQL: two hosts drain 20,000
//! jobs exactly once; a host killed with SIGKILL loses no job; PostgreSQL
//! restarted mid-run loses no job; a workflow run survives its host killed
//! mid-run (on SQLite too: the one host killed and started again); the
//! scheduler fires each tick once. (Several hosts on one database is the
//! PostgreSQL deployment; SQLite is one host.)

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use corral::model::{JobState, Limits, NewJob, OutcomeKind};
use corral_tests::db::{Kind, TestDb};
use corral_tests::serve::{ServeProcess, scalar};
use corral_tests::{corral_bin, free_port, plugin_bytes, serve_api, stop};

const PATIENCE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_drain_20000_jobs_each_exactly_once() {
    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", 64).await;
    db.plugin("acme", "echo", &plugin_bytes("echo"), Limits::default(), 3)
        .await;
    for batch in 0..20 {
        let jobs: Vec<NewJob> = (0..1000)
            .map(|i| NewJob::new("echo", format!("{}", batch * 1000 + i)))
            .collect();
        db.store
            .job_insert_batch("acme", &jobs, chrono::Utc::now())
            .await
            .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let a = ServeProcess::start(&db.url, "host-a", cache.path(), &["--concurrency", "16"]);
    let b = ServeProcess::start(&db.url, "host-b", cache.path(), &["--concurrency", "16"]);
    db.wait_until_drained(Some("acme"), PATIENCE).await;
    a.terminate();
    b.terminate();

    let counts = db.store.job_counts(Some("acme")).await.unwrap();
    assert_eq!(
        counts.get(&JobState::Completed),
        Some(&20_000),
        "{counts:?}"
    );
    assert_eq!(
        scalar(&db.url, "SELECT count(*) FROM attempts").await,
        20_000,
        "one attempt per job"
    );
    assert_eq!(
        scalar(&db.url, "SELECT count(DISTINCT job_id) FROM attempts").await,
        20_000
    );
    assert_eq!(
        scalar(
            &db.url,
            "SELECT count(*) FROM jobs WHERE result::text <> input::text"
        )
        .await,
        0,
        "echo"
    );
    assert_eq!(
        scalar(&db.url, "SELECT count(DISTINCT host_id) FROM attempts").await,
        2,
        "both hosts worked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hosts_jobs_finish_on_another_host() {
    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", 64).await;
    db.plugin(
        "acme",
        "sleep",
        &plugin_bytes("sleep"),
        Limits::default(),
        3,
    )
    .await;
    let jobs: Vec<NewJob> = (0..6)
        .map(|_| NewJob::new("sleep", r#"{"ms": 3000}"#))
        .collect();
    let ids = db
        .store
        .job_insert_batch("acme", &jobs, chrono::Utc::now())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut doomed = ServeProcess::start(&db.url, "doomed", cache.path(), &["--concurrency", "4"]);
    for id in &ids[..1] {
        db.wait_for("acme", id.id, PATIENCE, |s| s == JobState::Running)
            .await;
    }
    doomed.kill();
    let running_when_killed =
        scalar(&db.url, "SELECT count(*) FROM jobs WHERE state = 'running'").await;
    assert!(running_when_killed >= 1);

    let survivor = ServeProcess::start(&db.url, "survivor", cache.path(), &["--concurrency", "4"]);
    db.wait_until_drained(Some("acme"), PATIENCE).await;
    survivor.terminate();

    for id in &ids {
        let job = db.store.job_get("acme", id.id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:?}");
    }
    let lost = scalar(
        &db.url,
        "SELECT count(*) FROM attempts WHERE outcome = 'lease_expired' AND host_id = 'doomed'",
    )
    .await;
    assert_eq!(
        lost, running_when_killed,
        "every lost attempt is recorded as lease_expired"
    );
    for id in &ids {
        let attempts = db.store.attempt_list("acme", id.id).await.unwrap();
        let last = attempts.last().expect("an attempt");
        assert_eq!(
            (last.outcome, last.host_id.as_str()),
            (OutcomeKind::Completed, "survivor")
        );
        assert!(
            attempts[..attempts.len() - 1]
                .iter()
                .all(|a| a.outcome == OutcomeKind::LeaseExpired)
        );
    }
}

/// A PostgreSQL cluster of the test's own, on a free port, run as the
/// `postgres` user (initdb refuses root), stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = tempfile::Builder::new()
            .prefix("corral-pg-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { dir, bin, port };
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(cluster.dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        cluster.as_postgres(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", &cluster.data()],
        );
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, action: &[&str]) {
        let data = self.data();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let mut args = vec!["-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60"];
        args.extend_from_slice(action);
        self.as_postgres("pg_ctl", &args);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_no_job() {
    let cluster = Cluster::start();
    let db = TestDb::on_postgres_server(&cluster.url("postgres")).await;
    db.tenant("acme", 64).await;
    db.plugin(
        "acme",
        "sleep",
        &plugin_bytes("sleep"),
        Limits::default(),
        5,
    )
    .await;
    let jobs: Vec<NewJob> = (0..40)
        .map(|_| NewJob::new("sleep", r#"{"ms": 300}"#))
        .collect();
    let ids = db
        .store
        .job_insert_batch("acme", &jobs, chrono::Utc::now())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let host = ServeProcess::start(&db.url, "host-a", cache.path(), &["--concurrency", "4"]);
    db.wait_for("acme", ids[0].id, PATIENCE, |s| s == JobState::Completed)
        .await;

    cluster.pg_ctl(&["-m", "fast", "restart"]);

    db.wait_until_drained(Some("acme"), PATIENCE).await;
    let log = host.log_text();
    host.terminate();
    for id in &ids {
        let job = db.store.job_get("acme", id.id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed, "{job:?}\nhost log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_hosts() {
    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", 3).await;
    db.plugin(
        "acme",
        "sleep",
        &plugin_bytes("sleep"),
        Limits::default(),
        3,
    )
    .await;
    let jobs: Vec<NewJob> = (0..12)
        .map(|_| NewJob::new("sleep", r#"{"ms": 300}"#))
        .collect();
    db.store
        .job_insert_batch("acme", &jobs, chrono::Utc::now())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let a = ServeProcess::start(&db.url, "host-a", cache.path(), &["--concurrency", "8"]);
    let b = ServeProcess::start(&db.url, "host-b", cache.path(), &["--concurrency", "8"]);
    db.wait_until_drained(Some("acme"), PATIENCE).await;
    a.terminate();
    b.terminate();
    // Each attempt ran within the time its job was `running` in the database,
    // so no more attempts may ever overlap than the quota allows.
    let most_at_once = scalar(
        &db.url,
        "SELECT max(n) FROM (SELECT (SELECT count(*) FROM attempts o \
             WHERE o.started_at <= a.started_at AND o.finished_at > a.started_at) AS n FROM attempts a) AS per_attempt",
    )
    .await;
    assert!(
        most_at_once <= 3,
        "{most_at_once} attempts of a tenant limited to 3 ran at once"
    );
    assert!(
        most_at_once >= 2,
        "the hosts did run attempts side by side ({most_at_once})"
    );
    assert_eq!(
        db.store
            .job_counts(Some("acme"))
            .await
            .unwrap()
            .get(&JobState::Completed),
        Some(&12)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_the_schema_and_reports_bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let out = Command::new(corral_bin())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = corral::store::connect(&url).await.unwrap();
    store.ready().await.expect("migrations applied");

    let out = Command::new(corral_bin())
        .arg("migrate")
        .env("DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must start with postgres:// or sqlite://")
    );
}

/// One HTTP/1.1 exchange over a plain socket: (status, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let response = corral_tests::http_exchange(port, method, path, &headers, body.unwrap_or(""));
    (response.status, response.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_serves_the_api_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("corral.db").display());

    // First start: no admin key anywhere, so one is generated and printed once.
    let port = free_port();
    let (child, printed) = serve_api(&url, port, dir.path(), None);
    let admin = printed
        .split_whitespace()
        .find(|w| w.starts_with("corral_"))
        .unwrap_or_else(|| panic!("an admin key is printed: {printed:?}"))
        .to_string();
    assert_eq!(http(port, "GET", "/health", None, None).0, 200);
    assert_eq!(http(port, "GET", "/ready", None, None).0, 200);
    assert_eq!(http(port, "GET", "/v1/tenants", None, None).0, 401);
    let (status, body) = http(
        port,
        "POST",
        "/v1/tenants",
        Some(&admin),
        Some(r#"{"id": "acme"}"#),
    );
    assert_eq!(status, 201, "{body}");
    stop(child);

    // Second start: the stored admin key still works and none is printed.
    let port = free_port();
    let (child, printed) = serve_api(&url, port, dir.path(), None);
    assert!(!printed.contains("corral_"), "{printed}");
    let (status, body) = http(port, "GET", "/v1/tenants", Some(&admin), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("acme"));
    stop(child);

    // With CORRAL_ADMIN_TOKEN set, that token is the one admin credential:
    // the generated key stops working.
    let port = free_port();
    let (child, _) = serve_api(
        &url,
        port,
        dir.path(),
        Some("an-operator-chosen-admin-token"),
    );
    let (status, body) = http(port, "GET", "/v1/tenants", Some(&admin), None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        http(
            port,
            "GET",
            "/v1/tenants",
            Some("an-operator-chosen-admin-token"),
            None
        )
        .0,
        200
    );
    stop(child);
}

/// A workflow run survives its host: SIGKILL while a fan-out step's
/// elements run, and another host (on SQLite: the same host restarted)
/// finishes the run with every step's job created exactly once (each step,
/// and each element, has one job).
async fn a_killed_hosts_run_resumes(kind: Kind) {
    use corral::store::{JobFilter, NewRun};
    use corral::workflow::RunState;
    use serde_json::json;
    let db = TestDb::new(kind).await;
    db.tenant("acme", 64).await;
    db.plugin(
        "acme",
        "sleep",
        &plugin_bytes("sleep"),
        Limits::default(),
        3,
    )
    .await;
    let spec = serde_json::from_value(json!({"steps": [
        {"name": "first", "plugin": "sleep", "input": {"ms": 10}},
        {"name": "fan", "plugin": "sleep", "depends_on": ["first"],
         "for_each": "input.naps", "max_parallel": 2},
        {"name": "last", "plugin": "sleep", "depends_on": ["fan"], "input": {"ms": 10}},
    ]}))
    .unwrap();
    db.store
        .workflow_insert("acme", "naps", &spec, chrono::Utc::now())
        .await
        .unwrap();
    let naps: Vec<_> = (0..4).map(|_| json!({"ms": 2000})).collect();
    let input = json!({ "naps": naps }).to_string();
    let run = db
        .store
        .run_start(
            "acme",
            &NewRun {
                workflow: "naps",
                version: None,
                input: &input,
                schedule: None,
                key: None,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .0;
    let cache = tempfile::tempdir().unwrap();
    let mut doomed = ServeProcess::start(&db.url, "doomed", cache.path(), &["--concurrency", "4"]);
    // Wait (on notifications) until the fan-out's elements run on the doomed host.
    let running = JobFilter {
        state: Some(JobState::Running),
        ..JobFilter::default()
    };
    let mut changes = db.changes();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let jobs = db
            .store
            .job_list("acme", &running, None, 100)
            .await
            .map(|page| page.jobs)
            .unwrap();
        if jobs
            .iter()
            .filter(|j| j.workflow_step.as_deref() == Some("fan"))
            .count()
            >= 2
        {
            break;
        }
        assert!(
            changes.next(deadline).await,
            "the fan-out never ran; log:\n{}",
            doomed.log_text()
        );
    }
    doomed.kill();

    // Another host (on SQLite: the host restarted) picks the run up once the
    // killed host's leases expire.
    let survivor = ServeProcess::start(&db.url, "survivor", cache.path(), &["--concurrency", "4"]);
    let finished = loop {
        let now = db.store.run_get("acme", run.id).await.unwrap().unwrap();
        if now.state.is_terminal() {
            break now;
        }
        assert!(
            changes.next(deadline).await,
            "run still {}; log:\n{}",
            now.state,
            survivor.log_text()
        );
    };
    survivor.terminate();
    assert_eq!(finished.state, RunState::Completed, "{finished:#?}");
    assert_eq!(finished.steps[1].items_done, 4);

    let jobs = db
        .store
        .job_list("acme", &JobFilter::default(), None, 100)
        .await
        .unwrap()
        .jobs;
    let per_step = |step: &str| {
        jobs.iter()
            .filter(|j| j.workflow_step.as_deref() == Some(step))
            .count()
    };
    assert_eq!(
        (
            jobs.len(),
            per_step("first"),
            per_step("fan"),
            per_step("last")
        ),
        (6, 1, 4, 1),
        "one job per step and per element"
    );
    let mut lost = 0;
    for job in &jobs {
        let attempts = db.store.attempt_list("acme", job.id).await.unwrap();
        lost += attempts
            .iter()
            .filter(|a| a.outcome == OutcomeKind::LeaseExpired && a.host_id == "doomed")
            .count();
    }
    assert!(
        lost >= 2,
        "the killed host's attempts expired and were retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hosts_workflow_run_resumes_with_no_step_lost_or_duplicated_on_postgres() {
    a_killed_hosts_run_resumes(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hosts_workflow_run_resumes_with_no_step_lost_or_duplicated_on_sqlite() {
    a_killed_hosts_run_resumes(Kind::Sqlite).await;
}

/// The scheduler runs in the real binary: a schedule firing every second
/// makes jobs that a worker-mode host runs (two hosts, each tick once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_fires_schedules_once_per_tick() {
    let db = TestDb::new(Kind::Postgres).await;
    db.tenant("acme", 64).await;
    db.plugin("acme", "echo", &plugin_bytes("echo"), Limits::default(), 3)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let a = ServeProcess::start(&db.url, "host-a", cache.path(), &[]);
    let b = ServeProcess::start(&db.url, "host-b", cache.path(), &[]);
    let mut events = db.store.subscribe();
    let spec = serde_json::from_value(serde_json::json!({
        "cron": "* * * * * *", "target": {"plugin": "echo", "input": {"tick": true}}
    }))
    .unwrap();
    db.store
        .schedule_put("acme", "every-second", &spec, chrono::Utc::now())
        .await
        .unwrap();
    // Wait (on notifications) for three completed ticks' jobs.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let done = db
            .store
            .job_counts(Some("acme"))
            .await
            .unwrap()
            .get(&JobState::Completed)
            .copied()
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => events = db.store.subscribe(),
            Err(_) => panic!(
                "{done} scheduled jobs completed; logs:\n{}\n{}",
                a.log_text(),
                b.log_text()
            ),
        }
    }
    db.store
        .schedule_pause("acme", "every-second", true, chrono::Utc::now())
        .await
        .unwrap();
    a.terminate();
    b.terminate();
    assert_eq!(
        scalar(&db.url, "SELECT count(*) FROM schedule_ticks").await,
        scalar(&db.url, "SELECT count(*) FROM jobs").await,
        "one job per fired tick"
    );
    assert_eq!(
        scalar(
            &db.url,
            "SELECT count(*) - count(DISTINCT tick) FROM schedule_ticks"
        )
        .await,
        0,
        "no tick fired twice"
    );
}
