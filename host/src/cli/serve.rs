//! `corral serve` and `corral migrate`.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseArgs, ServeArgs, ServeMode};
use crate::http::ops::ops_router;
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::model::ApiKey;
use crate::runtime::{Compiler, Runtime, RuntimeConfig};
use crate::store::Store;
use crate::worker::Worker;

pub async fn migrate(args: DatabaseArgs) -> anyhow::Result<i32> {
    let store = crate::store::connect(&args.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    tracing::info!("migrations applied");
    Ok(0)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    if let Err(e) = args.validate() {
        bail!(e);
    }
    let store = crate::store::connect(&args.database.database_url)
        .await
        .context("connecting to the database")?;
    store.migrate().await.context("applying migrations")?;
    let secret_key = args.secret_key().map_err(anyhow::Error::msg)?.map(Arc::new);
    if secret_key.is_none() {
        tracing::warn!(
            "no secret key (CORRAL_SECRET_KEY or --secret-key-file): tenant secrets are off"
        );
    }
    let outbound_hosts = Arc::new(args.outbound.context().map_err(anyhow::Error::msg)?.hosts);
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    // One runtime: the API validates and compiles uploads with it, the worker runs them.
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: args.storage.cache_dir.clone(),
        compiler: Compiler::current_exe()?,
        pool: Default::default(),
        max_loaded_bytes: crate::runtime::loaded::MAX_LOADED_PLUGIN_BYTES,
    })?);

    let metrics = Arc::new(Metrics::new());
    // The admin key in plain text, when this process knows it (for --open).
    let mut known_admin_key = None;
    let mut launch = None;
    // A worker-only host serves /health, /ready and /metrics on the same port.
    let (app, listening) = if args.mode == ServeMode::Worker {
        let mut state = AppState::new(store.clone(), runtime.clone(), None, metrics.clone());
        state.secret_key = secret_key.clone();
        (ops_router(state), "the ops endpoints are listening")
    } else {
        let (admin_token_hash, generated) =
            admin_key(store.as_ref(), args.admin_token.as_deref()).await?;
        known_admin_key = generated.or_else(|| args.admin_token.clone());
        let mut state = AppState::new(
            store.clone(),
            runtime.clone(),
            admin_token_hash,
            metrics.clone(),
        );
        state.auth_failures = Arc::new(crate::http::auth_failures::AuthFailures::new(
            args.max_auth_failures,
        ));
        state.secret_key = secret_key.clone();
        state.outbound_hosts = outbound_hosts;
        launch = Some(state.launch.clone());
        (router(state), "the API is listening")
    };
    let address = std::net::SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    // With --port 0 the system picks the port: log the one bound.
    let address = listener.local_addr().unwrap_or(address);
    tracing::info!(%address, "{listening}");
    if args.mode != ServeMode::Worker {
        tracing::info!(
            "the dashboard is at http://{address}/ui: sign in with the admin key or a tenant's key"
        );
    }
    if let (true, Some(launch)) = (args.open, launch) {
        open_dashboard(address, &launch, known_admin_key.as_deref())?;
    }
    let api = tokio::spawn(crate::http::server::serve(
        listener,
        app,
        args.server_limits(),
        shutdown.clone(),
    ));

    // Every host evaluates the expressions of the runs it starts or
    // advances (an API host starts runs; a worker finishes step jobs).
    let evaluator = crate::worker::evaluator::spawn(store.clone(), shutdown.clone());
    if args.mode != ServeMode::Api {
        // Hosts that run jobs also fire cron schedules.
        let scheduler = tokio::spawn(crate::worker::scheduler::run(
            store.clone(),
            shutdown.clone(),
        ));
        let mut config = args.worker_config();
        config.secret_key = secret_key;
        tracing::info!(host = %config.host_id, concurrency = config.concurrency, backend = ?store.backend(), "the worker is running");
        Worker::with_metrics(store, runtime, config, metrics)
            .run(shutdown.clone())
            .await;
        scheduler.await.context("the scheduler task")?;
    } else {
        shutdown.cancelled().await;
    }
    evaluator.await.context("the evaluator task")?;
    api.await
        .context("the API task")?
        .context("serving the API")?;
    tracing::info!("stopped");
    Ok(0)
}

/// `--open`: print the dashboard's address (with a one-time sign-in code
/// when the admin key is known) and open it in a browser. No browser (a
/// server without a desktop) is not an error: the address is printed.
fn open_dashboard(
    address: std::net::SocketAddr,
    launch: &crate::http::launch::LaunchCode,
    admin_key: Option<&str>,
) -> anyhow::Result<()> {
    // A server listening on every address is reached on this machine by loopback.
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let mut url = format!(
        "http://{}/ui",
        std::net::SocketAddr::new(host, address.port())
    );
    if let Some(key) = admin_key {
        let code = launch.issue(key, std::time::Instant::now())?;
        url.push_str(&format!("#code={code}"));
        println!(
            "dashboard: {url} (signs in as the admin once, within {} minutes)",
            crate::http::launch::LAUNCH_CODE_TTL.as_secs() / 60
        );
    } else {
        println!("dashboard: {url}");
    }
    // The browser may take a while to start: not on the runtime's threads.
    std::thread::spawn(move || {
        if let Err(e) = opener::open_browser(&url) {
            tracing::warn!(error = %e, "could not open a browser; open the printed address");
        }
    });
    Ok(())
}

/// The admin key: `CORRAL_ADMIN_TOKEN` (kept only as a hash, in memory), or
/// on the first start against a database without one, a generated key
/// printed once (its hash is stored) and returned.
async fn admin_key(
    store: &dyn Store,
    token: Option<&str>,
) -> anyhow::Result<(Option<Arc<str>>, Option<String>)> {
    if let Some(token) = token {
        if token.len() < 16 {
            bail!("CORRAL_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok((Some(Arc::from(crate::keys::hash(token))), None));
    }
    if !store.admin_key_exists().await? {
        let key = crate::keys::generate()?;
        store
            .api_key_insert(&ApiKey {
                id: key.id,
                tenant_id: None,
                secret_hash: key.secret_hash,
                created_at: chrono::Utc::now(),
                revoked_at: None,
            })
            .await?;
        // Printed once, on stdout, for the operator; only its hash is stored.
        println!(
            "corral admin key (shown once; store it safely): {}",
            key.token
        );
        return Ok((None, Some(key.token)));
    }
    Ok((None, None))
}

/// Fire `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: no new claims; running attempts get their grace period");
    shutdown.cancel();
}
