-- The claim ring (docs/queue.md, "Claim"): the tenants that may have
-- claimable jobs, and whose turn comes next. A claim visits only the
-- tenants at the front of the ring (oldest turn first), so its cost does not
-- grow with the number of tenants, and it locks their rows (SKIP LOCKED), so
-- claimers on many hosts share the ring instead of queueing on one lock.
CREATE TABLE claim_ring (
    tenant_id TEXT NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- No waiting job of the tenant can run before this (a lower bound kept
    -- by the triggers below and the claim); NULL: nothing waits.
    ready_at  TIMESTAMPTZ,
    -- When a claim last gave the tenant its turn.
    served_at TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00'
);
CREATE INDEX claim_ring_turn ON claim_ring (served_at, tenant_id) WHERE ready_at IS NOT NULL;

INSERT INTO claim_ring (tenant_id, ready_at)
SELECT tenant_id, min(run_at) FROM jobs
WHERE state IN ('scheduled', 'available', 'retrying') GROUP BY tenant_id;

-- Whatever makes a job wait (an enqueue, a retry, a rescued lease, a
-- replay, a workflow step) puts its tenant in the ring, once per statement
-- and tenant. When the ring already says "ready by then", it only takes the
-- row FOR KEY SHARE: that does not conflict with a claimer's turn (FOR NO KEY
-- UPDATE), so enqueues never make claims skip the tenant, but it does block a
-- claim about to clear the row (FOR UPDATE SKIP LOCKED, which then leaves it
-- as it is) until this transaction's jobs are visible to it.
CREATE FUNCTION corral_claim_ring_ready() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    waiting RECORD;
BEGIN
    FOR waiting IN
        SELECT tenant_id, min(run_at) AS ready_at FROM new_rows
        WHERE state IN ('scheduled', 'available', 'retrying')
        GROUP BY tenant_id ORDER BY tenant_id
    LOOP
        PERFORM 1 FROM claim_ring
        WHERE tenant_id = waiting.tenant_id AND ready_at <= waiting.ready_at FOR KEY SHARE;
        IF NOT FOUND THEN
            INSERT INTO claim_ring AS r (tenant_id, ready_at)
            VALUES (waiting.tenant_id, waiting.ready_at)
            ON CONFLICT (tenant_id) DO UPDATE SET ready_at = LEAST(r.ready_at, excluded.ready_at);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_ready_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION corral_claim_ring_ready();
CREATE TRIGGER jobs_ready_update AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION corral_claim_ring_ready();
