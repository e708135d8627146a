//! The plugins a runtime keeps compiled in memory: a least-recently-used
//! cache bounded in bytes (a plugin's size is its compiled artifact's, the
//! code the engine maps). Without a bound, every distinct component a host
//! ever ran stayed in memory: four uploads with 20 MiB data segments raised
//! a host by 130 MB, and deleting every version freed nothing. An evicted
//! plugin loads again from the disk cache (milliseconds) when next needed;
//! attempts running it keep their own reference until they end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

use super::Plugin;
use crate::model::Digest;

/// Bytes of compiled plugins one process keeps in memory. An interpreter
/// plugin is 40-80 MB compiled, a Rust one well under 1 MB.
pub const MAX_LOADED_PLUGIN_BYTES: usize = 2 << 30;

pub(super) type Cell = Arc<OnceCell<Arc<Plugin>>>;

pub(super) struct LoadedPlugins {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Digest, Entry>,
    /// Sizes of the loaded entries, summed.
    bytes: usize,
    /// Bumped on every use: an entry's `used` orders evictions.
    clock: u64,
}

struct Entry {
    cell: Cell,
    /// Counted in `bytes` once loaded.
    size: usize,
    used: u64,
}

impl LoadedPlugins {
    pub(super) fn new(max_bytes: usize) -> LoadedPlugins {
        LoadedPlugins {
            max_bytes,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cell of `digest` (made empty when absent), marked as just used.
    pub(super) fn cell(&self, digest: Digest) -> Cell {
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        let entry = inner.entries.entry(digest).or_insert_with(|| Entry {
            cell: Cell::default(),
            size: 0,
            used,
        });
        entry.used = used;
        entry.cell.clone()
    }

    /// After loading into `cell`: count the plugin's bytes and evict the
    /// least recently used others until the total fits. On a failed load,
    /// drop the empty cell (garbage uploads must not grow the map).
    pub(super) fn settle(&self, digest: Digest, cell: &Cell) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(&digest) else {
            return;
        };
        if !Arc::ptr_eq(&entry.cell, cell) {
            return;
        }
        match cell.get() {
            // Only the map and this caller hold it: nobody else is loading
            // it (a `load_cached` that missed must not drop the cell a
            // concurrent `load` is filling; the last caller out removes it).
            None if Arc::strong_count(cell) <= 2 => {
                inner.entries.remove(&digest);
            }
            None => {}
            Some(plugin) if entry.size == 0 => {
                entry.size = plugin.size.max(1);
                inner.bytes += entry.size;
                while inner.bytes > self.max_bytes {
                    let Some(oldest) = inner
                        .entries
                        .iter()
                        .filter(|(d, e)| **d != digest && e.size > 0)
                        .min_by_key(|(_, e)| e.used)
                        .map(|(d, _)| *d)
                    else {
                        break;
                    };
                    if let Some(evicted) = inner.entries.remove(&oldest) {
                        inner.bytes -= evicted.size;
                    }
                }
            }
            Some(_) => {}
        }
    }

    /// Drop `digest` (its last version was deleted).
    pub(super) fn forget(&self, digest: Digest) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.remove(&digest) {
            inner.bytes -= entry.size;
        }
    }

    /// Plugins in memory, and their bytes.
    pub(super) fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        let loaded = inner.entries.values().filter(|e| e.size > 0).count();
        (loaded, inner.bytes)
    }
}
