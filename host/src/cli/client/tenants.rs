//! `corral tenant …` and `corral key …` (admin routes).

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Answer, Api, ClientError};
use super::output::{self, at};
use super::{ClientOptions, EXIT_OK, KeyCommand, TenantCommand};

/// The quotas in the order `tenant show` prints them.
const QUOTAS: [&str; 13] = [
    "max_concurrency",
    "max_fuel_per_attempt",
    "max_memory_mb",
    "max_timeout_ms",
    "max_plugin_bytes",
    "max_queued_jobs",
    "enqueue_per_minute",
    "max_stored_plugin_bytes",
    "max_schedules",
    "max_workflows",
    "max_workflow_versions",
    "max_http_requests_per_attempt",
    "max_http_response_bytes",
];

pub async fn tenant(options: &ClientOptions, command: TenantCommand) -> Result<i32, ClientError> {
    let api = Api::new(options)?;
    let answer = match command {
        TenantCommand::Create { id, name, quotas } => {
            let mut body = json!({ "id": id, "quotas": quotas });
            if let Some(name) = name {
                body["name"] = Value::String(name);
            }
            api.post_json(&["v1", "tenants"], &body).await?
        }
        TenantCommand::Update { id, quotas } => {
            let request = api
                .request(Method::PATCH, &["v1", "tenants", &id])
                .json(&json!({ "quotas": quotas }));
            api.call(request).await?
        }
        TenantCommand::Show { id } => api.get(&["v1", "tenants", &id]).await?,
        TenantCommand::Delete { id, yes } => {
            if !yes {
                return Err(ClientError::Usage(format!(
                    "deleting tenant `{id}` deletes everything it owns and cannot be undone; \
                     add --yes to confirm"
                )));
            }
            api.call(api.request(Method::DELETE, &["v1", "tenants", &id]))
                .await?;
            if options.json {
                output::line(&json!({ "deleted": id }).to_string());
            } else {
                output::note(&format!("tenant {id} deleted"));
            }
            return Ok(EXIT_OK);
        }
        TenantCommand::List => {
            let answer = api.get(&["v1", "tenants"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_tenants(&answer.value);
            }
            return Ok(EXIT_OK);
        }
    };
    if options.json {
        output::line(&answer.text);
    } else {
        print_tenant(&answer.value);
    }
    Ok(EXIT_OK)
}

fn print_tenant(tenant: &Value) {
    let mut pairs = vec![
        ("id", at(tenant, "id")),
        ("name", at(tenant, "name")),
        ("created_at", at(tenant, "created_at")),
    ];
    pairs.extend(QUOTAS.iter().map(|q| (*q, at(&tenant["quotas"], q))));
    output::fields(&pairs);
}

fn print_tenants(answer: &Value) {
    let rows = answer["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                at(t, "id"),
                at(t, "name"),
                at(&t["quotas"], "max_concurrency"),
                at(t, "created_at"),
            ]
        })
        .collect();
    output::table(&["id", "name", "max concurrency", "created"], rows);
}

pub async fn key(options: &ClientOptions, command: KeyCommand) -> Result<i32, ClientError> {
    let api = Api::new(options)?;
    match command {
        KeyCommand::Create { tenant } => {
            let answer = api.post(&["v1", "tenants", &tenant, "keys"]).await?;
            print_key(options, &tenant, &answer);
        }
        KeyCommand::Revoke { tenant, key_id } => {
            let answer = api
                .call(api.request(Method::DELETE, &["v1", "tenants", &tenant, "keys", &key_id]))
                .await?;
            if options.json {
                // 204 has no body; scripts get an empty line-free stdout and exit 0.
                if !answer.text.is_empty() {
                    output::line(&answer.text);
                }
            } else {
                output::line(&format!("revoked key {key_id} of tenant {tenant}"));
            }
        }
    }
    Ok(EXIT_OK)
}

fn print_key(options: &ClientOptions, tenant: &str, answer: &Answer) {
    if options.json {
        output::line(&answer.text);
        return;
    }
    output::fields(&[
        ("tenant", tenant.to_string()),
        ("key_id", at(&answer.value, "key_id")),
        ("key", at(&answer.value, "key")),
    ]);
    output::note("The key is shown only this once: store it now (as CORRAL_TOKEN, say).");
}
