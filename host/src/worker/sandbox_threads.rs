//! The threads attempts run on: a tokio runtime of their own, apart from
//! the one that serves the API, claims jobs, writes outcomes and keeps
//! leases alive.
//!
//! A guest computes until the next epoch tick (`EPOCH_TICK`) before it
//! yields. On one shared runtime, a host full of computing guests makes
//! every other task wait its turn behind them: a tenant's API call, the
//! claim of a job just enqueued, the write of outcomes, a heartbeat. On
//! threads of their own, at a lower CPU priority ([`SANDBOX_NICE`]), guests
//! get the CPU the host's own work leaves, and a host task that wakes runs
//! at once instead of queueing behind guests.

use tokio::runtime::{Builder, Handle, Runtime};

/// The nice value of sandbox threads (the host's other threads keep the
/// process's). Guests are the host's bulk work and a tenant controls how
/// long they compute; the host's own tasks are short and everyone's
/// latency depends on them, so they go first when both want the CPU. The
/// kernel still gives niced threads every cycle nobody else wants.
pub const SANDBOX_NICE: i32 = 10;

/// The most sandbox threads a host may ask for (`--sandbox-threads`): a
/// mistyped count must not start a million threads.
pub const MAX_SANDBOX_THREADS: usize = 1024;

/// One sandbox thread per core: guests are CPU work, and more threads than
/// cores would only take turns.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A runtime whose threads run attempts. Dropping it stops its threads
/// without waiting (its tasks are the worker's attempts, which the worker
/// has joined by then).
pub struct SandboxThreads {
    runtime: Option<Runtime>,
}

impl SandboxThreads {
    /// `threads` worker threads named `corral-sandbox`, each at
    /// [`SANDBOX_NICE`].
    pub fn start(threads: usize) -> std::io::Result<SandboxThreads> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("corral-sandbox")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(SandboxThreads {
            runtime: Some(runtime),
        })
    }

    /// Where attempts are spawned.
    pub fn handle(&self) -> Option<&Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }
}

impl Drop for SandboxThreads {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its threads end, which tokio
        // refuses inside another runtime (where workers are dropped).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lower the calling thread's CPU priority to [`SANDBOX_NICE`]. A failure
/// leaves the thread at the process's priority: slower to yield to the
/// host's tasks, nothing worse.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a nice value belongs to a thread: PRIO_PROCESS with a
        // thread id changes that thread only.
        // SAFETY: gettid and setpriority take no pointers and touch no memory.
        let changed = unsafe {
            let tid = libc::syscall(libc::SYS_gettid);
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SANDBOX_NICE)
        };
        if changed != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower a sandbox thread's priority"
            );
        }
    }
}
