-- Nothing to change on SQLite, which announces state changes from the
-- store, not from a trigger (see migrations/postgres/0015_job_state_notify_join.sql);
-- kept so that both backends number their migrations alike.
SELECT 1;
