//! `corral plugin …`: upload (streamed from the file, with a progress bar),
//! list, show, config, http settings, delete.

use bytes::Bytes;
use corral_client::api::{PluginList, PluginVersions, PluginView};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::http::{Api, ClientError};
use super::output::{self, bytes, show};
use super::{ClientOptions, EXIT_OK, PluginCommand, PushArgs};

/// Bytes read from the file per chunk of the request body: small enough
/// for the bar to move smoothly, large enough to cost nothing.
const UPLOAD_CHUNK_BYTES: usize = 64 * 1024;

pub(super) const UPLOAD_TEMPLATE: &str =
    "{spinner} {prefix} [{bar:25}] {bytes}/{total_bytes} {msg}";

pub async fn run(options: &ClientOptions, command: PluginCommand) -> Result<i32, ClientError> {
    let api = Api::new(options)?;
    match command {
        PluginCommand::Push(args) => push(&api, options, args).await,
        PluginCommand::List => {
            let (answer, list) = api.get_as::<PluginList>(&["v1", "plugins"]).await?;
            if options.json {
                output::line(&answer.text);
            } else {
                print_versions(&list.plugins);
            }
            Ok(EXIT_OK)
        }
        PluginCommand::Show { name, version } => {
            let answer = match version {
                Some(v) => api.get(&["v1", "plugins", &name, &v.to_string()]).await?,
                None => api.get(&["v1", "plugins", &name]).await?,
            };
            if options.json {
                output::line(&answer.text);
            } else if version.is_some() {
                print_plugin(&api.parse(&answer)?);
            } else {
                print_versions(&api.parse::<PluginVersions>(&answer)?.versions);
            }
            Ok(EXIT_OK)
        }
        PluginCommand::Config { name, pairs } => {
            let config: std::collections::BTreeMap<String, String> = pairs.into_iter().collect();
            let keys = config.len();
            let body = serde_json::json!({ "config": config });
            let done = format!("{name}: config set ({keys} key(s))");
            patch(&api, options, &name, &body, &done).await
        }
        PluginCommand::Http { name, file } => {
            let http = super::files::read_value(&file).await?;
            let body = serde_json::json!({ "http": http });
            let done = format!("{name}: outbound HTTP settings replaced");
            patch(&api, options, &name, &body, &done).await
        }
        PluginCommand::Delete { name, version } => {
            api.call(api.request(
                Method::DELETE,
                &["v1", "plugins", &name, &version.to_string()],
            ))
            .await?;
            if options.json {
                output::line(
                    &serde_json::json!({"deleted": {"name": name, "version": version}}).to_string(),
                );
            } else {
                output::note(&format!("deleted version {version} of {name}"));
            }
            Ok(EXIT_OK)
        }
    }
}

/// `PATCH /v1/plugins/{name}` with `body`, then the plugin as it is now
/// (after the note `done`), or the API's JSON.
async fn patch(
    api: &Api,
    options: &ClientOptions,
    name: &str,
    body: &Value,
    done: &str,
) -> Result<i32, ClientError> {
    let answer = api
        .call(
            api.request(Method::PATCH, &["v1", "plugins", name])
                .json(body),
        )
        .await?;
    if options.json {
        output::line(&answer.text);
    } else {
        output::note(done);
        print_plugin(&api.parse(&answer)?);
    }
    Ok(EXIT_OK)
}

/// The file is streamed as the request body, so memory stays flat and
/// the bar counts bytes as the connection takes them.
async fn push(api: &Api, options: &ClientOptions, args: PushArgs) -> Result<i32, ClientError> {
    let path = args.file.display().to_string();
    let unreadable = |e: std::io::Error| ClientError::Usage(format!("cannot read {path}: {e}"));
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(unreadable)?;
    let metadata = file.metadata().await.map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(ClientError::Usage(format!("{path} is not a file")));
    }
    let length = metadata.len();

    let bar = ProgressBar::new(length).with_prefix(format!("uploading {}", args.name));
    if let Ok(style) = ProgressStyle::with_template(UPLOAD_TEMPLATE) {
        bar.set_style(style.progress_chars("=> "));
    }
    // The spinner keeps turning while the server validates and compiles.
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let body = reqwest::Body::wrap_stream(upload_stream(file, bar.clone()));

    let mut query: Vec<(&str, String)> = Vec::new();
    let limits = [
        ("fuel", args.fuel),
        ("memory_mb", args.memory_mb),
        ("timeout_ms", args.timeout_ms),
        ("max_attempts", args.max_attempts.map(u64::from)),
    ];
    for (name, value) in limits {
        if let Some(value) = value {
            query.push((name, value.to_string()));
        }
    }
    let request = api
        .request(Method::POST, &["v1", "plugins", &args.name])
        .query(&query)
        .header(CONTENT_TYPE, "application/wasm")
        // A known length lets the server refuse an oversized upload before
        // it is sent, instead of partway through.
        .header(CONTENT_LENGTH, length)
        .body(body);
    let answer = api.call(request).await;
    bar.finish_and_clear();
    let answer = answer?;
    if options.json {
        output::line(&answer.text);
        return Ok(EXIT_OK);
    }
    let plugin: PluginView = api.parse(&answer)?;
    let version = plugin.version;
    if answer.status == StatusCode::CREATED {
        output::note(&format!("pushed {} version {version}", args.name));
    } else {
        output::note(&format!(
            "unchanged: version {version} of {} has the same bytes",
            args.name
        ));
    }
    print_plugin(&plugin);
    Ok(EXIT_OK)
}

/// The file's bytes in chunks, each counted on the bar as it is taken.
fn upload_stream(
    file: tokio::fs::File,
    bar: ProgressBar,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::unfold(Some((file, bar)), |state| async move {
        let (mut file, bar) = state?;
        let mut chunk = vec![0; UPLOAD_CHUNK_BYTES];
        match file.read(&mut chunk).await {
            Ok(0) => {
                bar.set_message("compiling on the server…");
                None
            }
            Ok(n) => {
                chunk.truncate(n);
                bar.inc(n as u64);
                Some((Ok(Bytes::from(chunk)), Some((file, bar))))
            }
            // The error ends the body; nothing is read after it.
            Err(e) => Some((Err(e), None)),
        }
    })
}

fn print_plugin(plugin: &PluginView) {
    let limits = &plugin.limits;
    // An entry is a URL or {url, methods, secrets}: the URLs say where.
    let http_allow = output::names(plugin.http.allow.iter().map(|e| e.url()));
    output::fields(&[
        ("name", plugin.name.clone()),
        ("version", plugin.version.to_string()),
        ("digest", plugin.digest.clone()),
        ("size", bytes(plugin.size)),
        ("fuel", limits.fuel.to_string()),
        ("memory", bytes(limits.memory_bytes)),
        ("timeout_ms", limits.timeout_ms.to_string()),
        ("result_bytes", bytes(limits.result_bytes)),
        ("log_bytes", bytes(limits.log_bytes)),
        ("max_attempts", plugin.max_attempts.to_string()),
        (
            "config_keys",
            output::names(plugin.config_keys.iter().map(String::as_str)),
        ),
        ("http_allow", http_allow),
        ("created_at", show(&plugin.created_at)),
    ]);
}

fn print_versions(versions: &[PluginView]) {
    let rows = versions
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.to_string(),
                bytes(p.size),
                p.limits.fuel.to_string(),
                bytes(p.limits.memory_bytes),
                p.limits.timeout_ms.to_string(),
                p.max_attempts.to_string(),
                show(&p.created_at),
            ]
        })
        .collect();
    output::table(
        &[
            "name",
            "version",
            "size",
            "fuel",
            "memory",
            "timeout ms",
            "max attempts",
            "created",
        ],
        rows,
    );
}
