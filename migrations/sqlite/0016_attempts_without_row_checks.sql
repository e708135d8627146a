-- The foreign key from `attempts` to `jobs` goes, as on PostgreSQL (whose
-- migration 0016 says why): attempts are inserted only by the outcome
-- batch, for job rows it has just updated, and a trigger does the key's
-- cascade (a deleted job takes its attempts with it). SQLite cannot drop
-- a foreign key, so the table is rebuilt, with the same columns, checks
-- and primary key.
CREATE TABLE attempts_rebuilt (
    job_id            TEXT NOT NULL,
    attempt           INTEGER NOT NULL CHECK (attempt >= 1),
    tenant_id         TEXT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN
                          ('completed', 'invalid_result', 'failed', 'fatal', 'trapped', 'fuel_exhausted',
                           'memory_exceeded', 'timeout', 'output_too_large', 'cancelled', 'lease_expired')),
    message           TEXT,
    started_at        INTEGER NOT NULL,
    finished_at       INTEGER NOT NULL CHECK (finished_at >= started_at),
    fuel_consumed     INTEGER NOT NULL CHECK (fuel_consumed >= 0),
    peak_memory_bytes INTEGER NOT NULL CHECK (peak_memory_bytes >= 0),
    host_id           TEXT NOT NULL,
    log               TEXT NOT NULL DEFAULT '',
    log_dropped_bytes INTEGER NOT NULL DEFAULT 0,
    http              TEXT,
    PRIMARY KEY (job_id, attempt)
);
INSERT INTO attempts_rebuilt (job_id, attempt, tenant_id, outcome, message, started_at, finished_at,
                              fuel_consumed, peak_memory_bytes, host_id, log, log_dropped_bytes, http)
SELECT job_id, attempt, tenant_id, outcome, message, started_at, finished_at,
       fuel_consumed, peak_memory_bytes, host_id, log, log_dropped_bytes, http
FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_rebuilt RENAME TO attempts;

CREATE TRIGGER jobs_attempts_delete AFTER DELETE ON jobs
BEGIN
    DELETE FROM attempts WHERE job_id = OLD.id;
END;
