//! Bounded capture of a guest's stdout, stderr and `host.log` lines into one
//! log. Past the bound, writes still succeed (so the guest is never trapped
//! or confused by a failing stdout) but the bytes are dropped and counted, and
//! the finished log ends with a truncation marker.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;

use super::sandbox::truncate_at_char_boundary;
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
    ///
    /// The work is bounded by the room left, never by what the guest sent:
    /// only the bytes that fit are looked at and copied (a NUL expands to
    /// three bytes as it is kept); the rest is only counted. A guest that
    /// writes 48 MiB of NULs into a 64 KiB log costs 64 KiB of work.
    pub fn append(&self, bytes: &[u8]) {
        self.append_parts(&[bytes]);
    }

    /// Append several pieces as one write (a `host.log` line), with
    /// [`LogBuffer::append`]'s bound on the work.
    fn append_parts(&self, parts: &[&[u8]]) {
        const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
        let mut inner = self.lock();
        let bound = inner.bound;
        let mut dropped: u64 = 0;
        for (i, part) in parts.iter().enumerate() {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                let room = bound.saturating_sub(inner.kept.len());
                if room == 0 {
                    break;
                }
                // Copy a NUL-free run that fits, then one NUL if it fits.
                let run = rest[..rest.len().min(room)]
                    .iter()
                    .position(|b| *b == 0)
                    .unwrap_or(rest.len().min(room));
                inner.kept.extend_from_slice(&rest[..run]);
                rest = &rest[run..];
                if rest.first() == Some(&0) {
                    if bound.saturating_sub(inner.kept.len()) < REPLACEMENT.len() {
                        break;
                    }
                    inner.kept.extend_from_slice(REPLACEMENT);
                    rest = &rest[1..];
                }
            }
            if !rest.is_empty() {
                // Full: the rest of this part and every later one are only counted.
                dropped += rest.len() as u64;
                dropped += parts[i + 1..].iter().map(|p| p.len() as u64).sum::<u64>();
                break;
            }
        }
        inner.dropped += dropped;
    }

    /// Append one `host.log` line as `[level] message\n` (no copy of the
    /// message beyond what fits).
    pub fn line(&self, level: &str, message: &str) {
        self.append_parts(&[b"[", level.as_bytes(), b"] ", message.as_bytes(), b"\n"]);
    }

    /// Whether anything was dropped so far.
    pub fn overflowed(&self) -> bool {
        self.lock().dropped > 0
    }

    /// The finished log. When bytes were dropped, the kept text is cut so
    /// that it and the marker together still fit in the bound.
    pub fn finish(&self) -> CapturedLog {
        let inner = self.lock();
        // Bytes that are not UTF-8 (a guest's raw stdout) become U+FFFD,
        // three bytes each: what grows past the bound is dropped too. Cuts
        // fall on character boundaries, so the text never grows again.
        let mut text = String::from_utf8_lossy(&inner.kept).into_owned();
        let mut dropped = inner.dropped;
        if text.len() > inner.bound {
            dropped += (text.len() - inner.bound) as u64;
        }
        if dropped > 0 {
            let marker = truncation_marker(dropped);
            truncate_at_char_boundary(&mut text, inner.bound.saturating_sub(marker.len()));
            text.push_str(&marker);
            truncate_at_char_boundary(&mut text, inner.bound);
        }
        CapturedLog {
            text,
            dropped_bytes: dropped,
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
    fn nul_floods_cost_only_the_room_left() {
        let log = LogBuffer::new(10);
        log.append(&[0u8; 100]);
        let done = log.finish();
        assert_eq!(done.dropped_bytes, 97, "three NULs (9 bytes) fit");
        assert!(done.text.len() <= 10);
        let log = LogBuffer::new(64);
        log.line("info", &"\0".repeat(1 << 20));
        log.line("info", "after");
        let done = log.finish();
        assert!(done.text.len() <= 64);
        assert_eq!(
            done.dropped_bytes,
            (1 << 20) - ((64 - 7) / 3) as u64 + 1 + "[info] after\n".len() as u64,
            "{}",
            done.dropped_bytes
        );
    }

    #[test]
    fn invalid_utf8_never_grows_past_the_bound() {
        let log = LogBuffer::new(100);
        log.append(&[0xFF; 100]);
        let done = log.finish();
        assert!(done.text.len() <= 100, "{}", done.text.len());
        assert!(done.truncated());
    }

    #[test]
    fn a_tiny_bound_still_holds() {
        let log = LogBuffer::new(8);
        log.append(&[b'x'; 100]);
        assert!(log.finish().text.len() <= 8);
    }
}
