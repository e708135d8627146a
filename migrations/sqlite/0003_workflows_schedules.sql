-- Issue 5: workflows (DAGs of plugins) and cron schedules (times are microseconds since the Unix epoch, UTC). docs/workflows.md
-- and docs/schedules.md describe the state machines these tables hold.

-- A workflow definition, versioned per name like plugins. `definition` is
-- the validated JSON the tenant sent (steps, dependencies, policies).
CREATE TABLE workflows (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63 AND name NOT GLOB '*[^a-z0-9_-]*' AND substr(name, 1, 1) GLOB '[a-z0-9]'),
    version    INTEGER NOT NULL CHECK (version > 0),
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

-- One run of a workflow version. Its row is the run's lock: every change to
-- the run's steps happens in a transaction holding it (`FOR UPDATE`).
CREATE TABLE workflow_runs (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                         ('running', 'completed', 'failed', 'partially_failed', 'cancelled')),
    input            TEXT NOT NULL,
    error            TEXT,
    schedule         TEXT,
    created_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    FOREIGN KEY (tenant_id, workflow, workflow_version) REFERENCES workflows (tenant_id, name, version)
        ON DELETE CASCADE,
    CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX workflow_runs_tenant ON workflow_runs (tenant_id, id DESC);
CREATE INDEX workflow_runs_finished ON workflow_runs (finished_at) WHERE finished_at IS NOT NULL;

-- The steps of a run, created with it (plugin versions pinned then).
-- A fan-out step (`for_each`) keeps its elements in `items` and counts the
-- element jobs it started and saw finish.
CREATE TABLE workflow_steps (
    run_id         TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    step           TEXT NOT NULL,
    position       INTEGER NOT NULL CHECK (position >= 0),
    tenant_id      TEXT NOT NULL,
    plugin         TEXT NOT NULL,
    plugin_version INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN
                       ('pending', 'running', 'completed', 'failed', 'skipped', 'cancelled')),
    job_id         TEXT,
    items          TEXT,
    item_count     INTEGER CHECK (item_count >= 0),
    items_started  INTEGER NOT NULL DEFAULT 0 CHECK (items_started >= 0),
    items_done     INTEGER NOT NULL DEFAULT 0 CHECK (items_done >= 0),
    result         TEXT,
    error          TEXT,
    skipped_by     TEXT,
    started_at     INTEGER,
    finished_at    INTEGER,
    PRIMARY KEY (run_id, step),
    FOREIGN KEY (tenant_id, plugin, plugin_version) REFERENCES plugins (tenant_id, name, version),
    CHECK ((state IN ('completed', 'failed', 'skipped', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK (items_done <= items_started AND items_started <= COALESCE(item_count, 1))
);
-- Deleting a plugin version asks whether a running run still needs it.
CREATE INDEX workflow_steps_pending_plugin ON workflow_steps (tenant_id, plugin, plugin_version)
    WHERE state IN ('pending', 'running');

-- A step's jobs: the run, the step, and the element of a fan-out.
ALTER TABLE jobs ADD COLUMN workflow_step TEXT;
ALTER TABLE jobs ADD COLUMN workflow_item INTEGER;
-- What the guest sees as `job.context`: the run input and upstream results.
ALTER TABLE jobs ADD COLUMN context TEXT;
CREATE INDEX jobs_workflow ON jobs (workflow_run_id, workflow_step, workflow_item)
    WHERE workflow_run_id IS NOT NULL;

-- A cron schedule: fires a plugin job or a workflow run at each tick.
-- `next_tick` is the first tick not yet fired; hosts claim due schedules with
-- `FOR UPDATE SKIP LOCKED`.
CREATE TABLE schedules (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 63 AND name NOT GLOB '*[^a-z0-9_-]*' AND substr(name, 1, 1) GLOB '[a-z0-9]'),
    cron       TEXT NOT NULL,
    timezone   TEXT NOT NULL,
    target     TEXT NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    catch_up   INTEGER NOT NULL DEFAULT 0 CHECK (catch_up IN (0, 1)),
    next_tick  INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE paused = 0 AND next_tick IS NOT NULL;

-- One row per fired tick: the unique key makes each tick fire exactly once,
-- whichever host and however many hosts try.
CREATE TABLE schedule_ticks (
    tenant_id TEXT NOT NULL,
    schedule  TEXT NOT NULL,
    tick      INTEGER NOT NULL,
    job_id    TEXT,
    run_id    TEXT,
    error     TEXT,
    fired_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, schedule, tick),
    FOREIGN KEY (tenant_id, schedule) REFERENCES schedules (tenant_id, name) ON DELETE CASCADE
);
