-- Nothing to change on SQLite, whose store announces new jobs with their
-- tenant itself, in this process, after the commit (see
-- migrations/postgres/0019_jobs_announced_with_their_tenant.sql); kept so
-- that both backends number their migrations alike.
SELECT 1;
