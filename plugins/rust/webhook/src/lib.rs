//! Example plugin: POST the job's input as JSON to a webhook.
//!
//! Settings (`PATCH /v1/plugins/webhook` with `config`): `url`, the webhook
//! to call. The request carries `authorization: Bearer {{secret.WEBHOOK_TOKEN}}`,
//! which the host fills in from the tenant's secret `WEBHOOK_TOKEN` only if
//! the allow-list entry for the webhook's host names that secret; the plugin
//! never sees the token. A 5xx or a network error is retried; a 4xx is not.

use corral_sdk::http::Request;
use corral_sdk::{Error, Job, log};
use serde::Serialize;

#[derive(Serialize)]
struct Delivered {
    status: u16,
}

fn deliver(input: serde_json::Value, job: &Job) -> Result<Delivered, Error> {
    let url =
        corral_sdk::config("url").ok_or_else(|| Error::fatal("the `url` setting is not set"))?;
    let response = Request::post(&url)
        .header("authorization", "Bearer {{secret.WEBHOOK_TOKEN}}")
        .header("idempotency-key", &job.id)
        .json(&input)
        .send()
        .map_err(|e| Error::retryable(format!("POST {url}: {e}")))?;
    log::info(&format!("POST {url}: {}", response.status));
    match response.status {
        200..=299 => Ok(Delivered {
            status: response.status,
        }),
        500..=599 | 429 => Err(Error::retryable(format!(
            "the webhook answered {}",
            response.status
        ))),
        status => Err(Error::fatal(format!(
            "the webhook answered {status}: {}",
            response.text()
        ))),
    }
}

corral_sdk::register!(deliver);
