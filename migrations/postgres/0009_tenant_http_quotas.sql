-- Tenants' caps on their plugins' outbound HTTP (docs/api.md, "Quotas";
-- docs/http.md). The defaults are the host's own caps.
ALTER TABLE tenants ADD COLUMN max_http_requests_per_attempt INTEGER NOT NULL DEFAULT 1000
    CHECK (max_http_requests_per_attempt > 0);
ALTER TABLE tenants ADD COLUMN max_http_response_bytes BIGINT NOT NULL DEFAULT 67108864
    CHECK (max_http_response_bytes > 0);
