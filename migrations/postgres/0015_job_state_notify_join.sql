-- The state trigger of 0001 (`corral_job_state_notify`) joins the
-- statement's old and new rows by id. PL/pgSQL plans that query once per
-- connection and keeps the plan, made for the row count of the first
-- UPDATE of `jobs` it saw: after a one-row finish that is a nested loop,
-- which then compares every pair of rows of every later statement, 16,384
-- pairs for a claim of 128 (3 ms of it, docs/benchmarks.md), a million for
-- a batch of 1,000. Without nested loops the planner joins them by hash,
-- one pass over each side, whatever count the kept plan was made for.
ALTER FUNCTION corral_job_state_notify() SET enable_nestloop = off;
