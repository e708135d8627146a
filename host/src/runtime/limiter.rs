//! The per-attempt resource limiter: sums every linear memory of the
//! component against the plugin's memory limit and remembers a refusal, so a
//! guest that traps after a failed allocation is reported as
//! `memory_exceeded` rather than as a generic trap.

use wasmtime::ResourceLimiter;

use super::engine::MAX_TABLE_ELEMENTS;

/// Core instances one attempt may create. Bounds instantiation work.
pub const MAX_INSTANCES_PER_ATTEMPT: usize = 64;
/// Tables one attempt may create.
pub const MAX_TABLES_PER_ATTEMPT: usize = 64;
/// Linear memories one attempt may create.
pub const MAX_MEMORIES_PER_ATTEMPT: usize = 16;

#[derive(Debug)]
pub struct MemoryLimiter {
    limit: usize,
    total: usize,
    last_grant: usize,
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: u64) -> MemoryLimiter {
        MemoryLimiter {
            limit: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            total: 0,
            last_grant: 0,
            refused: None,
        }
    }

    /// Bytes of linear memory in use at the high-water mark (memories never shrink).
    pub fn peak_bytes(&self) -> u64 {
        self.total as u64
    }

    /// The total the guest asked for when it was refused, if it ever was.
    pub fn refused_at(&self) -> Option<usize> {
        self.refused
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        let wanted = self.total.saturating_add(grow);
        if wanted > self.limit {
            self.refused = Some(wanted);
            return Ok(false);
        }
        self.total = wanted;
        self.last_grant = grow;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // We granted it but wasmtime could not (e.g. past the memory's own
        // maximum): the bytes were never added.
        self.total -= self.last_grant;
        self.last_grant = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES_PER_ATTEMPT
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_ATTEMPT
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_ATTEMPT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_memories_and_records_refusal() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert_eq!(l.peak_bytes(), 90);
        assert!(!l.memory_growing(30, 50, None).unwrap());
        assert_eq!(l.refused_at(), Some(110));
        assert_eq!(l.peak_bytes(), 90);
    }

    #[test]
    fn a_failed_grant_is_given_back() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert!(l.memory_growing(40, 80, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("past maximum"))
            .unwrap();
        assert_eq!(l.peak_bytes(), 40);
    }
}
