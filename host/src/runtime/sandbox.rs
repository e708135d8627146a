//! The per-attempt sandbox: the state a `Store` holds, the `host` imports,
//! and the deadline/cancellation check run at every epoch tick.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreContextMut, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::LogLevel;
use super::bindings::corral::plugin as wit;
use super::capture::{LogBuffer, LogStream};
use super::limiter::MemoryLimiter;
use super::outbound::{HttpGrant, Outbound};

/// Longest progress message kept; longer ones are cut. A guest could
/// otherwise push megabytes through every progress call.
pub const MAX_PROGRESS_MESSAGE_BYTES: usize = 1024;
/// Longest value `host.config` returns is whatever the operator stored; keys
/// longer than this are refused without a lookup.
pub const MAX_CONFIG_KEY_BYTES: usize = 256;

pub use crate::model::Progress;

/// Called on every progress report, while the guest waits. Must be quick.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Why the host stopped a running guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Interrupt {
    #[error("wall-clock deadline reached")]
    Timeout,
    #[error("job cancelled")]
    Cancelled,
}

/// Everything one attempt's `Store` holds.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) log: LogBuffer,
    config: Arc<BTreeMap<String, String>>,
    progress_sink: Option<ProgressSink>,
    pub(super) last_progress: Option<Progress>,
    deadline: Instant,
    cancel: CancellationToken,
    http: wasmtime_wasi_http::WasiHttpCtx,
    pub(super) outbound: Outbound,
}

impl HostState {
    pub fn new(
        memory_bytes: u64,
        log: LogBuffer,
        config: Arc<BTreeMap<String, String>>,
        progress_sink: Option<ProgressSink>,
        deadline: Instant,
        cancel: CancellationToken,
        http: HttpGrant,
    ) -> HostState {
        // Deny by default: WasiCtxBuilder::new() grants no arguments, no
        // environment, no preopened directories, no socket addresses and no
        // name lookups, and stdin is closed. We only redirect stdout/stderr.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(LogStream(log.clone()))
            .stderr(LogStream(log.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            log,
            config,
            progress_sink,
            last_progress: None,
            deadline,
            cancel,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            outbound: Outbound::new(http),
        }
    }

    /// Whether the attempt must stop now, and why.
    pub(super) fn interrupt(&self) -> Option<Interrupt> {
        if self.cancel.is_cancelled() {
            Some(Interrupt::Cancelled)
        } else if Instant::now() >= self.deadline {
            Some(Interrupt::Timeout)
        } else {
            None
        }
    }
}

/// The epoch-deadline callback: at every tick, stop the guest if its time is
/// up or its job was cancelled; otherwise yield to the executor so other
/// attempts on the same thread make progress, and check again next tick.
pub(super) fn on_epoch_tick(
    ctx: StoreContextMut<'_, HostState>,
) -> wasmtime::Result<UpdateDeadline> {
    match ctx.data().interrupt() {
        Some(why) => Err(why.into()),
        None => Ok(UpdateDeadline::Yield(1)),
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// wasi:http goes through [`Outbound`]: the plugin's allow-list, the
/// network policy and the attempt's limits decide every request.
impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl wit::types::Host for HostState {}

impl wit::host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.line(level.as_str(), &message);
    }

    fn progress(&mut self, percent: u8, mut message: String) {
        truncate_at_char_boundary(&mut message, MAX_PROGRESS_MESSAGE_BYTES);
        let progress = Progress {
            percent: percent.min(100),
            message,
        };
        if let Some(sink) = &self.progress_sink {
            sink(&progress);
        }
        self.last_progress = Some(progress);
    }

    fn config(&mut self, key: String) -> Option<String> {
        if key.len() > MAX_CONFIG_KEY_BYTES {
            return None;
        }
        self.config.get(&key).cloned()
    }
}

/// Cut `text` to at most `max` bytes without splitting a character.
pub fn truncate_at_char_boundary(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_characters() {
        let mut s = "aé".repeat(10);
        truncate_at_char_boundary(&mut s, 4);
        assert_eq!(s, "aéa");
    }
}
