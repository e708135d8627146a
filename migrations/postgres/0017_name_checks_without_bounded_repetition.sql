-- The name rule (1 to 63 of a-z, 0-9, _ and -, starting with a letter or
-- digit; `model::Name`) as 0001 and 0003 wrote it, `~ '^[a-z0-9][a-z0-9_-]{0,62}$'`,
-- costs PostgreSQL's regex engine 3.6-5.7 µs a row: the bounded repetition
-- makes a large automaton. PostgreSQL checks every CHECK of a row at every
-- UPDATE, whichever columns change, so `jobs.queue`'s paid it at each
-- claim, heartbeat and outcome of every job (about 7% of the database's
-- time per job, docs/benchmarks.md). The same rule with the length apart
-- costs 0.3 µs. The other tables' checks change with it, so the rule reads
-- the same everywhere.
ALTER TABLE tenants DROP CONSTRAINT tenants_id_check,
    ADD CONSTRAINT tenants_id_check CHECK (length(id) <= 63 AND id ~ '^[a-z0-9][a-z0-9_-]*$');
ALTER TABLE plugins DROP CONSTRAINT plugins_name_check,
    ADD CONSTRAINT plugins_name_check CHECK (length(name) <= 63 AND name ~ '^[a-z0-9][a-z0-9_-]*$');
ALTER TABLE jobs DROP CONSTRAINT jobs_queue_check,
    ADD CONSTRAINT jobs_queue_check CHECK (length(queue) <= 63 AND queue ~ '^[a-z0-9][a-z0-9_-]*$');
ALTER TABLE workflows DROP CONSTRAINT workflows_name_check,
    ADD CONSTRAINT workflows_name_check CHECK (length(name) <= 63 AND name ~ '^[a-z0-9][a-z0-9_-]*$');
ALTER TABLE schedules DROP CONSTRAINT schedules_name_check,
    ADD CONSTRAINT schedules_name_check CHECK (length(name) <= 63 AND name ~ '^[a-z0-9][a-z0-9_-]*$');
