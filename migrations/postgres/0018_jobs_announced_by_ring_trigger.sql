-- Jobs made to wait are announced (`NOTIFY corral_jobs`) by the trigger
-- that puts their tenant in the claim ring (0011), in the statement that
-- made them wait, instead of by a `pg_notify` statement the store sent in
-- the transaction. An enqueue without an idempotency key is then one
-- statement committed on its own: one round trip to the database instead of
-- four (BEGIN, the insert, the NOTIFY, COMMIT). On a busy host each round
-- trip waits for the host and the database to be scheduled, and those
-- waits were most of an enqueue call's time (docs/benchmarks.md, "One
-- statement per enqueue").
--
-- Every statement that leaves jobs waiting is announced, whatever their
-- `run_at`, as enqueues always were: an enqueue, a released or rescued
-- lease, a replay, a workflow step, and now a retry too (a host that hears
-- it and finds nothing due yet claims nothing). Notifications of one
-- transaction are folded into one, so a statement announces once.
CREATE OR REPLACE FUNCTION corral_claim_ring_ready() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    waiting RECORD;
    announced BOOLEAN := FALSE;
BEGIN
    FOR waiting IN
        SELECT tenant_id, min(run_at) AS ready_at FROM new_rows
        WHERE state IN ('scheduled', 'available', 'retrying')
        GROUP BY tenant_id ORDER BY tenant_id
    LOOP
        IF NOT announced THEN
            PERFORM pg_notify('corral_jobs', '');
            announced := TRUE;
        END IF;
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
