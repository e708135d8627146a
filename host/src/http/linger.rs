//! Lingering close: a connection whose request body the server did not
//! read is drained before it is closed, so the client gets the answer.
//!
//! Handlers refuse before reading a body whenever they can (an upload's
//! limits over the tenant's quotas, a `Content-Length` over its cap, a bad
//! key): a refusal should not cost an upload. hyper then closes the
//! connection with the rest of the body unread, and a socket closed with
//! unread bytes is reset (RST) by the kernel, not closed: the client, still
//! sending, got "broken pipe" or "connection reset" instead of the 422 or
//! 413 already on its way, more often the larger the upload. So, as Apache
//! and nginx do, such a connection sends its end of the stream (FIN) once
//! the answer is out, then reads and discards what the client still sends
//! until the client closes, for at most [`LINGER_TIME`] and
//! [`LINGER_BYTES`], and only then closes. A connection whose bodies were
//! all read closes at once, as before. A drain that a bound ended (the
//! client neither stopped sending nor closed) is logged by the server once
//! the connection's slots are free: a client that behaves so is worth an
//! operator's look.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Longest a refused client's connection is drained before it is closed
/// anyway: it holds a connection slot meanwhile, so a client that keeps
/// sending after its answer cannot hold it for longer than this.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// Most bytes drained from one connection: twice the largest body a client
/// may send (a component of `MAX_COMPONENT_BYTES`). Discarded as they come,
/// in a buffer of [`DRAIN_CHUNK`]; the client pays for every one of them.
pub const LINGER_BYTES: u64 = 2 * crate::runtime::compile::MAX_COMPONENT_BYTES as u64;
/// Bytes read at a time while draining.
const DRAIN_CHUNK: usize = 16 * 1024;

/// A connection's lingering, shared by its bodies, its socket and the
/// server's task for it: whether a request body was dropped unread, and
/// which bound, if any, ended the drain.
#[derive(Clone, Default)]
pub struct Linger(Arc<State>);

#[derive(Default)]
struct State {
    unread: AtomicBool,
    /// 0 while no bound ended the drain, else a [`CutOff`] + 1.
    cut_off: AtomicU8,
}

/// The bound that ended a drain before the client closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutOff {
    /// [`LINGER_TIME`]: the client kept the connection open.
    Time,
    /// [`LINGER_BYTES`]: the client kept sending.
    Bytes,
}

impl CutOff {
    pub fn as_str(self) -> &'static str {
        match self {
            CutOff::Time => "time",
            CutOff::Bytes => "bytes",
        }
    }
}

impl Linger {
    fn mark_unread(&self) {
        self.0.unread.store(true, Ordering::Release);
    }

    fn is_unread(&self) -> bool {
        self.0.unread.load(Ordering::Acquire)
    }

    fn cut(&self, bound: CutOff) {
        self.0.cut_off.store(bound as u8 + 1, Ordering::Release);
    }

    /// The bound that ended this connection's drain, if one did.
    pub fn cut_off(&self) -> Option<CutOff> {
        match self.0.cut_off.load(Ordering::Acquire) {
            1 => Some(CutOff::Time),
            2 => Some(CutOff::Bytes),
            _ => None,
        }
    }
}

/// A request body that marks its connection's [`Linger`] unread when it is
/// dropped before its end.
pub struct Watched {
    inner: Incoming,
    ended: bool,
    linger: Linger,
}

impl Watched {
    pub fn new(inner: Incoming, linger: Linger) -> Watched {
        Watched {
            inner,
            ended: false,
            linger,
        }
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.ended && !self.inner.is_end_stream() {
            self.linger.mark_unread();
        }
    }
}

/// The server's end of a connection, drained before it is closed when a
/// request body was left unread (its [`Linger`]).
pub struct Lingering {
    stream: TcpStream,
    linger: Linger,
    drain: Option<Drain>,
}

/// How much more draining a closing connection gets.
struct Drain {
    until: Pin<Box<Sleep>>,
    left: u64,
}

impl Lingering {
    pub fn new(stream: TcpStream, linger: Linger) -> Lingering {
        Lingering {
            stream,
            linger,
            drain: None,
        }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// hyper's last call on a connection it closes: the answer is out.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.linger.is_unread() {
            return Pin::new(&mut this.stream).poll_shutdown(cx);
        }
        if this.drain.is_none() {
            // The client learns the answer is complete before it is drained.
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.drain = Some(Drain {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                left: LINGER_BYTES,
            });
        }
        let Some(drain) = this.drain.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; DRAIN_CHUNK];
        loop {
            if drain.left == 0 {
                this.linger.cut(CutOff::Bytes);
                return Poll::Ready(Ok(()));
            }
            if drain.until.as_mut().poll(cx).is_ready() {
                this.linger.cut(CutOff::Time);
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            // Pending here yields (tokio's budget bounds a poll's reads too).
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                // The client closed its end: nothing is left to reset.
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => drain.left = drain.left.saturating_sub(buf.filled().len() as u64),
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}
