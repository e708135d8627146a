//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), under the
//! plugin's allow-list and the operator's network policy (docs/http.md).
//!
//! Nothing is allowed by default: an attempt's [`HttpGrant`] says which
//! destinations its plugin may reach ([`allow`]), which addresses any
//! request may connect to ([`address`]), the limits of the attempt, and the
//! tenant secrets its requests may carry. Every request is checked here,
//! before anything leaves the host, then sent by [`send`], which resolves
//! the name itself and connects only to an address it checked. A request
//! that breaks a rule fails with the `wasi:http` error code that fits; the
//! guest sees it, the host never fails for it. Every request, allowed or
//! not, is recorded with the attempt ([`HttpCall`]).

pub mod address;
pub mod allow;
mod body;
mod send;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub use address::NetworkPolicy;
pub use allow::{AllowEntry, AllowList, HostLimit, Scheme};

/// Requests one attempt may make. Bounds what one job can send out (and
/// record) however it loops.
pub const MAX_REQUESTS_PER_ATTEMPT: u32 = 1000;
/// Requests one attempt may have in flight; more wait for one to end.
pub const MAX_CONCURRENT_REQUESTS: u32 = 16;
/// Bytes of one request body a plugin may send.
pub const MAX_REQUEST_BODY_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of one response body a plugin may read: the host buffers what the
/// guest has not read yet, so this bounds the host's memory too.
pub const MAX_RESPONSE_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// Longest wait for a name to resolve and a connection (and TLS) to open.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a response's first byte after the request was sent.
pub const MAX_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);
/// Defaults when the plugin sets nothing.
pub const DEFAULT_REQUESTS_PER_ATTEMPT: u32 = 100;
pub const DEFAULT_CONCURRENT_REQUESTS: u32 = 4;
pub const DEFAULT_REQUEST_BODY_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_RESPONSE_BODY_BYTES: u64 = 8 * 1024 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of one header value once its `{{secret.NAME}}` placeholders are
/// filled in. A 128 KiB header of placeholders for an 8 KiB secret would
/// otherwise make the host build 80 MiB for one header.
pub const MAX_FILLED_HEADER_BYTES: usize = 16 * 1024;
/// Requests recorded per attempt (every one is counted; past this, only
/// the count grows). Bounds the attempt row.
pub const MAX_RECORDED_CALLS: usize = 100;

/// A plugin's outbound settings (`http` in the API), the recorded
/// requests of an attempt and how each ended are the API's types.
pub use corral_client::api::{CallResult, HttpCall, HttpCalls, HttpSettings};

/// The rules of a plugin's outbound settings: what may be stored, and what
/// an attempt gets.
pub trait HttpRules {
    /// Check the settings: the allow-list parses and no limit passes its cap.
    fn validate(&self) -> Result<AllowList, String>;
    /// The limits these settings give an attempt.
    fn limits(&self) -> HttpLimits;
}

impl HttpRules for HttpSettings {
    fn validate(&self) -> Result<AllowList, String> {
        let over = |what: &str, value: u64, cap: u64| {
            (value == 0 || value > cap)
                .then(|| format!("http.{what} must be 1 to {cap}, got {value}"))
        };
        let checks = [
            self.max_requests
                .and_then(|v| over("max_requests", v.into(), MAX_REQUESTS_PER_ATTEMPT.into())),
            self.max_concurrent
                .and_then(|v| over("max_concurrent", v.into(), MAX_CONCURRENT_REQUESTS.into())),
            self.max_request_bytes
                .and_then(|v| over("max_request_bytes", v, MAX_REQUEST_BODY_BYTES)),
            self.max_response_bytes
                .and_then(|v| over("max_response_bytes", v, MAX_RESPONSE_BODY_BYTES)),
            self.connect_timeout_ms.and_then(|v| {
                over(
                    "connect_timeout_ms",
                    v,
                    MAX_CONNECT_TIMEOUT.as_millis() as u64,
                )
            }),
            self.first_byte_timeout_ms.and_then(|v| {
                over(
                    "first_byte_timeout_ms",
                    v,
                    MAX_FIRST_BYTE_TIMEOUT.as_millis() as u64,
                )
            }),
        ];
        if let Some(why) = checks.into_iter().flatten().next() {
            return Err(why);
        }
        AllowList::parse(&self.allow)
    }

    fn limits(&self) -> HttpLimits {
        HttpLimits {
            requests: self
                .max_requests
                .unwrap_or(DEFAULT_REQUESTS_PER_ATTEMPT)
                .min(MAX_REQUESTS_PER_ATTEMPT),
            concurrent: self
                .max_concurrent
                .unwrap_or(DEFAULT_CONCURRENT_REQUESTS)
                .clamp(1, MAX_CONCURRENT_REQUESTS),
            request_bytes: self
                .max_request_bytes
                .unwrap_or(DEFAULT_REQUEST_BODY_BYTES)
                .min(MAX_REQUEST_BODY_BYTES),
            response_bytes: self
                .max_response_bytes
                .unwrap_or(DEFAULT_RESPONSE_BODY_BYTES)
                .min(MAX_RESPONSE_BODY_BYTES),
            connect_timeout: self
                .connect_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
                .min(MAX_CONNECT_TIMEOUT),
            first_byte_timeout: self
                .first_byte_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT)
                .min(MAX_FIRST_BYTE_TIMEOUT),
        }
    }
}

/// The caps a tenant's quotas put on its plugins' HTTP settings
/// (`max_http_requests_per_attempt`, `max_http_response_bytes`): refused
/// by name where a tenant asks for more (upload, `PATCH`), and applied at
/// claim to whatever is stored, so lowering a quota holds at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpCaps {
    pub requests: u32,
    pub response_bytes: u64,
}

impl HttpCaps {
    /// The first asked-for setting over its quota, as a sentence.
    pub fn refusal(&self, settings: &HttpSettings) -> Option<String> {
        if let Some(asked) = settings.max_requests
            && asked > self.requests
        {
            return Some(format!(
                "http.max_requests {asked} is over the tenant's max_http_requests_per_attempt of {}",
                self.requests
            ));
        }
        if let Some(asked) = settings.max_response_bytes
            && asked > self.response_bytes
        {
            return Some(format!(
                "http.max_response_bytes {asked} is over the tenant's max_http_response_bytes of {}",
                self.response_bytes
            ));
        }
        None
    }

    /// `limits` lowered to the caps.
    pub fn apply(&self, limits: HttpLimits) -> HttpLimits {
        HttpLimits {
            requests: limits.requests.min(self.requests),
            response_bytes: limits.response_bytes.min(self.response_bytes),
            ..limits
        }
    }
}

/// The limits of one attempt's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub requests: u32,
    pub concurrent: u32,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpSettings::default().limits()
    }
}

/// The host's side of outbound HTTP, the same for every attempt: the
/// operator's network policy and the TLS client configuration.
#[derive(Debug, Clone)]
pub struct OutboundContext {
    pub network: NetworkPolicy,
    /// The hosts tenants' allow-lists may name at all.
    pub hosts: HostLimit,
    pub tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl OutboundContext {
    /// The Mozilla roots (webpki-roots), plus `extra_roots` (PEM
    /// certificates an operator trusts, `--outbound-ca-file`).
    pub fn new(network: NetworkPolicy, extra_roots_pem: &[u8]) -> Result<OutboundContext, String> {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let mut reader = extra_roots_pem;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| format!("reading the extra CA certificates: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("an extra CA certificate is not usable: {e}"))?;
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(OutboundContext {
            network,
            hosts: HostLimit::default(),
            tls: Arc::new(tls),
        })
    }
}

impl Default for OutboundContext {
    fn default() -> Self {
        // The built-in roots always parse; no extra ones to fail on.
        OutboundContext::new(NetworkPolicy::default(), b"")
            .unwrap_or_else(|e| unreachable!("the default TLS configuration is valid: {e}"))
    }
}

/// What one attempt may do over HTTP. The default denies every request.
#[derive(Clone, Default)]
pub struct HttpGrant {
    pub allow: AllowList,
    pub limits: HttpLimits,
    /// Decrypted values of the tenant secrets the allow-list names.
    pub secrets: Arc<BTreeMap<String, String>>,
    pub context: Arc<OutboundContext>,
}

impl std::fmt::Debug for HttpGrant {
    // Never the secrets' values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGrant")
            .field("allow", &self.allow)
            .field("limits", &self.limits)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The result of a request that failed with `error`.
fn call_result(error: &HttpError) -> CallResult {
    match error {
        HttpError::HttpRequestDenied
        | HttpError::DestinationIpProhibited
        | HttpError::ConnectionLimitReached
        | HttpError::HttpRequestUriInvalid => CallResult::Denied,
        HttpError::ConnectionTimeout | HttpError::ConnectionReadTimeout => CallResult::Timeout,
        HttpError::HttpRequestBodySize(_) | HttpError::HttpResponseBodySize(_) => {
            CallResult::TooLarge
        }
        _ => CallResult::Error,
    }
}

/// A request being recorded, shared with the tasks that send it.
struct Recording {
    started: Instant,
    call: Mutex<HttpCall>,
}

impl Recording {
    fn update(&self, f: impl FnOnce(&mut HttpCall)) {
        if let Ok(mut call) = self.call.lock() {
            f(&mut call);
        }
    }

    fn finish(&self, result: CallResult, status: Option<u16>, error: Option<String>) {
        let elapsed = self.started.elapsed().as_millis() as u64;
        self.update(|call| {
            // A body over its limit said so first; hyper's failure after it
            // is only the consequence.
            if call.result != CallResult::TooLarge {
                call.result = result;
                call.error = error;
            }
            call.status = status;
            call.duration_ms = elapsed;
        });
    }
}

/// One attempt's outbound state: the `WasiHttpHooks` wasmtime-wasi-http
/// calls for every request.
pub struct Outbound {
    grant: HttpGrant,
    sent: u32,
    in_flight: Arc<Semaphore>,
    recorded: Vec<Arc<Recording>>,
}

impl Outbound {
    pub fn new(grant: HttpGrant) -> Outbound {
        let in_flight = Arc::new(Semaphore::new(grant.limits.concurrent as usize));
        Outbound {
            grant,
            sent: 0,
            in_flight,
            recorded: Vec::new(),
        }
    }

    /// What the attempt's requests did, for its record.
    pub fn calls(&self) -> HttpCalls {
        HttpCalls {
            calls: self
                .recorded
                .iter()
                .filter_map(|r| r.call.lock().ok().map(|c| c.clone()))
                .collect(),
            total: self.sent,
        }
    }

    /// Check a request against the grant and put the secrets it names in
    /// place. The error is what the guest gets, and why, for the record.
    fn admit(
        &mut self,
        request: &mut http::Request<WasiBody>,
        target: &send::Target,
    ) -> Result<(), (HttpError, String)> {
        if self.sent > self.grant.limits.requests {
            return Err((
                HttpError::ConnectionLimitReached,
                format!(
                    "denied: the attempt made {} requests, its limit",
                    self.grant.limits.requests
                ),
            ));
        }
        let Some(rule) =
            self.grant
                .allow
                .find(&target.method, target.scheme, &target.host, target.port)
        else {
            return Err((
                HttpError::HttpRequestDenied,
                format!(
                    "denied: no allow-list entry lets {} reach {}://{}:{}",
                    target.method,
                    target.scheme.as_str(),
                    target.host,
                    target.port
                ),
            ));
        };
        if send::has_placeholder(request.uri().to_string().as_bytes()) {
            return Err((
                HttpError::HttpRequestDenied,
                "denied: secrets may be placed in header values only, not in the URL".into(),
            ));
        }
        for value in request.headers_mut().values_mut() {
            if !send::has_placeholder(value.as_bytes()) {
                continue;
            }
            let replaced = send::fill_secrets(value.as_bytes(), |name| {
                if !rule.secrets.contains(name) {
                    return Err(format!(
                        "denied: secret `{name}` is not allowed toward {}://{}:{}",
                        target.scheme.as_str(),
                        target.host,
                        target.port
                    ));
                }
                self.grant
                    .secrets
                    .get(name)
                    .map(String::as_str)
                    .ok_or_else(|| format!("denied: the tenant has no secret `{name}`"))
            })
            .map_err(|why| (HttpError::HttpRequestDenied, why))?;
            *value = http::HeaderValue::from_bytes(&replaced).map_err(|_| {
                (
                    HttpError::HttpRequestDenied,
                    "denied: a secret's value is not a valid header value".to_string(),
                )
            })?;
            value.set_sensitive(true);
        }
        Ok(())
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        self.sent = self.sent.saturating_add(1);
        let recording = Arc::new(Recording {
            started: Instant::now(),
            call: Mutex::new(send::call_of(&request)),
        });
        let target = send::Target::of(&request);
        if self.recorded.len() < MAX_RECORDED_CALLS {
            self.recorded.push(recording.clone());
        }
        let target = match target {
            Ok(target) => target,
            Err(why) => {
                recording.finish(CallResult::Denied, None, Some(why));
                body::discard(request.into_body(), self.grant.limits.request_bytes);
                return Box::new(std::future::ready(Err(HttpError::HttpRequestUriInvalid)));
            }
        };
        if let Err((error, why)) = self.admit(&mut request, &target) {
            recording.finish(call_result(&error), None, Some(why));
            body::discard(request.into_body(), self.grant.limits.request_bytes);
            return Box::new(std::future::ready(Err(error)));
        }
        // The guest may ask for shorter timeouts, never longer ones.
        let mut limits = self.grant.limits;
        if let Some(options) = options {
            if let Some(t) = options.connect_timeout {
                limits.connect_timeout = limits.connect_timeout.min(t);
            }
            if let Some(t) = options.first_byte_timeout {
                limits.first_byte_timeout = limits.first_byte_timeout.min(t);
            }
        }
        let context = self.grant.context.clone();
        let in_flight = self.in_flight.clone();
        Box::new(async move {
            // The semaphore lives as long as the attempt and is never closed.
            let permit = in_flight
                .acquire_owned()
                .await
                .map_err(|_| HttpError::InternalError(Some("request slots closed".into())))?;
            let sent = send::send(
                request,
                &target,
                &context,
                limits,
                recording.clone(),
                permit,
            )
            .await;
            match &sent {
                Ok((response, _)) => {
                    recording.finish(CallResult::Ok, Some(response.status().as_u16()), None)
                }
                Err((error, why)) => recording.finish(call_result(error), None, Some(why.clone())),
            }
            sent.map_err(|(error, _)| error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_refuse_more_than_they_allow_and_lower_what_is_stored() {
        let caps = HttpCaps {
            requests: 60,
            response_bytes: 1024,
        };
        let mut asked = HttpSettings {
            max_requests: Some(100),
            ..HttpSettings::default()
        };
        let why = caps.refusal(&asked).expect("100 requests is over 60");
        assert!(why.contains("max_http_requests_per_attempt of 60"), "{why}");
        asked.max_requests = Some(60);
        asked.max_response_bytes = Some(1025);
        let why = caps.refusal(&asked).expect("1025 bytes is over 1024");
        assert!(why.contains("max_http_response_bytes of 1024"), "{why}");
        asked.max_response_bytes = None;
        assert_eq!(caps.refusal(&asked), None);

        // Defaults (100 requests, 8 MiB) stored before a quota was lowered
        // are lowered at claim; what is already under the caps is kept.
        let limits = caps.apply(HttpSettings::default().limits());
        assert_eq!((limits.requests, limits.response_bytes), (60, 1024));
        let roomy = HttpCaps {
            requests: MAX_REQUESTS_PER_ATTEMPT,
            response_bytes: MAX_RESPONSE_BODY_BYTES,
        };
        assert_eq!(
            roomy.apply(HttpSettings::default().limits()),
            HttpSettings::default().limits()
        );
    }
}
