-- Issue 4: deleting plugin versions, the enqueue-rate quota, progress events.

-- A deleted version leaves a tombstone: the jobs that ran it (kept until
-- retention prunes them) still name it, and its number is never reused.
ALTER TABLE plugins ADD COLUMN deleted_at INTEGER;

-- The enqueue-rate quota: jobs each tenant enqueued in the current minute.
-- One row per tenant, reset when a new minute starts.
CREATE TABLE tenant_enqueue_rate (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    window_start INTEGER NOT NULL,
    jobs         INTEGER NOT NULL CHECK (jobs >= 0)
);
