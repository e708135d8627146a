-- Plugins' outbound HTTP (docs/http.md): each version's settings (its
-- allow-list and limits; new versions inherit the latest's), and the
-- requests each attempt made.
ALTER TABLE plugins ADD COLUMN http JSONB NOT NULL DEFAULT '{}';
ALTER TABLE attempts ADD COLUMN http JSONB;
