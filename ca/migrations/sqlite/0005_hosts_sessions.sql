-- Shiftkey CA store, version 5: enrolled hosts and bastions, their one-time
-- join tokens and host certificates, and bastion sessions.

CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY,          -- jt_ + hex: names the token in audit rows
    token_hash  TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the whole token; the token itself is never stored
    name        TEXT NOT NULL,             -- the host's name (db-1)
    kind        TEXT NOT NULL CHECK (kind IN ('host', 'bastion')),
    principals  TEXT NOT NULL,             -- JSON array: the names its host certificate is valid for
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,          -- unix seconds
    used_at     TEXT,
    used_by     TEXT                       -- the host key's fingerprint
);

CREATE TABLE hosts (
    name            TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('host', 'bastion')),
    principals      TEXT NOT NULL,         -- JSON array
    key_fingerprint TEXT NOT NULL,         -- the host key its certificates are for
    enrolled_at     TEXT NOT NULL,
    renewed_at      TEXT
);

CREATE TABLE host_certificates (
    serial          INTEGER PRIMARY KEY,   -- same sequence as user certificates
    name            TEXT NOT NULL REFERENCES hosts(name),
    key_fingerprint TEXT NOT NULL,
    valid_after     INTEGER NOT NULL,
    valid_before    INTEGER NOT NULL,
    issued_at       TEXT NOT NULL,
    certificate     TEXT NOT NULL
);
CREATE INDEX host_certificates_name ON host_certificates(name);

CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,      -- s_ + hex
    identity        TEXT NOT NULL,
    user_serial     INTEGER NOT NULL,      -- the certificate the user came in with
    session_serial  INTEGER NOT NULL,      -- the one-session certificate the bastion used upstream
    role            TEXT NOT NULL,
    incident        TEXT,
    principal       TEXT NOT NULL,
    target          TEXT NOT NULL,         -- host:port
    client_address  TEXT NOT NULL,
    bastion         TEXT NOT NULL,
    started_at      INTEGER NOT NULL,      -- unix seconds
    ended_at        INTEGER,
    exit_status     INTEGER,
    end_reason      TEXT,
    status          TEXT NOT NULL DEFAULT 'live'
                    CHECK (status IN ('live', 'ended', 'sealed', 'verification-failed'))
);
CREATE INDEX sessions_identity ON sessions(identity, started_at);
CREATE INDEX sessions_started ON sessions(started_at);
