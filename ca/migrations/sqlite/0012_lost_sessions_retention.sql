-- Shiftkey CA store, version 12: sessions whose bastion died, retention of
-- sealed recordings, and legal holds.
--
-- A session's bastion names it in a heartbeat every few seconds
-- (`last_seen`); a live session nobody has named for the configured silence
-- is sealed as `lost` (truncated: it holds what reached the CA). A new
-- status needs a new CHECK, and SQLite changes a CHECK only by rebuilding
-- the table (the runner turns foreign keys off around a migration and
-- checks them before it commits).

CREATE TABLE sessions_v12 (
    id                   TEXT PRIMARY KEY,      -- s_ + hex
    identity             TEXT NOT NULL,
    user_serial          INTEGER NOT NULL,      -- the certificate the user came in with
    session_serial       INTEGER NOT NULL,      -- the one-session certificate the bastion used upstream
    role                 TEXT NOT NULL,
    incident             TEXT,
    principal            TEXT NOT NULL,
    target               TEXT NOT NULL,         -- host:port
    client_address       TEXT NOT NULL,
    bastion              TEXT NOT NULL,
    started_at           INTEGER NOT NULL,      -- unix seconds
    ended_at             INTEGER,
    exit_status          INTEGER,
    end_reason           TEXT,
    status               TEXT NOT NULL DEFAULT 'live'
                         CHECK (status IN ('live', 'ended', 'sealed', 'verification-failed', 'lost')),
    sealing_since        INTEGER,               -- a seal started (version 9)
    last_seen            INTEGER,               -- the bastion last named it in a heartbeat (unix seconds)
    recording_deleted_at INTEGER,               -- retention deleted its recording (the row, seal and file list stay)
    bytes_deleted_at     INTEGER                -- ... and the recording store's bytes are gone too
);

INSERT INTO sessions_v12 (id, identity, user_serial, session_serial, role, incident, principal,
    target, client_address, bastion, started_at, ended_at, exit_status, end_reason, status,
    sealing_since)
SELECT id, identity, user_serial, session_serial, role, incident, principal,
    target, client_address, bastion, started_at, ended_at, exit_status, end_reason, status,
    sealing_since
FROM sessions;

DROP TABLE sessions;
ALTER TABLE sessions_v12 RENAME TO sessions;

CREATE INDEX sessions_identity ON sessions(identity, started_at);
CREATE INDEX sessions_started ON sessions(started_at);
CREATE INDEX sessions_bastion ON sessions(bastion, status);
CREATE INDEX sessions_target ON sessions(target);
-- The sweep for lost sessions reads only the live ones.
CREATE INDEX sessions_live ON sessions(status, last_seen) WHERE status = 'live';

-- A legal hold keeps a session's recording whatever the retention says,
-- until released. Who held it, when and why are in the audit log too.
CREATE TABLE recording_holds (
    session  TEXT PRIMARY KEY REFERENCES sessions(id),
    reason   TEXT NOT NULL,
    held_by  TEXT NOT NULL,
    held_at  INTEGER NOT NULL                   -- unix seconds
);

CREATE INDEX recording_seals_sealed ON recording_seals(sealed_at);
