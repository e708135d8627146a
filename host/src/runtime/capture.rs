//! Bounded capture of a guest's stdout, stderr and `host.log` lines into one
//! log. Past the bound, writes still succeed (so the guest is never trapped
//! or confused by a failing stdout) but the bytes are dropped and counted, and
//! the finished log ends with a truncation marker.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much one `check-write` lets the guest write before asking again.
/// Any value works since writes never block; larger means fewer host calls.
const WRITE_PERMIT_BYTES: usize = 1024 * 1024;

/// The log of one attempt, shared by the WASI stdio streams and `host.log`.
#[derive(Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    kept: Vec<u8>,
    bound: usize,
    dropped: u64,
}

/// The log as stored with an attempt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CapturedLog {
    /// The text, at most `bound` bytes including the truncation marker.
    pub text: String,
    /// Bytes the guest wrote past the bound and that were dropped.
    pub dropped_bytes: u64,
}

impl CapturedLog {
    pub fn truncated(&self) -> bool {
        self.dropped_bytes > 0
    }
}

impl LogBuffer {
    pub fn new(bound: usize) -> LogBuffer {
        LogBuffer {
            inner: Arc::new(Mutex::new(LogInner {
                kept: Vec::new(),
                bound,
                dropped: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A poisoned lock only means a panic elsewhere while appending bytes;
        // the buffer is still a valid byte vector.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append raw bytes (stdout/stderr), keeping what fits. NUL bytes
    /// become U+FFFD: the log is stored as text, and PostgreSQL text cannot
    /// hold a NUL.
    pub fn append(&self, bytes: &[u8]) {
        let replaced;
        let bytes = if bytes.contains(&0) {
            replaced = bytes
                .iter()
                .flat_map(|b| {
                    if *b == 0 {
                        &b"\xEF\xBF\xBD"[..]
                    } else {
                        std::slice::from_ref(b)
                    }
                })
                .copied()
                .collect::<Vec<u8>>();
            &replaced[..]
        } else {
            bytes
        };
        let mut inner = self.lock();
        let room = inner.bound.saturating_sub(inner.kept.len());
        let keep = bytes.len().min(room);
        inner.kept.extend_from_slice(&bytes[..keep]);
        inner.dropped += (bytes.len() - keep) as u64;
    }

    /// Append one `host.log` line as `[level] message\n`.
    pub fn line(&self, level: &str, message: &str) {
        let mut line = Vec::with_capacity(level.len() + message.len() + 4);
        line.push(b'[');
        line.extend_from_slice(level.as_bytes());
        line.extend_from_slice(b"] ");
        line.extend_from_slice(message.as_bytes());
        line.push(b'\n');
        self.append(&line);
    }

    /// Whether anything was dropped so far.
    pub fn overflowed(&self) -> bool {
        self.lock().dropped > 0
    }

    /// The finished log. When bytes were dropped, the kept text is cut so
    /// that it and the marker together still fit in the bound.
    pub fn finish(&self) -> CapturedLog {
        let inner = self.lock();
        let mut kept = inner.kept.clone();
        if inner.dropped > 0 {
            let marker = truncation_marker(inner.dropped);
            let cut = inner.bound.saturating_sub(marker.len()).min(kept.len());
            kept.truncate(cut);
            kept.extend_from_slice(marker.as_bytes());
            kept.truncate(inner.bound);
        }
        CapturedLog {
            text: String::from_utf8_lossy(&kept).into_owned(),
            dropped_bytes: inner.dropped,
        }
    }
}

fn truncation_marker(dropped: u64) -> String {
    format!("\n[corral: log truncated, {dropped} more bytes dropped]\n")
}

/// A WASI stdout/stderr that writes into a [`LogBuffer`].
#[derive(Clone)]
pub struct LogStream(pub LogBuffer);

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.0.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_bound() {
        let log = LogBuffer::new(100);
        log.line("info", "hello");
        log.append(b"out\n");
        let done = log.finish();
        assert_eq!(done.text, "[info] hello\nout\n");
        assert!(!done.truncated());
    }

    #[test]
    fn truncates_with_a_marker_within_the_bound() {
        let log = LogBuffer::new(200);
        for _ in 0..1000 {
            log.append(b"0123456789");
        }
        let done = log.finish();
        assert!(done.text.len() <= 200, "{}", done.text.len());
        assert!(done.text.contains("log truncated"));
        assert_eq!(done.dropped_bytes, 10_000 - 200);
    }

    #[test]
    fn nul_bytes_are_replaced() {
        let log = LogBuffer::new(100);
        log.append(b"a\0b");
        log.line("info", "c\0d");
        assert_eq!(log.finish().text, "a\u{FFFD}b[info] c\u{FFFD}d\n");
    }

    #[test]
    fn a_tiny_bound_still_holds() {
        let log = LogBuffer::new(8);
        log.append(&[b'x'; 100]);
        assert!(log.finish().text.len() <= 8);
    }
}
