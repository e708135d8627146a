//! The one `wasmtime::Engine` of a process, and the epoch ticker that drives
//! wall-clock deadlines and cooperative yielding.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::RuntimeError;

/// Attempts that may run at once in one process. Each holds a pooled
/// instance slot and a fiber stack; past this, attempts wait for a slot
/// instead of failing, so a burst cannot exhaust the pool.
pub const MAX_CONCURRENT_ATTEMPTS: u32 = 256;

/// Core instances one component may create. Interpreter components
/// (componentize-py, componentize-js) use a dozen or so; Rust ones 2–4.
/// Bounds the pool slots one plugin can take.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Linear memories one component may define.
pub const MAX_MEMORIES_PER_COMPONENT: u32 = 8;
/// Tables one component may define.
pub const MAX_TABLES_PER_COMPONENT: u32 = 16;
/// Elements of one table. Interpreters have tens of thousands of functions in
/// their indirect-call table; each element costs a pointer of reserved memory.
pub const MAX_TABLE_ELEMENTS: usize = 200_000;
/// The largest one linear memory can ever get (per-plugin limits are enforced
/// below this by the store limiter). Bounds the pool's address-space reservation.
pub const MAX_LINEAR_MEMORY_BYTES: usize = 4 << 30;
/// Size of one core instance's runtime metadata (`VMContext`). Interpreters
/// with many imports and globals need more than wasmtime's 1 MiB default.
pub const MAX_CORE_INSTANCE_METADATA_BYTES: usize = 4 << 20;
/// The most of a used memory slot reset by copying instead of handed back
/// to the kernel: up to this many bytes of the pages the last attempt wrote
/// stay resident. It bounds what idle slots hold: at most
/// `total_memories` x this (128 MiB with the default pool), whatever the
/// guests do; a guest that writes more has the rest of its pages handed
/// back as before. Small plugins (`echo`) fit whole.
pub const MEMORY_KEEP_RESIDENT_BYTES: usize = 256 * 1024;
/// The same for a table slot.
pub const TABLE_KEEP_RESIDENT_BYTES: usize = 16 * 1024;
/// Native stack for wasm frames. A guest that recurses deeper traps with a
/// stack overflow instead of crashing the host.
pub const MAX_WASM_STACK_BYTES: usize = 1 << 20;
/// Fiber stack per running attempt: the wasm stack plus room for host calls.
pub const ASYNC_STACK_BYTES: usize = MAX_WASM_STACK_BYTES + (1 << 20);

/// How often the epoch advances. Every tick each running guest yields to the
/// executor (so one guest cannot hog a worker thread) and checks its deadline
/// and cancellation; it is therefore also the resolution of timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Codegen settings shared by the runtime engine and the compile-only engine
/// in the compiler process. Everything that affects the compiled artifact must
/// be set here, or artifacts from one would not load in the other.
fn base_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .max_wasm_stack(MAX_WASM_STACK_BYTES)
        .async_stack_size(ASYNC_STACK_BYTES)
        .memory_init_cow(true)
        // Compilation happens in a separate process (see `compile`), which
        // is already bounded; within it, use both cores.
        .parallel_compilation(true);
    config
}

/// How many of each pooled resource the engine holds in all. A component
/// takes one component instance and stack, and as many core instances,
/// memories and tables as it defines: plugins that define many can use up
/// a pool before the attempts do. Such an attempt is handed back without
/// using up one of the job's attempts (see `AttemptReport::host_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// Attempts at once (component instances and fiber stacks).
    pub attempts: u32,
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

impl Default for PoolSizes {
    /// 8 core instances, 2 memories and 4 tables per attempt on average.
    fn default() -> Self {
        PoolSizes {
            attempts: MAX_CONCURRENT_ATTEMPTS,
            core_instances: MAX_CONCURRENT_ATTEMPTS * 8,
            memories: MAX_CONCURRENT_ATTEMPTS * 2,
            tables: MAX_CONCURRENT_ATTEMPTS * 4,
        }
    }
}

/// The engine used to run plugins: pooling allocator, copy-on-write images.
pub fn runtime_engine(sizes: PoolSizes) -> Result<Engine, RuntimeError> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(sizes.attempts)
        .total_core_instances(sizes.core_instances)
        .total_memories(sizes.memories)
        .total_tables(sizes.tables)
        .total_stacks(sizes.attempts)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(MAX_LINEAR_MEMORY_BYTES)
        .max_core_instance_size(MAX_CORE_INSTANCE_METADATA_BYTES)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        // No `async_stack_keep_resident`: it only sizes the zeroing of fiber
        // stacks, which is off (wasm cannot read its native stack), so it
        // did nothing.
        // Reset a slot's pages that the last attempt wrote, found with
        // Linux's PAGEMAP_SCAN (6.7 and later), by copying them back from
        // the image, rather than handing the slot's memory back with
        // `madvise`: that flushed the TLB of every core the process ran on
        // at every attempt's end, and again at each copy-on-write fault of
        // the next attempt. With it, `corral serve` needs half the CPU per
        // job or less (docs/benchmarks.md, "Slots reset in place"). `Auto`:
        // on a kernel without the ioctl, the reset is what it was.
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = base_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// An engine that only compiles: same codegen, no pool to reserve.
pub fn compile_engine() -> Result<Engine, RuntimeError> {
    Engine::new(&base_config()).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}

/// A stable name for the engine's codegen settings and wasmtime version,
/// used in cache keys so an artifact is only loaded by an engine that can run it.
pub fn compatibility_key(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<EpochTicker, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        // A weak engine reference: the ticker must not keep the engine alive.
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("corral-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
