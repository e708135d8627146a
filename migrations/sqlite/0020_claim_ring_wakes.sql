-- The wakes of the claim ring (see
-- migrations/postgres/0020_claim_ring_wakes.sql), which spare a PostgreSQL
-- enqueue from waiting on a ring row that a claim or another enqueue holds.
-- SQLite's one writer never has an enqueue wait so: its triggers keep
-- updating the ring row and never write this table, which is here so that
-- both backends migrate to the same schema. Times are microseconds since
-- the epoch.
CREATE TABLE claim_ring_wakes (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    ready_at  INTEGER NOT NULL
);
CREATE INDEX claim_ring_wakes_due ON claim_ring_wakes (ready_at, tenant_id);
CREATE INDEX claim_ring_wakes_tenant ON claim_ring_wakes (tenant_id);
