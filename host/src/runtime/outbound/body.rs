//! A body that counts its bytes into the request's record and fails once
//! they pass the attempt's limit, so neither a plugin's upload nor a
//! server's answer can exceed it however it is streamed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::Error as HttpError;

use super::{HttpCall, Recording};

/// Which way the bytes go.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    Sent,
    Received,
}

pub(super) struct Counted<B> {
    inner: B,
    limit: u64,
    seen: u64,
    direction: Direction,
    recording: Arc<Recording>,
    /// A response holds its request's slot until its body is read or dropped.
    _permit: Option<OwnedSemaphorePermit>,
}

impl<B> Counted<B> {
    pub(super) fn new(
        inner: B,
        limit: u64,
        direction: Direction,
        recording: Arc<Recording>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Counted<B> {
        Counted {
            inner,
            limit,
            seen: 0,
            direction,
            recording,
            _permit: permit,
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            this.seen = this.seen.saturating_add(n);
            let direction = this.direction;
            this.recording
                .update(|call: &mut HttpCall| match direction {
                    Direction::Sent => call.bytes_sent += n,
                    Direction::Received => call.bytes_received += n,
                });
            if this.seen > this.limit {
                let (error, what) = match this.direction {
                    Direction::Sent => {
                        (HttpError::HttpRequestBodySize(Some(this.limit)), "request")
                    }
                    Direction::Received => (
                        HttpError::HttpResponseBodySize(Some(this.limit)),
                        "response",
                    ),
                };
                let limit = this.limit;
                this.recording.update(|call| {
                    call.result = super::CallResult::TooLarge;
                    call.error = Some(format!("too large: the {what} body passed {limit} bytes"));
                });
                return Poll::Ready(Some(Err(error)));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Read and drop a refused request's body, up to `limit` bytes, instead of
/// closing it: some guests (componentize-js's `fetch`) abort the whole
/// attempt when writing a body fails, where the response's error would
/// have told them why. Past `limit` the body is closed after all; the task
/// ends when the guest finishes or drops the body (at the latest with its
/// attempt), so it costs no more than sending would have.
pub(super) fn discard(body: wasmtime_wasi_http::WasiBody, limit: u64) {
    use http_body_util::BodyExt;
    tokio::spawn(async move {
        let mut body = body;
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read = read.saturating_add(frame.data_ref().map_or(0, |d| d.len() as u64));
            if read > limit {
                break;
            }
        }
    });
}
