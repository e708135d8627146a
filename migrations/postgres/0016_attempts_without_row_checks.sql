-- The foreign key from `attempts` to `jobs` checked every inserted attempt
-- with a query of its own (a row-level trigger that locks the job's row):
-- about 7 µs of each job's outcome batch (docs/benchmarks.md). It guarded
-- nothing: one statement inserts attempts, the outcome batch
-- (`store/sql/batches.rs`), and it inserts them only for the job rows it
-- has just locked and updated, so none can name a missing job. What the key still did was its cascade, which this
-- statement trigger does once per DELETE: a deleted job takes its attempts
-- with it (retention, a deleted tenant).
ALTER TABLE attempts DROP CONSTRAINT attempts_job_id_fkey;

CREATE FUNCTION corral_job_attempts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM attempts WHERE job_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
-- PL/pgSQL keeps the plan it makes at a connection's first delete (as in
-- 0015): made for a first delete of 1,000 jobs while `attempts` was small,
-- it was a hash join that read all of `attempts`, and every later delete
-- kept reading it all (10 jobs deleted beside 200,000 attempts: 43 ms).
-- Without hash and merge joins the plan is the key's cascade: one probe of
-- `attempts`' primary key per deleted job (0.09 ms).
ALTER FUNCTION corral_job_attempts_delete() SET enable_hashjoin = off;
ALTER FUNCTION corral_job_attempts_delete() SET enable_mergejoin = off;
CREATE TRIGGER jobs_attempts_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION corral_job_attempts_delete();
