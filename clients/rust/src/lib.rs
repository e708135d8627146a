//! Enqueue and follow Corral jobs from Rust.
//!
//! [`api`] holds the API's request and response types: the server answers
//! with these very types, so they cannot drift from it. [`Client`] is one
//! server and one key:
//!
//! ```no_run
//! # async fn demo() -> Result<(), corral_client::Error> {
//! use corral_client::{Client, Enqueue};
//!
//! let corral = Client::new("http://127.0.0.1:8080", "corral_…")?;
//! let job = corral
//!     .enqueue(Enqueue::new("markdown", &serde_json::json!({"markdown": "# Hi"}))?.key("order-7"))
//!     .await?;
//! let done = corral.wait(job.id, std::time::Duration::from_secs(60)).await?;
//! println!("{} {:?}", done.state, done.result);
//! # Ok(()) }
//! ```

pub mod api;
pub mod sse;

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::value::RawValue;

pub use api::{BatchCreated, CreateBatch, CreateJob, ErrorBody, Job, JobState, Progress};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused the request: its status, stable `code`
    /// (`unknown_plugin`, `queue_full`, …), message and `Retry-After`.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        /// Seconds to wait before retrying (429 and 503).
        retry_after: Option<u64>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// A body that is not what the API's types say.
    #[error("the server's answer does not parse: {0}")]
    Decode(String),
    /// `wait` gave up before the job ended.
    #[error("job {0} did not end in time")]
    Timeout(uuid::Uuid),
    /// A base URL that is not a URL.
    #[error("bad base URL: {0}")]
    Url(String),
}

impl Error {
    /// The API's code, when the API refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One job to enqueue, built from the plugin and its input.
#[derive(Debug, Clone)]
pub struct Enqueue {
    job: CreateJob,
    key: Option<String>,
}

impl Enqueue {
    /// A job of `plugin` with `input` serialized as JSON.
    pub fn new(plugin: impl Into<String>, input: &impl serde::Serialize) -> Result<Enqueue, Error> {
        let input =
            serde_json::value::to_raw_value(input).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Enqueue::raw(plugin, input))
    }

    /// A job whose input is JSON text, sent as written.
    pub fn raw(plugin: impl Into<String>, input: Box<RawValue>) -> Enqueue {
        Enqueue {
            job: CreateJob::new(plugin, input),
            key: None,
        }
    }

    /// The `Idempotency-Key`: a retry with the same key and job answers the first job.
    pub fn key(mut self, key: impl Into<String>) -> Enqueue {
        self.key = Some(key.into());
        self
    }

    /// The rest of the request (`queue`, `priority`, `run_at`, …).
    pub fn with(mut self, edit: impl FnOnce(&mut CreateJob)) -> Enqueue {
        edit(&mut self.job);
        self
    }
}

/// One event of a job's stream.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The whole job: first, and on every change of state.
    State(Box<Job>),
    /// A progress report of its plugin.
    Progress(Progress),
}

/// What an answer that is not a success means: the API's
/// `{"error": {code, message}}` as [`Error::Api`], or, for any other body (a
/// proxy's page, or not a Corral server), code `unexpected_response` with
/// the body's start (or the status's reason) as its message.
pub fn refusal(status: StatusCode, retry_after: Option<u64>, text: &str) -> Error {
    let (code, message) = match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => (
            "unexpected_response".to_string(),
            match text.trim() {
                "" => status
                    .canonical_reason()
                    .unwrap_or("no message")
                    .to_string(),
                quoted => quoted.chars().take(QUOTED_BODY_CHARS).collect(),
            },
        ),
    };
    Error::Api {
        status,
        code,
        message,
        retry_after,
    }
}

/// Limits to upload a plugin with (the server's defaults when none).
#[derive(Debug, Clone, Default)]
pub struct UploadLimits {
    pub fuel: Option<u64>,
    pub memory_mb: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
}

/// An uploaded plugin version: the fields every client needs (the answer
/// carries more: limits, config keys, HTTP settings).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Uploaded {
    pub name: String,
    pub version: u32,
    pub digest: String,
}

/// A Corral server and one API key.
#[derive(Debug, Clone)]
pub struct Client {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// Bytes of a non-API error body quoted in [`Error::Api`]'s message (a
/// proxy's HTML page, say): enough to recognise it, bounded.
const QUOTED_BODY_CHARS: usize = 200;

impl Client {
    pub fn new(base_url: &str, token: impl Into<String>) -> Result<Client, Error> {
        Client::with_http(base_url, Some(token.into()), reqwest::Client::new())
    }

    /// With a `reqwest::Client` of the caller's (timeouts, TLS roots,
    /// proxies), and no key at all when `token` is none.
    pub fn with_http(
        base_url: &str,
        token: Option<String>,
        http: reqwest::Client,
    ) -> Result<Client, Error> {
        let base =
            reqwest::Url::parse(base_url).map_err(|e| Error::Url(format!("{base_url}: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(Error::Url(base_url.to_string()));
        }
        Ok(Client { base, token, http })
    }

    /// A request to the route made of `segments` (each percent-encoded).
    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Send a request; an answer that is not a success is [`Error::Api`].
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let response = request.send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = response.text().await.unwrap_or_default();
        Err(refusal(status, retry_after, &text))
    }

    /// Send a request and read its answer as one of the API's types: any
    /// route, typed (`api::PluginList` for `GET /v1/plugins`,
    /// `api::WorkflowRun` for a run, …).
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, Error> {
        let text = self.send(request).await?.text().await?;
        serde_json::from_str(&text).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Enqueue one job.
    pub async fn enqueue(&self, job: Enqueue) -> Result<Job, Error> {
        let mut request = self.request(Method::POST, &["v1", "jobs"]).json(&job.job);
        if let Some(key) = &job.key {
            request = request.header("Idempotency-Key", key);
        }
        self.json(request).await
    }

    /// Enqueue up to 1000 jobs, all or nothing; their ids, in order.
    pub async fn enqueue_batch(
        &self,
        jobs: Vec<CreateJob>,
        key: Option<&str>,
    ) -> Result<Vec<uuid::Uuid>, Error> {
        let mut request = self
            .request(Method::POST, &["v1", "jobs", "batch"])
            .json(&CreateBatch { jobs });
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        Ok(self.json::<BatchCreated>(request).await?.ids)
    }

    pub async fn job(&self, id: uuid::Uuid) -> Result<Job, Error> {
        self.json(self.request(Method::GET, &["v1", "jobs", &id.to_string()]))
            .await
    }

    /// Cancel a job: a waiting job at once, a running one by its host.
    pub async fn cancel(&self, id: uuid::Uuid) -> Result<Job, Error> {
        self.json(self.request(Method::POST, &["v1", "jobs", &id.to_string(), "cancel"]))
            .await
    }

    /// Replay the finished jobs `filter` selects (dead ones unless it names
    /// another finished state), each once: one request of at most 1,000
    /// jobs; send `request` again with the answer's `next_cursor` for more.
    /// With `dry_run` set, only counts them.
    pub async fn replay_jobs(&self, request: &api::BulkRequest) -> Result<api::BulkOutcome, Error> {
        self.json(
            self.request(Method::POST, &["v1", "jobs", "replay"])
                .json(request),
        )
        .await
    }

    /// Cancel the unfinished jobs `filter` selects, as [`Client::replay_jobs`]
    /// replays.
    pub async fn cancel_jobs(&self, request: &api::BulkRequest) -> Result<api::BulkOutcome, Error> {
        self.json(
            self.request(Method::POST, &["v1", "jobs", "cancel"])
                .json(request),
        )
        .await
    }

    /// Upload a component as a new version of plugin `name` (the latest
    /// version when its bytes are the same).
    pub async fn upload_plugin(
        &self,
        name: &str,
        component: Vec<u8>,
        limits: &UploadLimits,
    ) -> Result<Uploaded, Error> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let mut put = |key, value: Option<u64>| {
            if let Some(value) = value {
                query.push((key, value.to_string()));
            }
        };
        put("fuel", limits.fuel);
        put("memory_mb", limits.memory_mb);
        put("timeout_ms", limits.timeout_ms);
        put("max_attempts", limits.max_attempts.map(u64::from));
        let request = self
            .request(Method::POST, &["v1", "plugins", name])
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(component);
        self.json(request).await
    }

    /// The job's events until it ends: its whole state first and on every
    /// change, and each progress report. Follows the job whichever host
    /// runs it (the server's stream is driven by the database).
    pub async fn watch(
        &self,
        id: uuid::Uuid,
    ) -> Result<impl Stream<Item = Result<JobEvent, Error>> + use<>, Error> {
        let response = self
            .send(
                self.request(Method::GET, &["v1", "jobs", &id.to_string(), "events"])
                    .header(reqwest::header::ACCEPT, "text/event-stream"),
            )
            .await?;
        let events = sse::EventStream::new(response);
        Ok(futures_util::stream::unfold(
            events,
            |mut events| async move {
                loop {
                    let event = match events.next().await {
                        Ok(Some(event)) => event,
                        Ok(None) => return None,
                        Err(sse::StreamError::Body(e)) => {
                            return Some((Err(Error::Http(e)), events));
                        }
                        Err(e @ sse::StreamError::TooLarge(_)) => {
                            return Some((Err(Error::Decode(e.to_string())), events));
                        }
                    };
                    let decode = |what: &str, e: serde_json::Error| {
                        Error::Decode(format!(
                            "a `{}` event that is not {what} ({e})",
                            event.event
                        ))
                    };
                    let decoded = match event.event.as_str() {
                        "state" => serde_json::from_str(&event.data)
                            .map(|job| JobEvent::State(Box::new(job)))
                            .map_err(|e| decode("a job", e)),
                        "progress" => serde_json::from_str(&event.data)
                            .map(JobEvent::Progress)
                            .map_err(|e| decode("a progress report", e)),
                        // Events a newer server may add.
                        _ => continue,
                    };
                    return Some((decoded, events));
                }
            },
        ))
    }

    /// The job once it has ended (`completed`, `dead` or `cancelled`),
    /// followed over Server-Sent Events (no polling); [`Error::Timeout`]
    /// after `patience`.
    pub async fn wait(&self, id: uuid::Uuid, patience: Duration) -> Result<Job, Error> {
        let follow = async {
            loop {
                let events = self.watch(id).await?;
                futures_util::pin_mut!(events);
                while let Some(event) = events.next().await {
                    if let JobEvent::State(job) = event?
                        && job.state.is_terminal()
                    {
                        return Ok(*job);
                    }
                }
                // The stream ended early (a restarted host): ask once more.
                let job = self.job(id).await?;
                if job.state.is_terminal() {
                    return Ok(job);
                }
            }
        };
        tokio::time::timeout(patience, follow)
            .await
            .unwrap_or(Err(Error::Timeout(id)))
    }
}
