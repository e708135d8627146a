//! The on-disk cache of compiled components, so a restart never recompiles.
//!
//! Files live in one directory opened once as a cap-std `Dir`: every path
//! is resolved inside it, so no digest or name can ever reach outside. A file
//! is named `<digest hex>-<engine compatibility key>.cwasm`; an engine with
//! other codegen settings or another wasmtime version simply misses.
//!
//! Loading an artifact runs native code that wasmtime produced, so the
//! directory must be writable only by the host (it holds nothing a guest or
//! a client can write: artifacts come only from our compiler process).

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use super::RuntimeError;
use crate::model::Digest;

pub struct ArtifactCache {
    dir: Dir,
    key: String,
}

/// Distinguishes concurrent writers' temporary files within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ArtifactCache {
    /// Open (creating if needed) the cache directory at `path`.
    pub fn open(path: &Path, engine_key: String) -> Result<ArtifactCache, RuntimeError> {
        let cache_err = |e: std::io::Error| RuntimeError::Cache(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(path).map_err(cache_err)?;
        let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(cache_err)?;
        Ok(ArtifactCache {
            dir,
            key: engine_key,
        })
    }

    fn file_name(&self, digest: &Digest) -> String {
        format!("{}-{}.cwasm", digest.hex(), self.key)
    }

    /// The artifact for `digest`, if cached.
    pub fn read(&self, digest: &Digest) -> Result<Option<Vec<u8>>, RuntimeError> {
        match self.dir.read(self.file_name(digest)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RuntimeError::Cache(format!(
                "reading {}: {e}",
                self.file_name(digest)
            ))),
        }
    }

    /// Store the artifact for `digest`. Written to a temporary name and
    /// renamed, so a reader never sees half a file, even across processes.
    pub fn write(&self, digest: &Digest, artifact: &[u8]) -> Result<(), RuntimeError> {
        let name = self.file_name(digest);
        let temp = format!(
            "{name}.tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let written = (|| {
            let mut file = self.dir.create(&temp)?;
            file.write_all(artifact)?;
            file.sync_all()?;
            self.dir.rename(&temp, &self.dir, &name)
        })();
        written.map_err(|e| {
            let _ = self.dir.remove_file(&temp);
            RuntimeError::Cache(format!("writing {name}: {e}"))
        })
    }

    /// Drop a cached artifact that failed to load.
    pub fn remove(&self, digest: &Digest) {
        let _ = self.dir.remove_file(self.file_name(digest));
    }
}
