//! Host-side bindings generated from `wit/` (the one source of the contract).

wasmtime::component::bindgen!({
    world: "job-handler",
    path: "../wit",
    exports: { default: async },
    // wasi:http (and the wasi:io it uses) is wasmtime-wasi-http's, linked
    // by `Runtime::new` with Corral's hooks (runtime/outbound).
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

pub use self::corral::plugin::host::LogLevel;
pub use self::corral::plugin::types::{Job, JobError};

/// The fully-qualified name of the export every plugin must provide.
pub const HANDLER_EXPORT: &str = "corral:plugin/handler@0.1.0";
/// The world plugins are built against.
pub const WORLD: &str = "corral:plugin/job-handler@0.1.0";

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}
