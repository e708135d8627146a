-- Idempotency keys of requests that create things (docs/api.md,
-- "Idempotency"): one per tenant and key, with a fingerprint of the request
-- that first used it (a different request under the same key is refused) and
-- the ids that request answered (jobs, or a workflow run). Pruned with the
-- finished jobs they led to.
CREATE TABLE request_keys (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    answer      JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX request_keys_created ON request_keys (created_at);
