//! Test plugin: makes the HTTP requests its input lists, one after the
//! other, and returns what each gave (status and body, or the error the
//! host answered with). Used by the outbound HTTP tests.
//!
//! Input: `{"requests": [{"method": "GET", "url": "...", "headers": {"k": "v"}, "body": "..."}]}`
//! (`"times": n` on a request repeats it).

use corral_sdk::http::Request;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    requests: Vec<Call>,
}

#[derive(Deserialize)]
struct Call {
    #[serde(default = "get")]
    method: String,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    #[serde(default = "one")]
    times: u32,
}

fn get() -> String {
    "GET".into()
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
struct Outcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn fetch(input: Input) -> Result<Vec<Outcome>, corral_sdk::Error> {
    let mut outcomes = Vec::new();
    for call in &input.requests {
        for _ in 0..call.times {
            let mut request = Request::new(&call.method, &call.url).body(call.body.clone());
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
            outcomes.push(match request.send() {
                Ok(response) => Outcome {
                    status: Some(response.status),
                    body: Some(response.text()),
                    error: None,
                },
                Err(e) => Outcome {
                    status: None,
                    body: None,
                    error: Some(e.0),
                },
            });
        }
    }
    Ok(outcomes)
}

corral_sdk::register!(fetch);
