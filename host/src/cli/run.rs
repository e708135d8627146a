//! `corral run`: one attempt of a plugin file, no database. A plugin
//! author's inner loop.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::config::RunArgs;
use crate::model::{Limits, OutcomeKind};
use crate::runtime::outbound::HttpRules;
use crate::runtime::outbound::{AllowEntry, HttpGrant, HttpSettings};
use crate::runtime::{AttemptRequest, Compiler, JobInput, Runtime, RuntimeConfig};

/// Runs the attempt, prints its report as JSON, and returns the exit status.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&args.input) {
        bail!("--input is not valid JSON: {e}");
    }
    if let Some(context) = &args.context
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(context)
    {
        bail!("--context is not valid JSON: {e}");
    }
    let http = grant(&args)?;
    let bytes = std::fs::read(&args.plugin)
        .with_context(|| format!("reading {}", args.plugin.display()))?;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: args.storage.cache_dir.clone(),
        compiler: Compiler::current_exe()?,
        pool: Default::default(),
        max_loaded_bytes: crate::runtime::loaded::MAX_LOADED_PLUGIN_BYTES,
    })?;
    let plugin = match runtime.load(&bytes).await {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("error: cannot load {}: {e}", args.plugin.display());
            return Ok(2);
        }
    };
    let name = args
        .plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let request = AttemptRequest {
        job: JobInput {
            id: "00000000-0000-0000-0000-000000000000".into(),
            tenant: "local".into(),
            plugin: name,
            attempt: args.attempt,
            max_attempts: args.max_attempts,
            input: args.input,
            context: args.context,
        },
        limits: Limits {
            fuel: args.fuel,
            memory_bytes: args.memory_mb.saturating_mul(1024 * 1024),
            timeout_ms: args.timeout_ms,
            result_bytes: args.result_bytes,
            log_bytes: args.log_bytes,
        },
        config: Arc::new(args.config.into_iter().collect::<BTreeMap<_, _>>()),
        http,
        ..AttemptRequest::default()
    };
    let report = runtime.run(&plugin, request).await;
    let mut out = std::io::stdout().lock();
    // A closed stdout (say, piped into `head`) is not an error of the run.
    let _ = writeln!(out, "{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.outcome == OutcomeKind::Completed {
        0
    } else {
        1
    })
}

/// What `--allow-host`, `--secret` and the network flags let the attempt's
/// requests do.
fn grant(args: &RunArgs) -> anyhow::Result<HttpGrant> {
    let entries = args
        .allow_host
        .iter()
        .map(|entry| {
            if entry.trim_start().starts_with('{') {
                serde_json::from_str::<AllowEntry>(entry)
                    .with_context(|| format!("--allow-host {entry} is not an entry"))
            } else {
                Ok(AllowEntry::Url(entry.clone()))
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let settings = HttpSettings {
        allow: entries,
        ..HttpSettings::default()
    };
    let allow = settings
        .validate()
        .map_err(|e| anyhow::anyhow!("--allow-host: {e}"))?;
    for (name, _) in &args.secret {
        if !crate::model::is_secret_name(name) {
            bail!(
                "--secret {name}: not a secret name ({})",
                crate::model::SECRET_NAME_RULE
            );
        }
    }
    let context = args.outbound.context().map_err(anyhow::Error::msg)?;
    Ok(HttpGrant {
        allow,
        limits: settings.limits(),
        secrets: Arc::new(args.secret.iter().cloned().collect()),
        context: Arc::new(context),
    })
}
