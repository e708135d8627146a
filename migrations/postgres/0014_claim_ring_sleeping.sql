-- Tenants whose jobs all wait for later leave the turn (docs/queue.md,
-- "Claim"). Before this, the turn's index held every ring row with a
-- waiting job, due or not, and a claim stepped over the not-yet-due ones on
-- every turn: with 20,000 tenants whose jobs waited for tomorrow, a claim
-- at 10,000 tenants with due jobs took twice as long (docs/benchmarks.md).
--
-- A sleeping row is out of the turn: its tenant has nothing waiting
-- (ready_at NULL) or nothing due before ready_at, its alarm. Only a claim
-- wakes a row, once its alarm has come, through `claim_ring_wake`; only a
-- claim puts one to sleep, the claim that finds it drained. The enqueue
-- triggers of 0011 are unchanged: a new row starts asleep (the default),
-- and lowering an alarm leaves the row as it is, so they read no clock, and
-- the ring's lock protocol with claims is the one 0011 describes.
ALTER TABLE claim_ring ADD COLUMN sleeping BOOLEAN NOT NULL DEFAULT TRUE;
-- Every existing row starts asleep; claims wake the due ones, a claim's
-- worth at a time, oldest alarm first.
DROP INDEX claim_ring_turn;
CREATE INDEX claim_ring_turn ON claim_ring (served_at, tenant_id) WHERE NOT sleeping;
CREATE INDEX claim_ring_wake ON claim_ring (ready_at) WHERE sleeping;
