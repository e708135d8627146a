//! Definition files for `apply` verbs (`workflow apply`, `schedule apply`)
//! and the files of `job batch` and `plugin http`:
//! JSON or YAML, by extension (`.yaml`/`.yml` are YAML; anything else is
//! tried as JSON, then as YAML), or `-` for stdin.

use std::path::Path;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::http::ClientError;

/// Bytes of a definition file: far more than any definition the server
/// accepts (its JSON bodies are capped at 16 MiB), and a bound on what a
/// mistaken path (a disk image) makes the client read.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The file's content as a JSON object.
pub async fn read_object(path: &Path) -> Result<serde_json::Map<String, Value>, ClientError> {
    let shown = path.display().to_string();
    match read_value(path).await? {
        Value::Object(map) => Ok(map),
        other => Err(ClientError::Usage(format!(
            "{shown} must hold an object (a mapping), not {}",
            kind(&other)
        ))),
    }
}

/// What a JSON value is, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::Array(_) => "a list",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// The file's content as JSON, whatever its shape.
pub async fn read_value(path: &Path) -> Result<Value, ClientError> {
    let shown = path.display().to_string();
    let text = if path == Path::new("-") {
        let mut text = String::new();
        tokio::io::stdin()
            .take(MAX_FILE_BYTES)
            .read_to_string(&mut text)
            .await
            .map_err(|e| ClientError::Usage(format!("cannot read stdin: {e}")))?;
        text
    } else {
        let unreadable =
            |e: std::io::Error| ClientError::Usage(format!("cannot read {shown}: {e}"));
        let size = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
        if size > MAX_FILE_BYTES {
            return Err(ClientError::Usage(format!(
                "{shown} is {size} bytes; a definition file is at most {MAX_FILE_BYTES}"
            )));
        }
        tokio::fs::read_to_string(path).await.map_err(unreadable)?
    };
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let value: Value = if yaml {
        serde_yaml_ng::from_str(&text)
            .map_err(|e| ClientError::Usage(format!("{shown} is not valid YAML: {e}")))?
    } else {
        match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(json) => serde_yaml_ng::from_str(&text).map_err(|_| {
                ClientError::Usage(format!("{shown} is neither valid JSON ({json}) nor YAML"))
            })?,
        }
    };
    Ok(value)
}

/// Take the definition's `name` out of `map`, or use `name` (a `--name`
/// flag, which wins), or the file's stem.
pub fn take_name(
    map: &mut serde_json::Map<String, Value>,
    flag: Option<String>,
    path: &Path,
) -> Result<String, ClientError> {
    let in_file = map.remove("name");
    if let Some(name) = flag {
        return Ok(name);
    }
    match in_file {
        Some(Value::String(name)) => Ok(name),
        Some(_) => Err(ClientError::Usage(format!(
            "`name` in {} must be a string",
            path.display()
        ))),
        None => path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| *s != "-")
            .map(str::to_string)
            .ok_or_else(|| {
                ClientError::Usage("give the name with --name or as `name` in the file".into())
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yaml_and_json_files_read_alike() {
        let dir = tempfile_dir();
        let yaml = dir.join("w.yaml");
        std::fs::write(&yaml, "name: w\nsteps:\n  - name: a\n    plugin: echo\n").unwrap();
        let json = dir.join("w.json");
        std::fs::write(
            &json,
            r#"{"name": "w", "steps": [{"name": "a", "plugin": "echo"}]}"#,
        )
        .unwrap();
        let mut a = read_object(&yaml).await.unwrap();
        let b = {
            let mut b = read_object(&json).await.unwrap();
            assert_eq!(take_name(&mut b, None, &json).unwrap(), "w");
            b
        };
        assert_eq!(
            take_name(&mut a, Some("other".into()), &yaml).unwrap(),
            "other"
        );
        assert_eq!(a, b);
        let list = dir.join("list.json");
        std::fs::write(&list, "[1]").unwrap();
        let e = read_object(&list).await.unwrap_err().to_string();
        assert!(e.contains("must hold an object"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("corral-files-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
