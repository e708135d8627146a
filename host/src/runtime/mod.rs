//! The sandbox runtime: one engine per process, compiled plugins cached on
//! disk and in memory, and a fresh, limited `Store` per attempt.
//!
//! - [`engine`]: the engine's configuration, pool sizes, the epoch ticker.
//! - [`compile`]: bounded compilation in a child process.
//! - [`artifacts`]: the on-disk cache of compiled components.
//! - [`world`]: whether a component fits the `job-handler` world.
//! - [`sandbox`]: per-attempt state, `host` imports, deadline checks.
//! - [`limiter`]: the memory/table/instance limiter.
//! - [`capture`]: bounded stdout/stderr/log capture.
//! - [`attempt`]: run one attempt and classify its outcome.

pub mod artifacts;
pub mod attempt;
pub mod bindings;
pub mod capture;
pub mod compile;
pub mod engine;
pub mod limiter;
pub mod loaded;
pub mod outbound;
pub mod sandbox;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

pub use attempt::{AttemptReport, AttemptRequest, JobInput};
pub use capture::CapturedLog;
pub use compile::Compiler;
pub use engine::PoolSizes;
pub use sandbox::{Progress, ProgressSink};

use crate::model::Digest;
use bindings::JobHandlerPre;
use sandbox::HostState;

/// Errors at the runtime boundary: why a component cannot be loaded. A
/// guest's misbehaviour is never one of these; it is an attempt outcome.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the component is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("not a WebAssembly binary (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component; build for the wasm32-wasip2 target \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("the component does not fit the world corral:plugin/job-handler@0.1.0: {0}")]
    WrongWorld(String),
    #[error("compiling the component took longer than {millis} ms and was stopped")]
    CompileTimeout { millis: u64 },
    #[error("compiling the component failed: {0}")]
    CompileFailed(String),
    /// Every compiler slot stayed busy (`MAX_CONCURRENT_COMPILES`): not the
    /// component's fault; try again later.
    #[error("the host is busy compiling other components: {0}")]
    Busy(String),
    #[error("compiled-artifact cache: {0}")]
    Cache(String),
    #[error("engine: {0}")]
    Engine(String),
}

/// How to build a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled artifacts are kept across restarts.
    pub cache_dir: PathBuf,
    /// How to start the compiler process.
    pub compiler: Compiler,
    /// The instance pool (`PoolSizes::default()` unless a test wants a small one).
    pub pool: engine::PoolSizes,
    /// Bytes of compiled plugins kept in memory ([`loaded::MAX_LOADED_PLUGIN_BYTES`]).
    pub max_loaded_bytes: usize,
}

/// A plugin compiled, checked against the world, and ready to instantiate.
pub struct Plugin {
    digest: Digest,
    pre: JobHandlerPre<HostState>,
    /// How it was obtained, for metrics and benchmarks.
    pub source: LoadSource,
    /// Time spent compiling or loading it.
    pub load_time: Duration,
    /// Bytes of its compiled artifact: what it costs the in-memory cache.
    pub size: usize,
}

/// Where a plugin's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    Compiled,
    DiskCache,
}

impl Plugin {
    pub fn digest(&self) -> Digest {
        self.digest
    }
}

/// The sandbox runtime of one process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    artifacts: ArtifactCacheHandle,
    compiler: Compiler,
    loaded: loaded::LoadedPlugins,
    slots: Semaphore,
    total_slots: usize,
    _ticker: engine::EpochTicker,
}

type ArtifactCacheHandle = Arc<artifacts::ArtifactCache>;

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = engine::runtime_engine(config.pool)?;
        let mut linker = Linker::new(&engine);
        let link_err =
            |e: wasmtime::Error| RuntimeError::Engine(format!("linking host imports: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
        // Offered to every plugin; each request is decided by its attempt's
        // grant (deny-all by default). Components that do not import it
        // are unaffected.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link_err)?;
        // Corral's own interfaces; the WASI ones were linked above.
        bindings::corral::plugin::types::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(link_err)?;
        bindings::corral::plugin::host::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(link_err)?;
        let artifacts =
            artifacts::ArtifactCache::open(&config.cache_dir, engine::compatibility_key(&engine))?;
        let ticker = engine::EpochTicker::start(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            artifacts: Arc::new(artifacts),
            compiler: config.compiler,
            loaded: loaded::LoadedPlugins::new(config.max_loaded_bytes),
            slots: Semaphore::new(config.pool.attempts as usize),
            total_slots: config.pool.attempts as usize,
            _ticker: ticker,
        })
    }

    /// Validate, compile (or load from cache) and check a component. Loading
    /// the same bytes again returns the plugin already in memory; concurrent
    /// loads of the same bytes compile once.
    pub async fn load(&self, bytes: &[u8]) -> Result<Arc<Plugin>, RuntimeError> {
        self.load_digested(bytes, Digest::of(bytes)).await
    }

    /// [`Runtime::load`] for a caller that hashed the bytes already (an
    /// upload checks its quota by digest first): `digest` must be
    /// `Digest::of(bytes)`, since it keys both caches.
    pub async fn load_digested(
        &self,
        bytes: &[u8],
        digest: Digest,
    ) -> Result<Arc<Plugin>, RuntimeError> {
        compile::precheck(bytes)?;
        let cell = self.loaded.cell(digest);
        let plugin = cell
            .get_or_try_init(|| self.load_uncached(digest, bytes))
            .await
            .cloned();
        self.loaded.settle(digest, &cell);
        plugin
    }

    /// The plugin with this digest if it is in memory or its compiled
    /// artifact is in the disk cache; None when only its bytes can make it.
    /// A restarted host loads an interpreter plugin this way without
    /// fetching and hashing its tens of megabytes first (the cache only
    /// holds artifacts our compiler made from bytes of this digest).
    pub async fn load_cached(&self, digest: Digest) -> Result<Option<Arc<Plugin>>, RuntimeError> {
        let cell = self.loaded.cell(digest);
        if let Some(plugin) = cell.get() {
            return Ok(Some(plugin.clone()));
        }
        let started = std::time::Instant::now();
        let read = self.read_cached(digest, started).await;
        let plugin = match read {
            // A concurrent `load` may have filled the cell meanwhile: keep one.
            Ok(Some(plugin)) => Ok(Some(cell.get_or_init(|| async { plugin }).await.clone())),
            other => other,
        };
        self.loaded.settle(digest, &cell);
        plugin
    }

    /// The plugin of a stored component, by its digest: from memory, else
    /// from the disk cache, else compiled from the bytes `fetch` returns,
    /// fetched only then and once for every caller waiting on the digest
    /// (an interpreter plugin is tens of megabytes). Bytes of another
    /// digest (a corrupt store) are refused. This is the one cache of
    /// compiled plugins: workers and uploads share it.
    pub async fn load_stored<E, Fut>(
        &self,
        digest: Digest,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Arc<Plugin>, E>
    where
        Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
        E: From<RuntimeError>,
    {
        let cell = self.loaded.cell(digest);
        let plugin = cell
            .get_or_try_init(|| async {
                // A cache that cannot be read is not fatal: the bytes still
                // make the plugin, so say why and go on.
                match self.read_cached(digest, std::time::Instant::now()).await {
                    Ok(Some(plugin)) => return Ok(plugin),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "loading a cached plugin failed; compiling from its bytes");
                    }
                }
                let bytes = fetch().await?;
                let actual = Digest::of(&bytes);
                if actual != digest {
                    return Err(RuntimeError::Invalid(format!(
                        "stored component has digest {actual}, expected {digest}"
                    ))
                    .into());
                }
                compile::precheck(&bytes)?;
                Ok(self.load_uncached(digest, &bytes).await?)
            })
            .await
            .cloned();
        self.loaded.settle(digest, &cell);
        plugin
    }

    /// The plugin from its cached artifact, if one is there and loads.
    async fn read_cached(
        &self,
        digest: Digest,
        started: std::time::Instant,
    ) -> Result<Option<Arc<Plugin>>, RuntimeError> {
        let cache = self.artifacts.clone();
        let cached = tokio::task::spawn_blocking(move || cache.read(&digest))
            .await
            .map_err(|e| RuntimeError::Cache(e.to_string()))??;
        let Some(artifact) = cached else {
            return Ok(None);
        };
        match self.deserialize(&artifact) {
            Ok(component) => {
                let pre = world::fit(&self.engine, &self.linker, &component)?;
                Ok(Some(Arc::new(Plugin {
                    digest,
                    pre,
                    source: LoadSource::DiskCache,
                    load_time: started.elapsed(),
                    size: artifact.len(),
                })))
            }
            Err(e) => {
                tracing::warn!(%digest, error = %e, "dropping an unloadable cached artifact");
                self.artifacts.remove(&digest);
                Ok(None)
            }
        }
    }

    async fn load_uncached(
        &self,
        digest: Digest,
        bytes: &[u8],
    ) -> Result<Arc<Plugin>, RuntimeError> {
        let started = std::time::Instant::now();
        if let Some(plugin) = self.read_cached(digest, started).await? {
            return Ok(plugin);
        }
        let artifact = self.compiler.compile(bytes).await?;
        let component = self.deserialize(&artifact)?;
        let pre = world::fit(&self.engine, &self.linker, &component)?;
        let size = artifact.len();
        // Only components that fit are kept on disk.
        let cache = self.artifacts.clone();
        tokio::task::spawn_blocking(move || cache.write(&digest, &artifact))
            .await
            .map_err(|e| RuntimeError::Cache(e.to_string()))??;
        Ok(Arc::new(Plugin {
            digest,
            pre,
            source: LoadSource::Compiled,
            load_time: started.elapsed(),
            size,
        }))
    }

    fn deserialize(&self, artifact: &[u8]) -> Result<Component, RuntimeError> {
        // SAFETY: artifacts come only from our own compiler process, either
        // just now or through the host-owned cache directory (see `artifacts`).
        // wasmtime still checks the header and engine compatibility.
        unsafe { Component::deserialize(&self.engine, artifact) }.map_err(|e| {
            RuntimeError::CompileFailed(format!("loading the compiled artifact: {e:#}"))
        })
    }

    /// Sandbox slots (pooled instances) in use, and their number.
    pub fn sandbox_slots(&self) -> (usize, usize) {
        let total = self.total_slots;
        (total.saturating_sub(self.slots.available_permits()), total)
    }

    /// Plugins compiled or loaded into memory (one per distinct component).
    pub fn plugins_loaded(&self) -> usize {
        self.loaded.usage().0
    }

    /// Bytes of the compiled plugins in memory (bounded by `max_loaded_bytes`).
    pub fn plugins_loaded_bytes(&self) -> usize {
        self.loaded.usage().1
    }

    /// Drop a plugin from memory (its bytes are gone from the store); an
    /// attempt running it keeps it until it ends.
    pub fn forget(&self, digest: Digest) {
        self.loaded.forget(digest);
    }

    /// Run one attempt. Waits for a free sandbox slot first.
    pub async fn run(&self, plugin: &Plugin, request: AttemptRequest) -> AttemptReport {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = self.slots.acquire().await;
        attempt::run(&self.engine, &plugin.pre, request).await
    }
}
