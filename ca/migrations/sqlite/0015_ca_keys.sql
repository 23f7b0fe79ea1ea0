-- Shiftkey CA store, version 15: CA key rotation (`shiftkey-ca keys`).
--
-- Every CA key the rotation commands know, user and host, with its state:
-- `next` (published, not signing yet), `active` (signing; one per kind),
-- `previous` (published, no longer signing, its certificates still valid)
-- and `retired` (no longer published; `revoked` when retired in an
-- emergency, so the KRL names it). A data directory that never rotated has
-- no rows: the key `[keys]` in ca.toml names is the active one, and the
-- first `keys rotate` records it here. Rows are never deleted and each
-- timestamp is set once, which makes the row count plus the set timestamps
-- a generation number that only grows: replicas compare it to know when to
-- reload their signers.

CREATE TABLE ca_keys (
    fingerprint   TEXT PRIMARY KEY,     -- SHA256:... of the public key
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'host')),
    state         TEXT NOT NULL CHECK (state IN ('next', 'active', 'previous', 'retired')),
    public_line   TEXT NOT NULL,        -- OpenSSH public key line, no comment
    location      TEXT NOT NULL,        -- `file`, `file:NAME` (keys/NAME) or a pkcs11: URI
    created_at    INTEGER NOT NULL,     -- unix seconds
    activated_at  INTEGER,
    retired_at    INTEGER,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys(kind) WHERE state = 'active';
CREATE UNIQUE INDEX ca_keys_one_next ON ca_keys(kind) WHERE state = 'next';
CREATE TRIGGER ca_keys_no_delete BEFORE DELETE ON ca_keys
BEGIN SELECT RAISE(ABORT, 'CA keys are kept'); END;

-- Which CA keys each enrolled host had installed at its last
-- `shiftkey host refresh` (fingerprints of its TrustedUserCAKeys).
CREATE TABLE host_ca_reports (
    name          TEXT PRIMARY KEY REFERENCES hosts(name) ON DELETE CASCADE,
    fingerprints  TEXT NOT NULL,        -- JSON array of SHA256:...
    reported_at   INTEGER NOT NULL      -- unix seconds
);
