//! The API client: URLs, the bearer key, and one error enum for everything
//! that can go wrong between the command line and the server.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::ClientOptions;

/// How long to wait for a TCP (and TLS) connection. A server that does not
/// answer in this time is reported as unreachable instead of hanging the
/// shell. There is no overall timeout: uploads and event streams are long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a client command can fail with. Each prints as one line that
/// names the problem, and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request: its `{"error": {code, message}}`.
    #[error("{message} ({code}, HTTP {status}){}", hint.map(|h| format!("; {h}")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        hint: Option<&'static str>,
    },
    /// No connection could be made.
    #[error("cannot connect to the Corral server at {server}: {detail}")]
    Connect { server: String, detail: String },
    /// The connection broke, or timed out, during the exchange.
    #[error("talking to the Corral server at {server}: {detail}")]
    Transport { server: String, detail: String },
    /// The server answered something the API does not promise.
    #[error("unexpected answer from {server}: {detail}")]
    Protocol { server: String, detail: String },
    /// Bad input on the command line, or a local file that cannot be read.
    #[error("{0}")]
    Usage(String),
}

/// A successful answer: its status and its body, as sent (what `--json`
/// prints); [`Api::parse`] reads it as the API's type.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub text: String,
}

/// A connection to one server with one key.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// Bytes of a `--token-file`: a key is under 100; this bounds what a
/// mistaken path makes the client read.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The key from `--token` or `--token-file` (not both).
fn token(options: &ClientOptions) -> Result<Option<String>, ClientError> {
    let given = options.token.clone().filter(|t| !t.is_empty());
    let Some(path) = &options.token_file else {
        return Ok(given);
    };
    if given.is_some() {
        return Err(ClientError::Usage(
            "give the key with --token (CORRAL_TOKEN) or --token-file (CORRAL_TOKEN_FILE), not both"
                .into(),
        ));
    }
    let shown = path.display();
    let unreadable = |e: std::io::Error| ClientError::Usage(format!("cannot read {shown}: {e}"));
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_TOKEN_FILE_BYTES {
        return Err(ClientError::Usage(format!(
            "{shown} is {size} bytes; a token file holds one key (at most {MAX_TOKEN_FILE_BYTES})"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    match text.trim() {
        "" => Err(ClientError::Usage(format!("{shown} holds no key"))),
        key => Ok(Some(key.to_string())),
    }
}

impl Api {
    pub fn new(options: &ClientOptions) -> Result<Api, ClientError> {
        let base = Url::parse(&options.server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "--server `{}` is not an http:// or https:// URL",
                    options.server
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("corral-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api {
            http,
            base,
            token: token(options)?,
        })
    }

    /// The server as the user named it, for messages.
    pub fn server(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `base` + path segments, each percent-encoded (names and ids come
    /// from the command line and may hold anything).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request to `segments`, with the key.
    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let request = self.http.request(method, self.url(segments));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Send; a status other than 2xx becomes [`ClientError::Api`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(self.refusal(status, &text))
    }

    /// Send and read the whole (JSON) answer.
    pub async fn call(&self, request: RequestBuilder) -> Result<Answer, ClientError> {
        let response = self.send(request).await?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport(e))?;
        if !text.trim().is_empty() {
            serde_json::from_str::<serde::de::IgnoredAny>(&text)
                .map_err(|e| self.protocol(format!("a body that is not JSON ({e})")))?;
        }
        Ok(Answer { status, text })
    }

    /// The answer's body as the API's type `T`.
    pub fn parse<T: DeserializeOwned>(&self, answer: &Answer) -> Result<T, ClientError> {
        serde_json::from_str(&answer.text).map_err(|e| {
            let name = std::any::type_name::<T>();
            let name = name.rsplit("::").next().unwrap_or(name);
            self.protocol(format!("an answer that is not a {name} ({e})"))
        })
    }

    /// GET `segments` as the API's type `T`, with the answer as sent.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<(Answer, T), ClientError> {
        let answer = self.get(segments).await?;
        let typed = self.parse(&answer)?;
        Ok((answer, typed))
    }

    pub async fn get(&self, segments: &[&str]) -> Result<Answer, ClientError> {
        self.call(self.request(Method::GET, segments)).await
    }

    pub async fn post_json(
        &self,
        segments: &[&str],
        body: &impl serde::Serialize,
    ) -> Result<Answer, ClientError> {
        self.call(self.request(Method::POST, segments).json(body))
            .await
    }

    /// A POST of JSON that creates something, under an `Idempotency-Key`
    /// when one is given (a retry then answers what the first made).
    pub async fn post_keyed(
        &self,
        segments: &[&str],
        body: &impl serde::Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let mut request = self.request(Method::POST, segments).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.call(request).await
    }

    /// A POST without a body.
    pub async fn post(&self, segments: &[&str]) -> Result<Answer, ClientError> {
        self.call(self.request(Method::POST, segments)).await
    }

    pub fn protocol(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            server: self.server(),
            detail: detail.into(),
        }
    }

    /// A reqwest failure, named by what it means to the user.
    pub fn transport(&self, e: reqwest::Error) -> ClientError {
        let server = self.server();
        if e.is_builder() {
            // The only user input that reaches the builder is the key.
            return ClientError::Usage(format!(
                "the request cannot be built (is the token plain ASCII?): {}",
                root_cause(&e)
            ));
        }
        let detail = root_cause(&e);
        if e.is_connect() {
            ClientError::Connect { server, detail }
        } else {
            ClientError::Transport { server, detail }
        }
    }

    /// The typed client (`corral-client`) on the same connection and key.
    pub fn typed(&self) -> Result<corral_client::Client, ClientError> {
        corral_client::Client::with_http(self.base.as_str(), self.token.clone(), self.http.clone())
            .map_err(|e| ClientError::Usage(e.to_string()))
    }

    /// A typed client's failure, named as the CLI's own are.
    pub fn typed_error(&self, e: corral_client::Error) -> ClientError {
        match e {
            corral_client::Error::Api {
                status,
                code,
                message,
                ..
            } => ClientError::Api {
                status: status.as_u16(),
                hint: if code == "unexpected_response" {
                    Some("is --server a Corral server?")
                } else {
                    self.hint(status)
                },
                code,
                message,
            },
            corral_client::Error::Http(e) => self.transport(e),
            corral_client::Error::Decode(detail) => self.protocol(detail),
            corral_client::Error::Timeout(id) => ClientError::Transport {
                server: self.server(),
                detail: format!("job {id} did not end in time"),
            },
            corral_client::Error::Url(detail) => ClientError::Usage(detail),
        }
    }

    /// What to suggest for a refusal with `status`.
    fn hint(&self, status: StatusCode) -> Option<&'static str> {
        (status == StatusCode::UNAUTHORIZED && self.token.is_none())
            .then_some("pass --token or set CORRAL_TOKEN")
    }

    /// An answer that is not a success, read as the client crate reads it.
    fn refusal(&self, status: StatusCode, text: &str) -> ClientError {
        self.typed_error(corral_client::refusal(status, None, text))
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which is
/// what a user can act on; reqwest's own message only repeats the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(server: &str, token: Option<&str>) -> Result<Api, ClientError> {
        Api::new(&ClientOptions {
            server: server.into(),
            token: token.map(Into::into),
            token_file: None,
            json: false,
        })
    }

    #[test]
    fn a_token_file_gives_the_key_alone() {
        let path = std::env::temp_dir().join(format!("corral-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "  corral_abc\n").unwrap();
        let mut options = ClientOptions {
            server: "http://h:1".into(),
            token: None,
            token_file: Some(path.clone()),
            json: false,
        };
        assert_eq!(token(&options).unwrap().as_deref(), Some("corral_abc"));
        options.token = Some("corral_other".into());
        assert!(matches!(token(&options), Err(ClientError::Usage(_))));
        options.token = None;
        std::fs::write(&path, "\n").unwrap();
        assert!(
            matches!(token(&options), Err(ClientError::Usage(m)) if m.contains("holds no key"))
        );
        std::fs::write(&path, vec![b'k'; 5000]).unwrap();
        assert!(matches!(token(&options), Err(ClientError::Usage(m)) if m.contains("one key")));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn urls_encode_their_segments_and_keep_a_base_path() {
        let api = api("http://h:1", None).unwrap();
        assert_eq!(
            api.url(&["v1", "jobs", "a/b c"]).as_str(),
            "http://h:1/v1/jobs/a%2Fb%20c"
        );
        let proxied = super::tests::api("https://h/corral/", None).unwrap();
        assert_eq!(
            proxied.url(&["v1", "plugins"]).as_str(),
            "https://h/corral/v1/plugins"
        );
        assert_eq!(proxied.server(), "https://h/corral");
    }

    #[test]
    fn a_server_that_is_not_an_http_url_is_refused() {
        for bad in ["localhost:8080", "ftp://h", "not a url", "http://"] {
            let Err(ClientError::Usage(message)) = api(bad, None) else {
                panic!("{bad} was taken");
            };
            assert!(message.contains(bad), "{message}");
        }
    }

    #[test]
    fn api_errors_read_as_message_code_and_status() {
        let api = api("http://h:1", Some("k")).unwrap();
        let e = api.refusal(
            StatusCode::NOT_FOUND,
            r#"{"error": {"code": "not_found", "message": "no job `x`"}}"#,
        );
        assert_eq!(e.to_string(), "no job `x` (not_found, HTTP 404)");
        let e = api.refusal(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert_eq!(
            e.to_string(),
            "<html>bad gateway</html> (unexpected_response, HTTP 502); is --server a Corral server?"
        );
    }

    #[test]
    fn a_401_without_a_token_says_how_to_give_one() {
        let api = api("http://h:1", None).unwrap();
        let e = api.refusal(
            StatusCode::UNAUTHORIZED,
            r#"{"error": {"code": "unauthorized", "message": "missing key"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "missing key (unauthorized, HTTP 401); pass --token or set CORRAL_TOKEN"
        );
    }
}
