-- Worker hosts, for the dashboard's "hosts alive" (docs/dashboard.md). Every
-- worker host writes its row when it starts and every `HOST_BEAT` after
-- (worker/mod.rs), and deletes it when it stops gracefully; a host that died
-- stops being seen, and the janitor deletes rows unseen for `HOST_FORGET`.
-- Operators start hosts, tenants cannot: the rows are as many as the
-- processes that ran in the last hour.
CREATE TABLE hosts (
    host_id     TEXT NOT NULL PRIMARY KEY,
    concurrency INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
CREATE INDEX hosts_seen ON hosts (seen_at);
