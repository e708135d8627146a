-- Tenant secrets, sealed (XChaCha20-Poly1305 under the host's secret key,
-- bound to tenant and name): the database never holds a plaintext
-- (docs/http.md, "Secrets").
CREATE TABLE secrets (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    nonce      BLOB NOT NULL,
    key_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
