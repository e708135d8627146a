//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Every request goes through the host, which allows it only toward the
//! destinations the plugin's owner put on its allow-list, never to the
//! host's own network, within the attempt's limits (Corral's docs/http.md).
//! A refused request is an [`HttpError`] naming the `wasi:http` error code
//! (`HttpRequestDenied`, `DestinationIpProhibited`, `HttpResponseBodySize`,
//! …). Redirects are not followed.
//!
//! ```no_run
//! use corral_sdk::http;
//!
//! # fn demo() -> Result<(), http::HttpError> {
//! let page = http::get("https://api.example.com/items")?;
//! let items: serde_json::Value = page.json()?;
//! let posted = http::Request::post("https://hooks.example.com/notify")
//!     // Filled in by the host, only toward destinations allowed to receive it.
//!     .header("authorization", "Bearer {{secret.HOOK_TOKEN}}")
//!     .json(&items)
//!     .send()?;
//! assert!(posted.is_success());
//! # Ok(()) }
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;

/// Bytes written to the host per call (the stream's guaranteed minimum).
const WRITE_CHUNK: usize = 4096;
/// Bytes asked for per read.
const READ_CHUNK: u64 = 64 * 1024;

/// Why a request got no response (or its body could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError(pub String);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// The `wasi:http` error code's name (`HttpRequestDenied`, …), with its
/// details when it has some.
fn code(e: ErrorCode) -> HttpError {
    let text = format!("{e:?}");
    HttpError(
        text.strip_prefix("ErrorCode::")
            .unwrap_or(&text)
            .to_string(),
    )
}

/// A request to build and [`send`](Request::send).
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with any method (`"PATCH"`, `"DELETE"`, …).
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(url: &str) -> Request {
        Request::new("GET", url)
    }

    pub fn post(url: &str) -> Request {
        Request::new("POST", url)
    }

    pub fn put(url: &str) -> Request {
        Request::new("PUT", url)
    }

    /// Add a header. A value may hold `{{secret.NAME}}`: the host puts the
    /// tenant's secret there when the allow-list lets this destination
    /// receive it (and refuses the request otherwise); the plugin never sees it.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// The body, as bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The body as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Request {
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.header("content-type", "application/json").body(body)
    }

    /// Send it and wait for the whole response.
    pub fn send(self) -> Result<Response, HttpError> {
        let (scheme, authority, path) = split_url(&self.url)?;
        let headers = Fields::new();
        for (name, value) in &self.headers {
            headers
                .append(name, value)
                .map_err(|e| HttpError(format!("header `{name}`: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        let bad = |what: &str| HttpError(format!("the URL's {what} is not valid"));
        request.set_method(&method).map_err(|()| bad("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| bad("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| bad("host"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| bad("path"))?;
        let body = request
            .body()
            .map_err(|()| HttpError("the request body is taken".into()))?;
        let pending = outgoing_handler::handle(request, None).map_err(code)?;
        // A request the host refused closes its body at once: then the
        // response's error says why, not the write's.
        let sent = (|| {
            let stream = body
                .write()
                .map_err(|()| HttpError("the request body stream is taken".into()))?;
            for chunk in self.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| stream_error(e, "sending the body"))?;
            }
            drop(stream);
            OutgoingBody::finish(body, None).map_err(code)
        })();
        pending.subscribe().block();
        let response = pending
            .get()
            .ok_or_else(|| HttpError("no response".into()))?
            .map_err(|()| HttpError("the response was taken".into()))?
            .map_err(code)?;
        sent?;
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| HttpError("the response body is taken".into()))?;
        let mut body = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| HttpError("the response body stream is taken".into()))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(e, "reading the body")),
                }
            }
        }
        let _ = IncomingBody::finish(incoming);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn stream_error(e: StreamError, what: &str) -> HttpError {
    match e {
        StreamError::Closed => HttpError(format!("{what}: the stream closed")),
        StreamError::LastOperationFailed(error) => {
            match crate::bindings::wasi::http::types::http_error_code(&error) {
                Some(c) => HttpError(format!("{what}: {c:?}")),
                // The host's own errors (a body over its limit): their
                // first line says what happened.
                None => HttpError(format!(
                    "{what}: {}",
                    error.to_debug_string().lines().next().unwrap_or_default()
                )),
            }
        }
    }
}

/// `scheme://authority/path?query` in parts.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), HttpError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(HttpError(format!(
            "`{url}` does not start with https:// or http://"
        )));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() {
        return Err(HttpError(format!("`{url}` has no host")));
    }
    Ok((scheme, authority, if path.is_empty() { "/" } else { path }))
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HttpError(format!("the response is not the JSON expected: {e}")))
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    Request::get(url).send()
}
