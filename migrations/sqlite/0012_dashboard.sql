-- The dashboard (docs/dashboard.md) and the bulk routes (`POST /v1/jobs/replay`,
-- `/v1/jobs/cancel`). The two new indexes are partial: a job that completes
-- never enters either, so the hot path writes nothing more.
--
-- Dead letters, newest first: the dead-letter view, its groups and bulk
-- replay walk these, never the (possibly millions of) completed jobs.
CREATE INDEX jobs_dead ON jobs (tenant_id, id DESC) WHERE state = 'dead';
-- The replays of a job: bulk replay skips jobs already replayed, so
-- repeating it (or replaying again after a partial failure) replays each
-- job once.
CREATE INDEX jobs_replay_of ON jobs (tenant_id, replay_of) WHERE replay_of IS NOT NULL;
-- Finished jobs by tenant, then time: the overview counts one tenant's jobs
-- finished in each minute of the last hour (with their state, so from the
-- index alone) instead of every tenant's, and retention walks each tenant's
-- old jobs. Replaces the index of finished jobs by time alone: as many
-- index writes per finished job as before.
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs (tenant_id, finished_at, state) WHERE finished_at IS NOT NULL;
