//! The dashboard in a real browser: Debian's Chromium, driven through its
//! chromedriver by a WebDriver client, against the real `corral serve` on
//! both backends. Each test saves screenshots under the target directory
//! (`<target>/tmp/screenshots/`); docs/dashboard.md shows a few of them.
//!
//! Waits are on the page's own state: a script that resolves when a
//! MutationObserver sees the awaited text, with a generous timeout as the
//! failure path.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use corral::model::{Limits, NewJob};
use corral_tests::db::TestDb;
use corral_tests::{finish_all, free_port, plugin_path, serve_api_env, stop};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

corral_tests::on_both_backends!(
    signing_in_takes_a_good_key_and_refuses_a_bad_one,
    a_tenant_cannot_open_another_tenants_job_by_its_address,
    the_jobs_list_is_filtered,
    a_running_jobs_page_follows_its_state_and_progress_live,
    dead_letters_are_replayed_in_bulk_from_their_view,
    a_plugin_is_uploaded_and_a_bad_one_refused,
    a_workflow_runs_diagram_shows_each_steps_state,
    markup_in_a_plugins_log_and_error_shows_as_text,
    an_admin_edits_quotas_and_keys_and_acts_as_a_tenant,
    serve_open_signs_the_browser_in_as_the_admin_once,
);

const ADMIN: &str = "dashboard-test-admin-token-0123456789";
/// How long any one thing the browser waits for may take, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// A `corral serve`, a chromedriver and a browser session on it.
struct Dashboard {
    server: Option<Child>,
    driver: Child,
    browser: Client,
    url: String,
    http: reqwest::Client,
    backend: &'static str,
    _cache: tempfile::TempDir,
}

impl Dashboard {
    /// The API and a worker (`mode` `all`), or the API alone (`api`).
    async fn start(db: &TestDb, mode: &str) -> Dashboard {
        Dashboard::start_with(db, mode, &[], &[]).await
    }

    /// [`Dashboard::start`] with more flags and environment variables.
    async fn start_with(
        db: &TestDb,
        mode: &str,
        flags: &[&str],
        envs: &[(&str, &str)],
    ) -> Dashboard {
        let cache = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut all_flags = vec!["--mode", mode, "--poll-ms", "200"];
        all_flags.extend_from_slice(flags);
        let (server, _) = serve_api_env(&db.url, port, cache.path(), Some(ADMIN), &all_flags, envs);
        let (driver, webdriver) = chromedriver();
        let mut options = serde_json::Map::new();
        options.insert("browserName".into(), json!("chrome"));
        options.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": std::env::var("CORRAL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                // Root in a container has no user namespace for Chromium's
                // sandbox; the pages are our own.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(options)
            .connect(&webdriver)
            .await
            .expect("a Chromium session through chromedriver");
        browser
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(PATIENCE),
                Some(PATIENCE),
                Some(Duration::ZERO),
            ))
            .await
            .expect("timeouts");
        Dashboard {
            server: Some(server),
            driver,
            browser,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            backend: if db.url.starts_with("sqlite") {
                "sqlite"
            } else {
                "postgres"
            },
            _cache: cache,
        }
    }

    /// A call to the API with `key` (JSON in, JSON out; panics unless 2xx).
    async fn api(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    /// A tenant and one of its keys.
    async fn tenant(&self, id: &str) -> String {
        self.api(
            ADMIN,
            reqwest::Method::POST,
            "/v1/tenants",
            Some(json!({"id": id})),
        )
        .await;
        let key = self
            .api(
                ADMIN,
                reqwest::Method::POST,
                &format!("/v1/tenants/{id}/keys"),
                None,
            )
            .await;
        key["key"].as_str().unwrap().to_string()
    }

    /// Upload the test plugin `name`.
    async fn push(&self, key: &str, name: &str) {
        let response = self
            .http
            .post(format!("{}/v1/plugins/{name}", self.url))
            .bearer_auth(key)
            .header("content-type", "application/wasm")
            .body(std::fs::read(plugin_path(name)).expect("plugin built"))
            .send()
            .await
            .expect("upload");
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    async fn job(&self, key: &str, body: Value) -> String {
        let job = self
            .api(key, reqwest::Method::POST, "/v1/jobs", Some(body))
            .await;
        job["id"].as_str().unwrap().to_string()
    }

    async fn open(&self, route: &str) {
        self.browser
            .goto(&format!("{}/ui#{route}", self.url))
            .await
            .expect("the page loads");
    }

    async fn sign_in(&self, key: &str) {
        self.open("/").await;
        self.wait_for("#key", "").await;
        let input = self.browser.find(Locator::Css("#key")).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(key).await.unwrap();
        self.click("#sign-in").await;
        self.wait_for("#sign-out", "Sign out").await;
    }

    async fn click(&self, css: &str) {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Wait until an element matching `css` holds `text` (any text when
    /// empty): a MutationObserver in the page answers as soon as it does.
    async fn wait_for(&self, css: &str, text: &str) {
        let outcome = self
            .browser
            .execute_async(
                r#"const [css, text, done] = arguments;
                   const holds = () => [...document.querySelectorAll(css)].some((e) => e.textContent.includes(text));
                   if (holds()) { done(true); return; }
                   const seen = new MutationObserver(() => { if (holds()) { seen.disconnect(); done(true); } });
                   seen.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });"#,
                vec![json!(css), json!(text)],
            )
            .await;
        if let Err(e) = outcome {
            let page = self.text("body").await;
            panic!("waited for `{css}` holding {text:?}: {e}\npage:\n{page}");
        }
    }

    /// Wait until no element matches `css`.
    async fn wait_gone(&self, css: &str) {
        let outcome = self
            .browser
            .execute_async(
                r#"const [css, done] = arguments;
                   if (!document.querySelector(css)) { done(true); return; }
                   const seen = new MutationObserver(() => { if (!document.querySelector(css)) { seen.disconnect(); done(true); } });
                   seen.observe(document, { subtree: true, childList: true });"#,
                vec![json!(css)],
            )
            .await;
        if let Err(e) = outcome {
            let page = self.text("body").await;
            panic!("waited for `{css}` to go: {e}\npage:\n{page}");
        }
    }

    /// Save a screenshot as `<target>/tmp/screenshots/<backend>-<name>.png`.
    async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.browser.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{}-{name}.png", self.backend)), png).unwrap();
    }

    /// End the browser session, stop the driver, and stop the server
    /// (which must exit cleanly).
    async fn close(mut self) {
        let _ = self.browser.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Some(server) = self.server.take() {
            stop(server);
        }
    }
}

/// A test that failed before `close` leaves no server or driver behind.
impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Start chromedriver on a free port; its WebDriver address once it says
/// it listens.
fn chromedriver() -> (Child, String) {
    let port = free_port();
    let mut child = Command::new(
        std::env::var("CORRAL_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()),
    )
    .arg(format!("--port={port}"))
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("chromedriver (Debian's chromium-driver; scripts/setup installs it)");
    let stdout = child.stdout.take().expect("stdout");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("started successfully") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready.recv_timeout(PATIENCE).expect("chromedriver starts");
    (child, format!("http://127.0.0.1:{port}"))
}

/// `corral serve --open` opens `$BROWSER` at an address with a one-time
/// code: here `$BROWSER` is a script that hands the address over a FIFO
/// (the test blocks reading it), and Chromium then opens it.
async fn serve_open_signs_the_browser_in_as_the_admin_once(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("opened");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let script = dir.path().join("browser");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s\\n' \"$1\" > '{}'\n", fifo.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (opened_tx, opened) = std::sync::mpsc::channel();
    let reader = fifo.clone();
    std::thread::spawn(move || {
        // Blocks until the script opens the FIFO to write.
        let file = std::fs::File::open(reader).expect("the FIFO opens");
        if let Some(Ok(line)) = BufReader::new(file).lines().next() {
            let _ = opened_tx.send(line);
        }
    });
    let ui = Dashboard::start_with(
        &db,
        "api",
        &["--open"],
        &[("BROWSER", &script.display().to_string())],
    )
    .await;
    let url = opened
        .recv_timeout(PATIENCE)
        .expect("the browser is opened");
    let code = url
        .split_once("/ui#code=")
        .map(|(_, code)| code.to_string())
        .unwrap_or_else(|| panic!("no code in {url}"));
    assert!(url.starts_with(&ui.url), "{url}");

    ui.browser.goto(&url).await.expect("the page loads");
    ui.wait_for("#tenant-picker", "").await;
    ui.wait_for("main", "Choose a tenant").await;
    let address = ui.browser.current_url().await.unwrap();
    assert!(!address.as_str().contains(&code), "{address}");
    // The code worked once.
    let again = ui
        .http
        .post(format!("{}/ui/session", ui.url))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
    let body: Value = again.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "unknown, used or expired sign-in code"
    );
    // Neither or both of key and code: 422.
    let both = ui
        .http
        .post(format!("{}/ui/session", ui.url))
        .json(&json!({"code": code, "key": ADMIN}))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 422);
    ui.close().await;
}

async fn signing_in_takes_a_good_key_and_refuses_a_bad_one(db: TestDb) {
    let ui = Dashboard::start(&db, "api").await;
    let key = ui.tenant("acme").await;
    ui.open("/").await;
    ui.wait_for("#key", "").await;
    ui.browser
        .find(Locator::Css("#key"))
        .await
        .unwrap()
        .send_keys("corral_0123456789abcdef_wrong")
        .await
        .unwrap();
    ui.click("#sign-in").await;
    ui.wait_for("#signin-error", "unknown or revoked API key")
        .await;
    ui.screenshot("sign-in-refused").await;

    ui.sign_in(&key).await;
    ui.wait_for("#who", "tenant acme").await;
    ui.wait_for("#count-available", "available").await;
    // The key itself is in no cookie a script can read.
    let cookies = ui
        .browser
        .execute("return document.cookie;", vec![])
        .await
        .unwrap();
    assert!(
        !cookies.as_str().unwrap_or_default().contains("corral_"),
        "{cookies}"
    );
    ui.screenshot("signed-in").await;
    ui.close().await;
}

async fn a_tenant_cannot_open_another_tenants_job_by_its_address(db: TestDb) {
    let ui = Dashboard::start(&db, "api").await;
    let acme = ui.tenant("acme").await;
    let other = ui.tenant("other").await;
    ui.push(&acme, "echo").await;
    let id = ui
        .job(
            &acme,
            json!({"plugin": "echo", "input": {"secret": "acme's"}}),
        )
        .await;
    ui.sign_in(&other).await;
    ui.open(&format!("/jobs/{id}")).await;
    ui.wait_for("main [role=alert]", &format!("no job `{id}`"))
        .await;
    assert!(!ui.text("main").await.contains("acme's"));
    ui.screenshot("another-tenants-job").await;
    ui.close().await;
}

async fn the_jobs_list_is_filtered(db: TestDb) {
    let ui = Dashboard::start(&db, "all").await;
    let key = ui.tenant("acme").await;
    ui.push(&key, "echo").await;
    ui.push(&key, "fatal-error").await;
    let good = ui.job(&key, json!({"plugin": "echo", "input": 1})).await;
    let bad = ui
        .job(
            &key,
            json!({"plugin": "fatal-error", "input": {"message": "quota exceeded"}}),
        )
        .await;
    ui.sign_in(&key).await;
    ui.open("/jobs").await;
    // Both finish (the page reloads its list on each visit).
    for (id, state) in [(&good, "completed"), (&bad, "dead")] {
        ui.open(&format!("/jobs/{id}")).await;
        ui.wait_for("#job-state", state).await;
    }
    ui.open("/jobs").await;
    ui.wait_for("#jobs", &good).await;
    ui.browser
        .find(Locator::Css("select[name=state]"))
        .await
        .unwrap()
        .select_by_value("dead")
        .await
        .unwrap();
    ui.click("#apply-filters").await;
    // The unfiltered list holds `bad` too: wait for the filtered one.
    ui.wait_gone(&format!("#jobs tr[data-job='{good}']")).await;
    ui.wait_for("#jobs", &bad).await;
    let table = ui.text("#jobs").await;
    assert!(!table.contains(&good), "{table}");
    assert!(table.contains("quota exceeded"), "{table}");
    ui.screenshot("jobs-filtered").await;
    // The overview counts both.
    ui.open("/").await;
    ui.wait_for("main .card", "dead, last hour").await;
    ui.screenshot("overview").await;
    ui.close().await;
}

async fn a_running_jobs_page_follows_its_state_and_progress_live(db: TestDb) {
    let ui = Dashboard::start(&db, "all").await;
    let key = ui.tenant("acme").await;
    ui.push(&key, "sleep").await;
    ui.sign_in(&key).await;
    // Due in a moment, so the page opens before it runs.
    let run_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let id = ui
        .job(
            &key,
            json!({"plugin": "sleep", "input": {"ms": 2500}, "run_at": run_at}),
        )
        .await;
    ui.open(&format!("/jobs/{id}")).await;
    ui.wait_for("#job-state", "scheduled").await;
    // A reload would drop this mark.
    ui.browser
        .execute("window.corralTestMark = 1;", vec![])
        .await
        .unwrap();
    ui.wait_for("#job-state", "running").await;
    ui.wait_for("#job-progress", "0% sleeping").await;
    ui.screenshot("job-running").await;
    ui.wait_for("#job-state", "completed").await;
    let mark = ui
        .browser
        .execute("return window.corralTestMark;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, json!(1), "the page was reloaded");
    ui.close().await;
}

async fn dead_letters_are_replayed_in_bulk_from_their_view(db: TestDb) {
    // The API alone: the replays stay waiting for the test to see.
    let ui = Dashboard::start(&db, "api").await;
    let key = ui.tenant("acme").await;
    db.plugin("acme", "fatal-error", b"component", Limits::default(), 1)
        .await;
    let jobs: Vec<NewJob> = (0..4)
        .map(|i| NewJob::new("fatal-error", i.to_string()))
        .collect();
    db.store
        .job_insert_batch("acme", &jobs, chrono::Utc::now())
        .await
        .unwrap();
    finish_all(&db, Err("upstream said 503")).await;

    ui.sign_in(&key).await;
    ui.open("/dead").await;
    ui.wait_for("#dead-groups", "upstream said 503").await;
    ui.screenshot("dead-letters").await;
    ui.click(".bar [data-bulk=replay]").await;
    ui.wait_for("[data-bulk-status=replay]", "4 jobs match")
        .await;
    ui.screenshot("dead-letters-confirm").await;
    ui.click("[data-bulk-confirm=replay]").await;
    ui.wait_for("[data-bulk-status=replay]", "Replayed 4 jobs.")
        .await;
    let waiting = ui
        .api(&key, reqwest::Method::GET, "/v1/jobs?state=available", None)
        .await;
    let replays = waiting["jobs"].as_array().unwrap();
    assert_eq!(replays.len(), 4, "{waiting}");
    assert!(replays.iter().all(|j| j["replay_of"].is_string()));
    // The view no longer lists them.
    ui.open("/").await;
    ui.open("/dead").await;
    ui.wait_for("main", "No dead letters.").await;
    ui.close().await;
}

async fn a_plugin_is_uploaded_and_a_bad_one_refused(db: TestDb) {
    let ui = Dashboard::start(&db, "api").await;
    let key = ui.tenant("acme").await;
    ui.sign_in(&key).await;
    ui.open("/plugins").await;
    ui.wait_for("#upload", "").await;
    let not_wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_wasm.path(), b"#!/bin/sh\necho not a component\n").unwrap();
    for (file, expected) in [
        (not_wasm.path().to_path_buf(), "invalid_component"),
        (plugin_path("echo"), "Uploaded echo version 1."),
    ] {
        let name = ui.browser.find(Locator::Css("#upload-name")).await.unwrap();
        name.clear().await.unwrap();
        name.send_keys("echo").await.unwrap();
        ui.browser
            .find(Locator::Css("#upload-file"))
            .await
            .unwrap()
            .send_keys(&file.display().to_string())
            .await
            .unwrap();
        ui.click("#upload button[type=submit]").await;
        ui.wait_for("#upload-status", expected).await;
        if expected == "invalid_component" {
            ui.screenshot("plugin-refused").await;
        }
    }
    ui.wait_for("#plugins", "sha256:").await;
    ui.screenshot("plugins").await;

    // The plugin's page lists its versions: upload a second (other bytes)
    // there, then delete the first after confirming.
    ui.click("#plugins a").await;
    ui.wait_for("#versions [data-version='1']", "sha256:").await;
    ui.browser
        .find(Locator::Css("#upload-file"))
        .await
        .unwrap()
        .send_keys(&plugin_path("step").display().to_string())
        .await
        .unwrap();
    ui.click("#upload button[type=submit]").await;
    ui.wait_for("#upload-status", "Uploaded echo version 2.")
        .await;
    ui.wait_for("#versions [data-version='2']", "sha256:").await;
    ui.screenshot("plugin-versions").await;
    // Version 1 goes; version 2, which a waiting job is pinned to, cannot
    // go: the refusal is shown.
    ui.job(&key, json!({"plugin": "echo", "input": {}})).await;
    for version in ["1", "2"] {
        let delete = format!("#versions [data-version='{version}'] button");
        ui.click(&delete).await;
        ui.wait_for(&delete, "Confirm").await;
        ui.click(&delete).await;
        if version == "1" {
            ui.wait_gone("#versions [data-version='1']").await;
        }
    }
    ui.wait_for(
        "#version-status",
        "conflict: version 2 of plugin `echo` is pinned",
    )
    .await;
    let versions = ui
        .browser
        .execute(
            "return [...document.querySelectorAll('#versions [data-version]')].map((r) => r.dataset.version)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(versions, json!(["2"]));
    ui.close().await;
}

async fn a_workflow_runs_diagram_shows_each_steps_state(db: TestDb) {
    let ui = Dashboard::start(&db, "all").await;
    let key = ui.tenant("acme").await;
    ui.push(&key, "step").await;
    ui.push(&key, "fatal-error").await;
    ui.api(
        &key,
        reqwest::Method::PUT,
        "/v1/workflows/pipeline",
        Some(json!({"steps": [
            {"name": "fetch", "plugin": "step"},
            {"name": "parse", "plugin": "step", "depends_on": ["fetch"]},
            {"name": "refuse", "plugin": "fatal-error", "depends_on": ["fetch"], "on_failure": "skip"},
            {"name": "publish", "plugin": "step", "depends_on": ["parse", "refuse"]},
        ]})),
    )
    .await;
    let run = ui
        .api(
            &key,
            reqwest::Method::POST,
            "/v1/workflows/pipeline/runs",
            Some(json!({"input": {}})),
        )
        .await;
    let id = run["id"].as_str().unwrap().to_string();
    ui.sign_in(&key).await;
    ui.open(&format!("/runs/{id}")).await;
    ui.wait_for("#dag [data-step=publish]", "skipped").await;
    for (step, state) in [
        ("fetch", "completed"),
        ("parse", "completed"),
        ("refuse", "failed"),
    ] {
        let drawn = ui
            .browser
            .find(Locator::Css(&format!("#dag [data-step={step}]")))
            .await
            .unwrap()
            .attr("data-state")
            .await
            .unwrap();
        assert_eq!(drawn.as_deref(), Some(state), "{step}");
    }
    ui.screenshot("workflow-run").await;

    // A run open in the page follows its changes over its event stream:
    // cancelled from the page, whose button only asks, it is redrawn
    // without a reload.
    ui.push(&key, "sleep").await;
    ui.api(
        &key,
        reqwest::Method::PUT,
        "/v1/workflows/slow",
        Some(json!({"steps": [
            {"name": "nap", "plugin": "sleep", "input": {"ms": 600000}},
            {"name": "after", "plugin": "step", "depends_on": ["nap"]},
        ]})),
    )
    .await;
    let run = ui
        .api(
            &key,
            reqwest::Method::POST,
            "/v1/workflows/slow/runs",
            Some(json!({"input": {}})),
        )
        .await;
    let id = run["id"].as_str().unwrap().to_string();
    ui.open(&format!("/runs/{id}")).await;
    ui.wait_for("#dag [data-step=nap]", "running").await;
    ui.browser
        .execute("window.corralTestMark = 1;", vec![])
        .await
        .unwrap();
    ui.click("#cancel-run").await;
    ui.wait_for("#run-state", "cancelled").await;
    ui.wait_for("#dag [data-step=after]", "cancelled").await;
    let mark = ui
        .browser
        .execute("return window.corralTestMark;", vec![])
        .await
        .unwrap();
    assert_eq!(mark, json!(1), "the page was not reloaded");
    ui.close().await;
}

async fn markup_in_a_plugins_log_and_error_shows_as_text(db: TestDb) {
    let ui = Dashboard::start(&db, "all").await;
    let key = ui.tenant("acme").await;
    ui.push(&key, "fatal-error").await;
    let log = "<script>window.corralXss = 1</script><img src=x onerror=\"window.corralXss = 2\">";
    let id = ui
        .job(
            &key,
            json!({"plugin": "fatal-error", "input": {"log": log, "message": "<img src=y onerror=\"window.corralXss = 3\">"}}),
        )
        .await;
    ui.sign_in(&key).await;
    ui.open(&format!("/jobs/{id}")).await;
    ui.wait_for("#job-state", "dead").await;
    ui.wait_for("pre.log", "<script>window.corralXss = 1</script>")
        .await;
    ui.wait_for("#job-error", "<img src=y").await;
    assert_inert(&ui).await;
    ui.screenshot("markup-as-text").await;
    ui.open("/dead").await;
    ui.wait_for("#dead-groups", "<img src=y").await;
    assert_inert(&ui).await;
    ui.close().await;
}

/// No script of the plugin's text ran, and none of it became an element.
async fn assert_inert(ui: &Dashboard) {
    let seen = ui
        .browser
        .execute(
            "return [window.corralXss === undefined, document.querySelectorAll('main img, main script').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        seen,
        json!([true, 0]),
        "a script from the plugin's text ran, or its markup was parsed"
    );
}

async fn an_admin_edits_quotas_and_keys_and_acts_as_a_tenant(db: TestDb) {
    let ui = Dashboard::start(&db, "api").await;
    let key = ui.tenant("acme").await;
    ui.push(&key, "echo").await;
    ui.job(
        &key,
        json!({"plugin": "echo", "input": 1, "run_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    ui.sign_in(ADMIN).await;
    ui.open("/tenants").await;
    ui.wait_for("#tenants", "acme").await;
    ui.open("/tenants/acme").await;
    ui.wait_for("#keys", "—").await;
    // Quotas, edited as JSON and checked by the API.
    let quotas = ui.browser.find(Locator::Css("#quotas")).await.unwrap();
    let mut edited: Value =
        serde_json::from_str(&quotas.prop("value").await.unwrap().unwrap()).unwrap();
    edited["max_concurrency"] = json!(7);
    quotas.clear().await.unwrap();
    quotas.send_keys(&edited.to_string()).await.unwrap();
    ui.click("#save-quotas").await;
    ui.wait_for("#tenant-status", "Quotas saved.").await;
    let tenant = ui
        .api(ADMIN, reqwest::Method::GET, "/v1/tenants/acme", None)
        .await;
    assert_eq!(tenant["quotas"]["max_concurrency"], 7, "{tenant}");
    // A new key is shown once and works; revoking it stops it.
    ui.click("#new-key-button").await;
    ui.wait_for("#new-key", "corral_").await;
    let new_key = ui.text("#new-key").await;
    ui.api(&new_key, reqwest::Method::GET, "/v1/jobs", None)
        .await;
    ui.screenshot("admin-tenant").await;
    ui.open("/").await;
    ui.open("/tenants/acme").await;
    let key_id = new_key.split('_').nth(1).unwrap().to_string();
    ui.wait_for("#keys", &key_id).await;
    ui.click(&format!("#keys tr[data-key='{key_id}'] button"))
        .await;
    ui.wait_for(&format!("#keys tr[data-key='{key_id}'][data-revoked]"), "")
        .await;
    let refused = ui
        .http
        .get(format!("{}/v1/jobs", ui.url))
        .bearer_auth(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Acting as the tenant shows its jobs.
    ui.open("/tenants").await;
    ui.wait_for("#tenants", "Act as").await;
    ui.click("#tenants button").await;
    ui.wait_for("#count-scheduled", "1").await;
    ui.close().await;
}
