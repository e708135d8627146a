//! Sending one admitted request: resolve its name, keep only the addresses
//! the network policy permits, connect to one of those (so what was
//! checked is what is reached), TLS for `https`, then HTTP/1.1 with bodies
//! counted against the attempt's limits. No redirect is followed: a 3xx
//! goes back to the guest, and a request it makes next is checked again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::rustls::pki_types::ServerName;
use wasmtime_wasi_http::Error as HttpError;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::io::TokioIo;

use super::body::{Counted, Direction};
use super::{HttpCall, HttpLimits, OutboundContext, Recording, Scheme, allow};

/// Where a request goes, read from its URI.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub method: String,
    pub scheme: Scheme,
    /// Lower case, without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

impl Target {
    pub(super) fn of(request: &http::Request<WasiBody>) -> Result<Target, String> {
        let uri = request.uri();
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            other => return Err(format!("denied: scheme {other:?} is not http or https")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| "denied: the URL has no host".to_string())?;
        if authority.as_str().contains('@') {
            return Err("denied: the URL carries a user name".into());
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        Ok(Target {
            method: request.method().as_str().to_string(),
            scheme,
            port: authority.port_u16().unwrap_or(scheme.default_port()),
            host,
        })
    }
}

/// The record of a request as it starts (what can be read of it).
pub(super) fn call_of(request: &http::Request<WasiBody>) -> HttpCall {
    let uri = request.uri();
    HttpCall {
        method: request.method().as_str().to_string(),
        scheme: uri.scheme_str().unwrap_or_default().to_string(),
        host: uri.host().unwrap_or_default().to_ascii_lowercase(),
        port: uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        }),
        path: uri.path().to_string(),
        result: super::CallResult::Unfinished,
        status: None,
        error: None,
        bytes_sent: 0,
        bytes_received: 0,
        duration_ms: 0,
    }
}

const OPEN: &[u8] = b"{{secret.";
const CLOSE: &[u8] = b"}}";

/// Whether `text` holds a `{{secret.` placeholder.
pub(super) fn has_placeholder(text: &[u8]) -> bool {
    text.windows(OPEN.len()).any(|w| w == OPEN)
}

/// `text` with every `{{secret.NAME}}` replaced by `value(NAME)`; the
/// first refusal (or a malformed placeholder) stops it.
pub(super) fn fill_secrets<'a>(
    text: &[u8],
    mut value: impl FnMut(&str) -> Result<&'a str, String>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.windows(OPEN.len()).position(|w| w == OPEN) {
        out.extend_from_slice(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let end = after
            .windows(CLOSE.len())
            .position(|w| w == CLOSE)
            .ok_or("denied: a `{{secret.` placeholder is not closed with `}}`")?;
        let name = std::str::from_utf8(&after[..end])
            .ok()
            .filter(|n| crate::model::is_secret_name(n))
            .ok_or("denied: a placeholder does not name a secret")?;
        out.extend_from_slice(value(name)?.as_bytes());
        if out.len() > super::MAX_FILLED_HEADER_BYTES {
            return Err(too_long());
        }
        rest = &after[end + CLOSE.len()..];
    }
    out.extend_from_slice(rest);
    if out.len() > super::MAX_FILLED_HEADER_BYTES {
        return Err(too_long());
    }
    Ok(out)
}

fn too_long() -> String {
    format!(
        "denied: with its secrets filled in, a header value would pass {} bytes (MAX_FILLED_HEADER_BYTES)",
        super::MAX_FILLED_HEADER_BYTES
    )
}

type Failure = (HttpError, String);

/// Send an admitted request. The error is the guest's code and the record's
/// reason.
pub(super) async fn send(
    request: http::Request<WasiBody>,
    target: &Target,
    context: &OutboundContext,
    limits: HttpLimits,
    recording: Arc<Recording>,
    permit: OwnedSemaphorePermit,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    Failure,
> {
    let connect = async {
        let addresses = resolve(target, context).await?;
        let stream = connect_any(&addresses).await?;
        match target.scheme {
            Scheme::Http => Ok(Box::new(stream) as Box<dyn Stream>),
            Scheme::Https => {
                let name = match allow::parse_ip(&target.host) {
                    Some(ip) => ServerName::IpAddress(ip.into()),
                    None => ServerName::try_from(target.host.clone()).map_err(|_| {
                        (
                            HttpError::TlsCertificateError,
                            format!("tls: `{}` is not a name TLS can verify", target.host),
                        )
                    })?,
                };
                let tls = tokio_rustls::TlsConnector::from(context.tls.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|e| (HttpError::TlsProtocolError, format!("tls: {e}")))?;
                Ok(Box::new(tls) as Box<dyn Stream>)
            }
        }
    };
    let stream = timed(
        limits.connect_timeout,
        "connect",
        HttpError::ConnectionTimeout,
        connect,
    )
    .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| (HttpError::HttpProtocolError, format!("connect: {e}")))?;

    // The request line carries the path and query only (no proxy form).
    let (mut parts, body) = request.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| {
            (
                HttpError::HttpRequestUriInvalid,
                "denied: a bad path".to_string(),
            )
        })?;
    let body = Counted::new(
        body,
        limits.request_bytes,
        Direction::Sent,
        recording.clone(),
        None,
    );
    let request = http::Request::from_parts(parts, body);

    // The connection task drives the exchange, so it is polled beside the
    // response until the response's head arrives.
    let mut conn = Box::pin(conn);
    let answer = timed(
        limits.first_byte_timeout,
        "the first byte of the response",
        HttpError::ConnectionReadTimeout,
        async {
            sender
                .send_request(request)
                .await
                .map_err(|e| hyper_failure(&e))
        },
    );
    tokio::pin!(answer);
    let mut conn_ended = false;
    let response = tokio::select! {
        biased;
        response = &mut answer => response?,
        ended = &mut conn => {
            ended.map_err(|e| hyper_failure(&e))?;
            // A server that answers and closes (HTTP/1.0, `connection:
            // close`) ends the connection with the response already handed
            // over: it is there, or the request failed.
            conn_ended = true;
            answer.await?
        }
    };
    let response = response.map(|incoming| {
        let incoming = incoming.map_err(HttpError::from).boxed_unsync();
        Counted::new(
            incoming,
            limits.response_bytes,
            Direction::Received,
            recording,
            Some(permit),
        )
        .boxed_unsync()
    });
    // A finished connection must not be polled again.
    let io = async move {
        if conn_ended {
            Ok(())
        } else {
            conn.await.map_err(HttpError::from)
        }
    };
    Ok((response, Box::new(io)))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The addresses of the target that the network policy permits.
async fn resolve(target: &Target, context: &OutboundContext) -> Result<Vec<SocketAddr>, Failure> {
    let found: Vec<SocketAddr> = match allow::parse_ip(&target.host) {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| {
                (
                    HttpError::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    },
                    format!("dns: {} did not resolve: {e}", target.host),
                )
            })?
            .collect(),
    };
    let permitted: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| context.network.permits(a.ip()))
        .collect();
    if permitted.is_empty() {
        let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
        return Err((
            HttpError::DestinationIpProhibited,
            format!(
                "denied: {} is {}, which plugins may not reach (the host's own or a private network)",
                target.host,
                shown.join(", ")
            ),
        ));
    }
    Ok(permitted)
}

/// Connect to the first address that answers.
async fn connect_any(addresses: &[SocketAddr]) -> Result<TcpStream, Failure> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some((address, e)),
        }
    }
    let (address, e) = last.ok_or((
        HttpError::DestinationNotFound,
        "connect: no address".to_string(),
    ))?;
    Err((
        HttpError::ConnectionRefused,
        format!("connect: {address}: {e}"),
    ))
}

/// `work`, or a timeout failure naming `what`.
async fn timed<T>(
    limit: Duration,
    what: &str,
    code: HttpError,
    work: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err((
            code,
            format!("timeout: {what} took over {} ms", limit.as_millis()),
        ))
    })
}

fn hyper_failure(e: &hyper::Error) -> Failure {
    (HttpError::HttpProtocolError, format!("http: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_only_when_allowed() {
        let text = b"Bearer {{secret.TOKEN}} and {{secret.OTHER}}";
        assert!(has_placeholder(text));
        let filled = fill_secrets(text, |name| match name {
            "TOKEN" => Ok("t0k"),
            "OTHER" => Ok("0th"),
            _ => Err("no".into()),
        })
        .unwrap();
        assert_eq!(filled, b"Bearer t0k and 0th");
        let refused = fill_secrets(text, |name| Err(format!("denied: {name}")));
        assert_eq!(refused.unwrap_err(), "denied: TOKEN");
        assert!(fill_secrets(b"{{secret.TOKEN", |_| Ok("x")).is_err());
        assert!(fill_secrets(b"{{secret.lower}}", |_| Ok("x")).is_err());
        assert!(!has_placeholder(b"{{secrets}}"));
        // A header of many placeholders for a large secret stops at the
        // bound instead of multiplying the secret.
        let secret = "s".repeat(8 * 1024);
        let crafted = "{{secret.TOKEN}}".repeat(8 * 1024);
        let refused = fill_secrets(crafted.as_bytes(), |_| Ok(secret.as_str())).unwrap_err();
        assert!(refused.contains("MAX_FILLED_HEADER_BYTES"), "{refused}");
    }
}
