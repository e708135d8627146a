-- The claim ring (docs/queue.md, "Claim"): the tenants that may have
-- claimable jobs, and whose turn comes next. A claim visits only the
-- tenants at the front of the ring (oldest turn first), so its cost does not
-- grow with the number of tenants. Times are microseconds since the epoch.
CREATE TABLE claim_ring (
    tenant_id TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- No waiting job of the tenant can run before this (a lower bound kept
    -- by the triggers below and the claim); NULL: nothing waits.
    ready_at  INTEGER,
    -- When a claim last gave the tenant its turn.
    served_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX claim_ring_turn ON claim_ring (served_at, tenant_id) WHERE ready_at IS NOT NULL;

INSERT INTO claim_ring (tenant_id, ready_at)
SELECT tenant_id, min(run_at) FROM jobs
WHERE state IN ('scheduled', 'available', 'retrying') GROUP BY tenant_id;

-- Whatever makes a job wait (an enqueue, a retry, a rescued lease, a
-- replay, a workflow step) puts its tenant in the ring. The one writer
-- connection serializes this with the claims.
CREATE TRIGGER jobs_ready_insert AFTER INSERT ON jobs
    WHEN NEW.state IN ('scheduled', 'available', 'retrying')
BEGIN
    INSERT INTO claim_ring (tenant_id, ready_at) VALUES (NEW.tenant_id, NEW.run_at)
    ON CONFLICT (tenant_id) DO UPDATE SET ready_at = excluded.ready_at
    WHERE claim_ring.ready_at IS NULL OR claim_ring.ready_at > excluded.ready_at;
END;
CREATE TRIGGER jobs_ready_update AFTER UPDATE OF state, run_at ON jobs
    WHEN NEW.state IN ('scheduled', 'available', 'retrying')
BEGIN
    INSERT INTO claim_ring (tenant_id, ready_at) VALUES (NEW.tenant_id, NEW.run_at)
    ON CONFLICT (tenant_id) DO UPDATE SET ready_at = excluded.ready_at
    WHERE claim_ring.ready_at IS NULL OR claim_ring.ready_at > excluded.ready_at;
END;
