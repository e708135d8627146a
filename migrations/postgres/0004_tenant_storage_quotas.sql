-- Issue 13: quotas on what a tenant keeps stored (docs/api.md, "Quotas").
ALTER TABLE tenants ADD COLUMN max_stored_plugin_bytes BIGINT NOT NULL DEFAULT 1073741824
    CHECK (max_stored_plugin_bytes > 0);
ALTER TABLE tenants ADD COLUMN max_schedules INTEGER NOT NULL DEFAULT 100 CHECK (max_schedules > 0);
ALTER TABLE tenants ADD COLUMN max_workflows INTEGER NOT NULL DEFAULT 100 CHECK (max_workflows > 0);
ALTER TABLE tenants ADD COLUMN max_workflow_versions INTEGER NOT NULL DEFAULT 100
    CHECK (max_workflow_versions > 0);
