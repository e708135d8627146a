-- An enqueue no longer waits for a row of the claim ring (docs/queue.md,
-- "Claim"). Before this, a statement that made a tenant's jobs wait when
-- the tenant's ring row was asleep updated that row (0011's upsert), and a
-- claim about to put the row to sleep held it `FOR UPDATE`: so an enqueue
-- waited for another enqueue of the same tenant to commit, or for a claim
-- that was draining the tenant to commit, 20-40 ms on a busy host, most of
-- the pickup's p99 behind a backlog (docs/benchmarks.md, "An enqueue waits
-- for no ring row").
--
-- Now the trigger writes to the ring row only when the tenant is not in
-- the ring yet. Otherwise it either takes the row `FOR KEY SHARE` as before
-- (the row is ready by then: that conflicts with no claim's turn and makes
-- a claim about to put the row to sleep leave it awake), or, when the row
-- is asleep or held by such a claim, it adds a wake: a row of
-- `claim_ring_wakes`, which no one else writes, so the insert waits for no
-- one. A claim's turn takes the tenants with a wake that has come due as
-- it takes the due sleeping rows, and deletes the wakes it saw (only
-- those: a wake committed after the turn began is left for the next claim,
-- as its job may not be visible to this one).
-- Its key is to `tenants`, not to `claim_ring`: checking a key to the ring
-- would take the ring row FOR KEY SHARE, and wait for the claim that holds
-- it FOR UPDATE.
CREATE TABLE claim_ring_wakes (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The earliest `run_at` of the jobs that added it.
    ready_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX claim_ring_wakes_due ON claim_ring_wakes (ready_at, tenant_id);
CREATE INDEX claim_ring_wakes_tenant ON claim_ring_wakes (tenant_id);

CREATE OR REPLACE FUNCTION corral_claim_ring_ready() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    waiting RECORD;
    tenants INTEGER := 0;
    named TEXT;
BEGIN
    FOR waiting IN
        SELECT tenant_id, min(run_at) AS ready_at FROM new_rows
        WHERE state IN ('scheduled', 'available', 'retrying')
        GROUP BY tenant_id ORDER BY tenant_id
    LOOP
        tenants := tenants + 1;
        named := waiting.tenant_id;
        -- Ready by then: keep it so until this commits. SKIP LOCKED: a claim
        -- about to put the row to sleep holds it FOR UPDATE; not waiting for
        -- it, this adds a wake instead.
        PERFORM 1 FROM claim_ring
        WHERE tenant_id = waiting.tenant_id AND ready_at <= waiting.ready_at
        FOR KEY SHARE SKIP LOCKED;
        IF NOT FOUND THEN
            -- A plain read, which waits for no one (an insert that meets a
            -- row being updated waits for that update's transaction).
            PERFORM 1 FROM claim_ring WHERE tenant_id = waiting.tenant_id;
            IF FOUND THEN
                INSERT INTO claim_ring_wakes (tenant_id, ready_at)
                VALUES (waiting.tenant_id, waiting.ready_at);
            ELSE
                INSERT INTO claim_ring (tenant_id, ready_at)
                VALUES (waiting.tenant_id, waiting.ready_at)
                ON CONFLICT (tenant_id) DO NOTHING;
                -- Put in the ring meanwhile by another statement: a wake.
                IF NOT FOUND THEN
                    INSERT INTO claim_ring_wakes (tenant_id, ready_at)
                    VALUES (waiting.tenant_id, waiting.ready_at);
                END IF;
            END IF;
        END IF;
    END LOOP;
    IF tenants = 1 THEN
        PERFORM pg_notify('corral_jobs', named);
    ELSIF tenants > 1 THEN
        PERFORM pg_notify('corral_jobs', '');
    END IF;
    RETURN NULL;
END
$$;
