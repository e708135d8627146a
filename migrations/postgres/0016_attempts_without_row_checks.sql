-- The foreign key from `attempts` to `jobs` checked every inserted attempt
-- with a query of its own (a row-level trigger) that also locked the job's
-- row, one more WAL record: about 15 µs of each job's outcome batch
-- (docs/benchmarks.md). It guarded nothing: one statement inserts
-- attempts, the outcome batch (`store/sql/batches.rs`), and it inserts
-- them only for the job rows it has just locked and updated, so none can
-- name a missing job. What the key still did was its cascade, which this
-- statement trigger does once per DELETE: a deleted job takes its attempts
-- with it (retention, a deleted tenant).
ALTER TABLE attempts DROP CONSTRAINT attempts_job_id_fkey;

CREATE FUNCTION corral_job_attempts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM attempts WHERE job_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_attempts_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION corral_job_attempts_delete();
