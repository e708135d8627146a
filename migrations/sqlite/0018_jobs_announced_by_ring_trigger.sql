-- Nothing to change on SQLite, which announces new jobs from the store, in
-- this process, after the commit (see
-- migrations/postgres/0018_jobs_announced_by_ring_trigger.sql); kept so
-- that both backends number their migrations alike.
SELECT 1;
