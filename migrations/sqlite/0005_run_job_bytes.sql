-- The bytes of job inputs and contexts a run has created (and reserved for
-- its fan-outs): bounded per run (docs/workflows.md, "Limits").
ALTER TABLE workflow_runs ADD COLUMN job_bytes INTEGER NOT NULL DEFAULT 0;
