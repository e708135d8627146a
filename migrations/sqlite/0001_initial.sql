-- Corral's schema on SQLite (times are microseconds since the Unix epoch, UTC). Never edit once landed: add a new migration.

CREATE TABLE tenants (
    id                   TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 63 AND id NOT GLOB '*[^a-z0-9_-]*' AND substr(id, 1, 1) GLOB '[a-z0-9]'),
    name                 TEXT NOT NULL,
    max_concurrency      INTEGER NOT NULL CHECK (max_concurrency > 0),
    max_fuel_per_attempt INTEGER NOT NULL CHECK (max_fuel_per_attempt > 0),
    max_memory_mb        INTEGER NOT NULL CHECK (max_memory_mb > 0),
    max_timeout_ms       INTEGER NOT NULL CHECK (max_timeout_ms > 0),
    max_plugin_bytes     INTEGER NOT NULL CHECK (max_plugin_bytes > 0),
    max_queued_jobs      INTEGER NOT NULL CHECK (max_queued_jobs > 0),
    enqueue_per_minute   INTEGER NOT NULL CHECK (enqueue_per_minute > 0),
    created_at           INTEGER NOT NULL
);

-- API keys, stored only as hashes. A key without a tenant is an admin key.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Component bytes, stored once per digest whatever the number of versions naming them.
CREATE TABLE plugin_blobs (
    digest     TEXT PRIMARY KEY CHECK (length(digest) = 71 AND substr(digest, 1, 7) = 'sha256:' AND substr(digest, 8) NOT GLOB '*[^0-9a-f]*'),
    bytes      BLOB NOT NULL,
    size       INTEGER NOT NULL CHECK (size = length(bytes)),
    created_at INTEGER NOT NULL
);

CREATE TABLE plugins (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63 AND name NOT GLOB '*[^a-z0-9_-]*' AND substr(name, 1, 1) GLOB '[a-z0-9]'),
    version      INTEGER NOT NULL CHECK (version > 0),
    digest       TEXT NOT NULL REFERENCES plugin_blobs (digest),
    fuel         INTEGER NOT NULL CHECK (fuel > 0),
    memory_bytes INTEGER NOT NULL CHECK (memory_bytes > 0),
    timeout_ms   INTEGER NOT NULL CHECK (timeout_ms > 0),
    result_bytes INTEGER NOT NULL CHECK (result_bytes > 0),
    log_bytes    INTEGER NOT NULL CHECK (log_bytes > 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),
    config       TEXT NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- The job state machine (docs/job-states.md). A job waiting to run is
-- `scheduled` (first run in the future), `available` or `retrying` (after a
-- failed attempt); `run_at` says when it may be claimed.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin           TEXT NOT NULL,
    plugin_version   INTEGER NOT NULL,
    digest           TEXT NOT NULL,
    queue            TEXT NOT NULL CHECK (length(queue) BETWEEN 1 AND 63 AND queue NOT GLOB '*[^a-z0-9_-]*' AND substr(queue, 1, 1) GLOB '[a-z0-9]'),
    priority         INTEGER NOT NULL CHECK (priority BETWEEN -1000 AND 1000),
    state            TEXT NOT NULL CHECK (state IN
                         ('scheduled', 'available', 'running', 'retrying', 'completed', 'dead', 'cancelled')),
    input            TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts > 0),
    timeout_ms       INTEGER CHECK (timeout_ms > 0),
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    attempt_started_at INTEGER,
    lease_token      TEXT,
    lease_expires_at INTEGER,
    leased_by        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    progress_percent INTEGER CHECK (progress_percent BETWEEN 0 AND 100),
    progress_message TEXT,
    idempotency_key  TEXT,
    replay_of        TEXT,
    workflow_run_id  TEXT,
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

CREATE TABLE attempts (
    job_id            TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
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
    PRIMARY KEY (job_id, attempt)
);
