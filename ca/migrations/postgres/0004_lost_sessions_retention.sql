-- Shiftkey CA store on PostgreSQL, version 4: what SQLite version 12
-- (0012_lost_sessions_retention.sql) does: sessions whose bastion died,
-- retention of sealed recordings, and legal holds.
--
-- A session's bastion names it in a heartbeat every few seconds
-- (`last_seen`); a live session nobody has named for the configured silence
-- is sealed as `lost` (truncated: it holds what reached the CA). Several
-- replicas sweep at once: the claim that starts a lost session's seal is
-- one conditional UPDATE on the locked row, so exactly one of them seals it.

ALTER TABLE sessions DROP CONSTRAINT sessions_status_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_status_check
    CHECK (status IN ('live', 'ended', 'sealed', 'verification-failed', 'lost'));
-- The bastion last named it in a heartbeat (unix seconds).
ALTER TABLE sessions ADD COLUMN last_seen bigint;
-- Retention deleted its recording (the row, seal and file list stay).
ALTER TABLE sessions ADD COLUMN recording_deleted_at bigint;
-- ... and the recording store's bytes are gone too.
ALTER TABLE sessions ADD COLUMN bytes_deleted_at bigint;
-- The bytes are deleted once, after the row says the recording is.
ALTER TABLE sessions ADD CONSTRAINT sessions_bytes_after_recording
    CHECK (bytes_deleted_at IS NULL OR recording_deleted_at IS NOT NULL);

-- The sweep for lost sessions reads only the live ones.
CREATE INDEX sessions_live ON sessions (status, last_seen) WHERE status = 'live';
-- The purge of deleted recordings' bytes reads only those not purged yet.
CREATE INDEX sessions_to_purge ON sessions (recording_deleted_at, id)
    WHERE recording_deleted_at IS NOT NULL AND bytes_deleted_at IS NULL;

-- A legal hold keeps a session's recording whatever the retention says,
-- until released. Who held it, when and why are in the audit log too.
CREATE TABLE recording_holds (
    session  text COLLATE "C" PRIMARY KEY REFERENCES sessions (id),
    reason   text NOT NULL,
    held_by  text NOT NULL,
    held_at  bigint NOT NULL                    -- unix seconds
);

CREATE INDEX recording_seals_sealed ON recording_seals (sealed_at);
