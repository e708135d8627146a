//! The server loop: hyper under the router, with the bounds an
//! unauthenticated client must not be able to escape (`axum::serve` has
//! none of them):
//!
//! - headers must arrive within [`HEADER_READ_TIMEOUT`] (slowloris: a
//!   client dripping a header a byte at a time held a connection forever);
//! - a request must be answered (its headers sent) within
//!   [`REQUEST_TIMEOUT`], reading its body included, or it gets 408; an
//!   event stream's headers go out at once, so streams are not cut;
//! - at most [`MAX_CONNECTIONS`] connections, and
//!   [`MAX_CONNECTIONS_PER_ADDRESS`] from one client address, so one client
//!   cannot take every connection (or file descriptor) for itself; a
//!   connection over either is closed as soon as it is accepted;
//! - a connection closed with a request body unread (a refusal sent before
//!   the upload was read) is drained first, for at most
//!   [`LINGER_TIME`](super::linger::LINGER_TIME), so the client reads the
//!   refusal instead of a reset (`linger.rs`).
//!
//! Every value but the drain's two bounds (constants in `linger.rs`) is a
//! `corral serve` flag (docs/security.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ApiError;
use super::linger::{Linger, Lingering, Watched};

/// Time a client has to send a request's headers (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from a request's headers to its response's: long enough for a
/// 64 MiB upload over a slow link, short enough that a client dripping a
/// body cannot hold a connection for long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Open connections in all (each is a file descriptor and a task).
pub const MAX_CONNECTIONS: usize = 4096;
/// Open connections from one client address: one client cannot take the
/// whole [`MAX_CONNECTIONS`]. (Behind a proxy every client has the proxy's
/// address: raise it there, and bound clients at the proxy.)
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// On shutdown, how long open connections get to finish their requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors): retrying at once
/// would spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The server's bounds (`corral serve` flags; defaults above).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address until dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(address).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Serve `app` on `listener` until `shutdown`, then let open requests
/// finish (up to a grace period). Requests carry their peer's address
/// (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = limits.max_connections, "too many connections; closing a new one");
            continue;
        };
        let Some(slot) =
            PerAddress::take(&per_address, peer.ip(), limits.max_connections_per_address)
        else {
            tracing::warn!(%peer, limit = limits.max_connections_per_address, "too many connections from one address; closing a new one");
            continue;
        };
        let app = app.clone();
        let timeout = limits.request_timeout;
        let linger = Linger::default();
        let io = TokioIo::new(Lingering::new(stream, linger.clone()));
        let lingered = linger.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let linger = linger.clone();
                let request = request.map(|body| axum::body::Body::new(Watched::new(body, linger)));
                let answer = app.clone().oneshot(request);
                async move {
                    Ok::<_, std::convert::Infallible>(
                        match tokio::time::timeout(timeout, answer).await {
                            Ok(Ok(response)) => response,
                            Ok(Err(never)) => match never {},
                            Err(_) => ApiError::RequestTimeout(format!(
                                "the request was not received and answered within {} ms",
                                timeout.as_millis()
                            ))
                            .into_response(),
                        },
                    )
                }
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            let _ = connection.await;
            drop((permit, slot));
            // Once its slots are free, so a reader of the log may count on them.
            if let Some(bound) = lingered.cut_off() {
                tracing::info!(%peer, bound = bound.as_str(), "closed a refused client's connection at the drain's bound");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("open connections outlived the shutdown grace period; closing them");
    }
    Ok(())
}

/// The peer of a request served by [`serve`] (none in process, under `oneshot`).
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}
