//! Compiling untrusted component bytes, bounded.
//!
//! Wasmtime does not treat compile-time denial of service as a bug: a small
//! module can be crafted to make Cranelift run for a long time or use a lot
//! of memory. So compilation never runs in the host process. It runs in a
//! child process (`corral __compile`, the same binary) that reads the bytes
//! on stdin and writes the compiled artifact on stdout, with:
//! - a size cap on the input, checked before anything else ([`MAX_COMPONENT_BYTES`]);
//! - a wall-clock limit, after which the child is killed ([`COMPILE_TIMEOUT`]);
//! - an address-space limit set with `setrlimit` before exec ([`COMPILE_ADDRESS_SPACE_BYTES`]);
//! - a cap on the artifact it may return ([`MAX_ARTIFACT_BYTES`]).
//!
//! A compile that breaks any of them fails the upload; the host is untouched.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::RuntimeError;

/// Largest component accepted. Interpreter components (Python, JavaScript)
/// are 10–40 MB; anything much larger is refused before it is parsed.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;
/// Longest a compile may take. Interpreter components take 20–30 s with
/// Cranelift on a 2-core machine; a crafted one may take forever.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(180);
/// Address space of the compiler process. Cranelift on a 40 MB component
/// peaks around 2 GB; a crafted module must not take the machine's memory.
pub const COMPILE_ADDRESS_SPACE_BYTES: u64 = 12 << 30;
/// Largest compiled artifact read back from the compiler.
pub const MAX_ARTIFACT_BYTES: usize = 1 << 30;
/// Most of the compiler's stderr kept for an error message.
const MAX_COMPILER_STDERR_BYTES: usize = 16 * 1024;
/// Compiler processes at once. Each takes up to all cores (Cranelift is
/// parallel) and gigabytes of memory for an interpreter component: more at
/// once only makes each slower and the host's memory the limit.
pub const MAX_CONCURRENT_COMPILES: usize = 2;
/// How long an upload waits for a compiler slot before it is refused with
/// 503 and `Retry-After` (the client uploads again later).
pub const COMPILE_QUEUE_WAIT: Duration = Duration::from_secs(30);
/// Exit status the compiler uses for "these bytes are not a valid component".
const EXIT_INVALID: i32 = 2;

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Bytes 4..8 of a core module: version 1, layer 0.
const CORE_MODULE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Bytes 6..8 of a component: layer 1 (bytes 4..6 are the pre-1.0 version).
const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];

/// The hidden subcommand of the `corral` binary that compiles.
pub const COMPILE_SUBCOMMAND: &str = "__compile";

/// Cheap checks done before the bytes reach a parser.
pub fn precheck(bytes: &[u8]) -> Result<(), RuntimeError> {
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(RuntimeError::TooLarge {
            size: bytes.len(),
            max: MAX_COMPONENT_BYTES,
        });
    }
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(RuntimeError::NotWasm);
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(RuntimeError::CoreModule);
    }
    if bytes[6..8] != COMPONENT_LAYER {
        return Err(RuntimeError::Invalid(format!(
            "unknown WebAssembly binary version/layer {:02x?}",
            &bytes[4..8]
        )));
    }
    Ok(())
}

/// How to start the compiler process, and how many may run at once
/// (clones share the slots).
#[derive(Debug, Clone)]
pub struct Compiler {
    program: PathBuf,
    timeout: Duration,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    queue_wait: Duration,
}

impl Compiler {
    /// The `corral` binary at `program` (its `__compile` subcommand).
    pub fn new(program: impl Into<PathBuf>) -> Compiler {
        Compiler {
            program: program.into(),
            timeout: COMPILE_TIMEOUT,
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_COMPILES)),
            queue_wait: COMPILE_QUEUE_WAIT,
        }
    }

    /// Other than [`MAX_CONCURRENT_COMPILES`] compiles at once, and another
    /// wait than [`COMPILE_QUEUE_WAIT`] for a slot.
    pub fn with_slots(mut self, slots: usize, queue_wait: Duration) -> Compiler {
        self.slots = std::sync::Arc::new(tokio::sync::Semaphore::new(slots));
        self.queue_wait = queue_wait;
        self
    }

    /// Use another wall-clock limit than [`COMPILE_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Compiler {
        self.timeout = timeout;
        self
    }

    /// The binary this process runs from: right for the `corral` binary itself.
    pub fn current_exe() -> Result<Compiler, RuntimeError> {
        std::env::current_exe()
            .map(Compiler::new)
            .map_err(|e| RuntimeError::Engine(format!("cannot find the corral binary: {e}")))
    }

    /// Compile `bytes` into an artifact for [`super::engine::runtime_engine`].
    pub async fn compile(&self, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        // The semaphore is never closed; a wait past `queue_wait` is Busy.
        let _slot = match tokio::time::timeout(self.queue_wait, self.slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                return Err(RuntimeError::Busy(format!(
                    "every compiler slot stayed busy for {} s",
                    self.queue_wait.as_secs()
                )));
            }
        };
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(COMPILE_SUBCOMMAND)
            // The compiler parses a tenant's bytes: it gets nothing of the
            // host's but those bytes. No environment (the host's holds
            // `CORRAL_ADMIN_TOKEN` and `DATABASE_URL`), no working folder
            // of the host's; its file descriptors are the three pipes
            // (every other one the host opens is close-on-exec).
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: COMPILE_ADDRESS_SPACE_BYTES as libc::rlim_t,
                    rlim_max: COMPILE_ADDRESS_SPACE_BYTES as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            RuntimeError::CompileFailed(format!("cannot start {}: {e}", self.program.display()))
        })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(RuntimeError::CompileFailed("compiler pipes missing".into()));
        };
        let input = bytes.to_vec();
        let feed = async move {
            // A compiler that dies early closes its stdin; its exit status says why.
            let _ = stdin.write_all(&input).await;
            drop(stdin);
        };
        let read_out = async move {
            let mut out = Vec::new();
            stdout
                .take(MAX_ARTIFACT_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        };
        let read_err = async move {
            let mut err = Vec::new();
            let _ = stderr
                .take(MAX_COMPILER_STDERR_BYTES as u64)
                .read_to_end(&mut err)
                .await;
            String::from_utf8_lossy(&err).trim().to_string()
        };
        let work = async {
            let ((), out, err) = tokio::join!(feed, read_out, read_err);
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err, status) = match tokio::time::timeout(self.timeout, work).await {
            Ok(done) => done,
            // Returning drops `child`, which kills the compiler (kill_on_drop).
            Err(_) => {
                return Err(RuntimeError::CompileTimeout {
                    millis: self.timeout.as_millis() as u64,
                });
            }
        };
        let status = status
            .map_err(|e| RuntimeError::CompileFailed(format!("waiting for the compiler: {e}")))?;
        match status.code() {
            Some(0) => {}
            Some(EXIT_INVALID) => return Err(RuntimeError::Invalid(err)),
            _ => {
                return Err(RuntimeError::CompileFailed(format!(
                    "the compiler stopped ({status}); it may have run out of memory: {err}"
                )));
            }
        }
        let out =
            out.map_err(|e| RuntimeError::CompileFailed(format!("reading the artifact: {e}")))?;
        if out.len() > MAX_ARTIFACT_BYTES {
            return Err(RuntimeError::CompileFailed(
                "compiled artifact is too large".into(),
            ));
        }
        Ok(out)
    }
}

/// The compiler process: component bytes on stdin, artifact on stdout.
/// Returns the process exit status.
pub fn compiler_main(args: impl Iterator<Item = OsString>) -> i32 {
    if args.count() != 0 {
        eprintln!("{COMPILE_SUBCOMMAND} takes no arguments");
        return 1;
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_COMPONENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
    {
        eprintln!("reading the component: {e}");
        return 1;
    }
    if let Err(e) = precheck(&bytes) {
        eprintln!("{e}");
        return EXIT_INVALID;
    }
    let engine = match super::engine::compile_engine() {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let artifact = match engine.precompile_component(&bytes) {
        Ok(artifact) => artifact,
        Err(e) => {
            eprintln!("{e:#}");
            return EXIT_INVALID;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(&artifact).and_then(|()| stdout.flush()) {
        eprintln!("writing the artifact: {e}");
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precheck_names_the_problem() {
        assert!(matches!(
            precheck(b"hello world"),
            Err(RuntimeError::NotWasm)
        ));
        assert!(matches!(precheck(b"\0asm"), Err(RuntimeError::NotWasm)));
        assert!(matches!(
            precheck(b"\0asm\x01\0\0\0"),
            Err(RuntimeError::CoreModule)
        ));
        assert!(precheck(b"\0asm\x0d\0\x01\0").is_ok());
        let huge = vec![0u8; MAX_COMPONENT_BYTES + 1];
        assert!(matches!(
            precheck(&huge),
            Err(RuntimeError::TooLarge { .. })
        ));
    }
}
