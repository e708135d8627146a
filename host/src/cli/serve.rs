//! `corral serve` and `corral migrate`.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseArgs, ServeArgs};
use crate::runtime::{Compiler, Runtime, RuntimeConfig};
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
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: args.storage.cache_dir.clone(),
        compiler: Compiler::current_exe()?,
    })?);
    let config = args.worker_config();
    tracing::info!(host = %config.host_id, concurrency = config.concurrency, backend = ?store.backend(), "corral is serving");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    Worker::new(store, runtime, config).run(shutdown).await;
    tracing::info!("stopped");
    Ok(0)
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
