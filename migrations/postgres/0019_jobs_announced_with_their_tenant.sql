-- The announcement of jobs made to wait (`NOTIFY corral_jobs`, 0018) names
-- their tenant when the statement made one tenant's jobs wait, and is empty
-- when it made several tenants' wait. A host's fresh lane claims for the
-- tenants it heard named, so the few permits it holds beside a busy claim
-- loop go to the new jobs, not to a backlog's (docs/queue.md, "The fresh
-- lane"). Notifications of one transaction with the same payload are still
-- folded into one; a statement announces once.
--
-- The first announcement of inserts (0001's `jobs_notify`, an empty payload
-- per INSERT statement) goes: the ring trigger announces every statement that
-- leaves jobs waiting, inserts included, so it said the same thing again,
-- and now that the two payloads differ it would no longer be folded into the
-- ring trigger's: a host would hear every enqueue twice, once naming no one.
DROP TRIGGER jobs_notify ON jobs;
DROP FUNCTION corral_jobs_notify();
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
        PERFORM 1 FROM claim_ring
        WHERE tenant_id = waiting.tenant_id AND ready_at <= waiting.ready_at FOR KEY SHARE;
        IF NOT FOUND THEN
            INSERT INTO claim_ring AS r (tenant_id, ready_at)
            VALUES (waiting.tenant_id, waiting.ready_at)
            ON CONFLICT (tenant_id) DO UPDATE SET ready_at = LEAST(r.ready_at, excluded.ready_at);
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
