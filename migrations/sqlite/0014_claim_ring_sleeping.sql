-- Tenants whose jobs all wait for later leave the turn (docs/queue.md,
-- "Claim"): see migrations/postgres/0014_claim_ring_sleeping.sql for why.
-- A sleeping row is out of the turn; only a claim wakes a row (once its
-- alarm, ready_at, has come) or puts one to sleep (when it finds it
-- drained). The triggers of 0011 are unchanged: a new row starts asleep.
ALTER TABLE claim_ring ADD COLUMN sleeping INTEGER NOT NULL DEFAULT 1
    CHECK (sleeping IN (0, 1));
DROP INDEX claim_ring_turn;
CREATE INDEX claim_ring_turn ON claim_ring (served_at, tenant_id) WHERE NOT sleeping;
CREATE INDEX claim_ring_wake ON claim_ring (ready_at) WHERE sleeping;
