-- Since when a run has waited for its ready steps' `when`/`for_each`
-- expressions to be evaluated. They are evaluated after the transaction
-- that found the steps ready commits (never inside it); a run still marked
-- long after is one whose host crashed first, and any host's evaluator
-- picks it up (docs/workflows.md, "Expressions").
ALTER TABLE workflow_runs ADD COLUMN evaluate_since INTEGER;
CREATE INDEX workflow_runs_awaiting ON workflow_runs (evaluate_since) WHERE evaluate_since IS NOT NULL;
