//! `corral tenant …` and `corral key …` (admin routes).

use corral_client::api::{CreatedKey, Quotas, Tenant, TenantList};
use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Answer, Api, ClientError};
use super::output::{self, show};
use super::{ClientOptions, EXIT_OK, KeyCommand, TenantCommand};

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
            let (answer, list) = api.get_as::<TenantList>(&["v1", "tenants"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_tenants(&list);
            }
            return Ok(EXIT_OK);
        }
    };
    if options.json {
        output::line(&answer.text);
    } else {
        print_tenant(&api.parse(&answer)?);
    }
    Ok(EXIT_OK)
}

fn print_tenant(tenant: &Tenant) {
    // Destructured, so a quota added to the API cannot be left out here.
    let Quotas {
        max_concurrency,
        max_fuel_per_attempt,
        max_memory_mb,
        max_timeout_ms,
        max_plugin_bytes,
        max_queued_jobs,
        enqueue_per_minute,
        max_stored_plugin_bytes,
        max_schedules,
        max_workflows,
        max_workflow_versions,
        max_http_requests_per_attempt,
        max_http_response_bytes,
    } = tenant.quotas;
    output::fields(&[
        ("id", tenant.id.clone()),
        ("name", tenant.name.clone()),
        ("created_at", show(&tenant.created_at)),
        ("max_concurrency", max_concurrency.to_string()),
        ("max_fuel_per_attempt", max_fuel_per_attempt.to_string()),
        ("max_memory_mb", max_memory_mb.to_string()),
        ("max_timeout_ms", max_timeout_ms.to_string()),
        ("max_plugin_bytes", max_plugin_bytes.to_string()),
        ("max_queued_jobs", max_queued_jobs.to_string()),
        ("enqueue_per_minute", enqueue_per_minute.to_string()),
        (
            "max_stored_plugin_bytes",
            max_stored_plugin_bytes.to_string(),
        ),
        ("max_schedules", max_schedules.to_string()),
        ("max_workflows", max_workflows.to_string()),
        ("max_workflow_versions", max_workflow_versions.to_string()),
        (
            "max_http_requests_per_attempt",
            max_http_requests_per_attempt.to_string(),
        ),
        (
            "max_http_response_bytes",
            max_http_response_bytes.to_string(),
        ),
    ]);
}

fn print_tenants(list: &TenantList) {
    let rows = list
        .tenants
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.quotas.max_concurrency.to_string(),
                show(&t.created_at),
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
            print_key(&api, options, &tenant, &answer)?;
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

fn print_key(
    api: &Api,
    options: &ClientOptions,
    tenant: &str,
    answer: &Answer,
) -> Result<(), ClientError> {
    if options.json {
        output::line(&answer.text);
        return Ok(());
    }
    let key: CreatedKey = api.parse(answer)?;
    output::fields(&[
        ("tenant", tenant.to_string()),
        ("key_id", key.key_id),
        ("key", key.key),
    ]);
    output::note("The key is shown only this once: store it now (as CORRAL_TOKEN, say).");
    Ok(())
}
