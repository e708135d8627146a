-- The ring's order (docs/queue.md, "Claim"): a tenant's turn comes up at
-- the later of its last turn (`served_at`) and the time its next job is
-- due (`ready_at`). Tenants whose jobs all wait for later then sort after
-- every tenant with a job due, so a claim's turn stops before them in the
-- index, instead of stepping over each of them on every claim.
-- The expression must stay the one `store/sql/claim.rs` orders by.
DROP INDEX claim_ring_turn;
CREATE INDEX claim_ring_turn ON claim_ring (max(served_at, ready_at), tenant_id)
    WHERE ready_at IS NOT NULL;
