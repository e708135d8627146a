-- Corral's schema on PostgreSQL. Never edit once landed: add a new migration.

CREATE TABLE tenants (
    id                   TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name                 TEXT NOT NULL,
    max_concurrency      INTEGER NOT NULL CHECK (max_concurrency > 0),
    max_fuel_per_attempt BIGINT NOT NULL CHECK (max_fuel_per_attempt > 0),
    max_memory_mb        INTEGER NOT NULL CHECK (max_memory_mb > 0),
    max_timeout_ms       BIGINT NOT NULL CHECK (max_timeout_ms > 0),
    max_plugin_bytes     BIGINT NOT NULL CHECK (max_plugin_bytes > 0),
    max_queued_jobs      BIGINT NOT NULL CHECK (max_queued_jobs > 0),
    enqueue_per_minute   INTEGER NOT NULL CHECK (enqueue_per_minute > 0),
    created_at           TIMESTAMPTZ NOT NULL
);

-- API keys, stored only as hashes. A key without a tenant is an admin key.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Component bytes, stored once per digest whatever the number of versions naming them.
CREATE TABLE plugin_blobs (
    digest     TEXT PRIMARY KEY CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    bytes      BYTEA NOT NULL,
    size       BIGINT NOT NULL CHECK (size = length(bytes)),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE plugins (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    version      INTEGER NOT NULL CHECK (version > 0),
    digest       TEXT NOT NULL REFERENCES plugin_blobs (digest),
    fuel         BIGINT NOT NULL CHECK (fuel > 0),
    memory_bytes BIGINT NOT NULL CHECK (memory_bytes > 0),
    timeout_ms   BIGINT NOT NULL CHECK (timeout_ms > 0),
    result_bytes BIGINT NOT NULL CHECK (result_bytes > 0),
    log_bytes    BIGINT NOT NULL CHECK (log_bytes > 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    config       JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- The job state machine (docs/job-states.md). A job waiting to run is
-- `scheduled` (first run in the future), `available` or `retrying` (after a
-- failed attempt); `run_at` says when it may be claimed.
CREATE TABLE jobs (
    id               UUID PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin           TEXT NOT NULL,
    plugin_version   INTEGER NOT NULL,
    digest           TEXT NOT NULL,
    queue            TEXT NOT NULL CHECK (queue ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    priority         INTEGER NOT NULL CHECK (priority BETWEEN -1000 AND 1000),
    state            TEXT NOT NULL CHECK (state IN
                         ('scheduled', 'available', 'running', 'retrying', 'completed', 'dead', 'cancelled')),
    input            JSONB NOT NULL,
    result           JSONB,
    error            TEXT,
    attempt          INTEGER NOT NULL CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts > 0),
    timeout_ms       BIGINT CHECK (timeout_ms > 0),
    run_at           TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    attempt_started_at TIMESTAMPTZ,
    lease_token      UUID,
    lease_expires_at TIMESTAMPTZ,
    leased_by        TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    progress_percent SMALLINT CHECK (progress_percent BETWEEN 0 AND 100),
    progress_message TEXT,
    idempotency_key  TEXT,
    replay_of        UUID,
    workflow_run_id  UUID,
    FOREIGN KEY (tenant_id, plugin, plugin_version) REFERENCES plugins (tenant_id, name, version),
    -- A job holds a lease exactly while it runs.
    CHECK ((state = 'running') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL AND leased_by IS NOT NULL)),
    -- Exactly the terminal states have a finish time.
    CHECK ((state IN ('completed', 'dead', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (state <> 'completed' OR result IS NOT NULL),
    CHECK (state <> 'running' OR attempt >= 1),
    CHECK (attempt <= max_attempts)
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The claim: per tenant, the best waiting job first.
CREATE INDEX jobs_waiting ON jobs (tenant_id, priority DESC, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retrying');
-- Running jobs: concurrency per tenant, heartbeats per host, the janitor.
-- One small index (at most hosts x concurrency rows) serves all three: every
-- index is written on every claim and finish, so fewer is faster.
CREATE INDEX jobs_running ON jobs (tenant_id) WHERE state = 'running';
-- Retention and listings.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
-- Listings, newest first: ids are UUIDv7, so they sort by creation time.
CREATE INDEX jobs_tenant_id ON jobs (tenant_id, id DESC);

-- Wake workers whenever jobs are inserted (once per statement; PostgreSQL
-- also folds identical notifications within a transaction).
CREATE FUNCTION corral_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('corral_jobs', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH STATEMENT EXECUTE FUNCTION corral_jobs_notify();

-- Announce every change of a job's state: live event streams and tests
-- follow jobs with this, whichever host moved them. One notification per
-- statement (not per row: at thousands of jobs a second, per-row NOTIFY costs
-- a third of the throughput), each payload up to 100 lines `<job id> <state>`
-- (payloads are limited to 8000 bytes).
CREATE FUNCTION corral_job_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('corral_job_state', lines)
    FROM (
        SELECT string_agg(changed.id::text || ' ' || changed.state, E'\n') AS lines
        FROM (
            SELECT n.id, n.state, (row_number() OVER ()) / 100 AS chunk
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE o.state IS DISTINCT FROM n.state
        ) changed
        GROUP BY changed.chunk
    ) chunks;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_state_notify AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION corral_job_state_notify();

CREATE TABLE attempts (
    job_id            UUID NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL CHECK (attempt >= 1),
    tenant_id         TEXT NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN
                          ('completed', 'invalid_result', 'failed', 'fatal', 'trapped', 'fuel_exhausted',
                           'memory_exceeded', 'timeout', 'output_too_large', 'cancelled', 'lease_expired')),
    message           TEXT,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ NOT NULL CHECK (finished_at >= started_at),
    fuel_consumed     BIGINT NOT NULL CHECK (fuel_consumed >= 0),
    peak_memory_bytes BIGINT NOT NULL CHECK (peak_memory_bytes >= 0),
    host_id           TEXT NOT NULL,
    log               TEXT NOT NULL DEFAULT '',
    log_dropped_bytes BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt)
);
