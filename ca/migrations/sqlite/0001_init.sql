-- Shiftkey CA store, version 1.

-- Every certificate the CA issued. Written in the same transaction as the
-- audit row that records the decision.
CREATE TABLE certificates (
    serial        INTEGER PRIMARY KEY,
    key_id        TEXT    NOT NULL,
    identity      TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    incident      TEXT,
    request_id    TEXT    NOT NULL,
    principals    TEXT    NOT NULL,  -- JSON array
    valid_after   INTEGER NOT NULL,  -- unix seconds
    valid_before  INTEGER NOT NULL,  -- unix seconds
    key_fingerprint TEXT  NOT NULL,  -- SHA256:... of the subject key
    issued_at     TEXT    NOT NULL,  -- RFC 3339
    certificate   TEXT    NOT NULL   -- OpenSSH certificate line
);
CREATE INDEX certificates_identity ON certificates(identity);
CREATE INDEX certificates_incident ON certificates(incident);

-- The audit log: append-only and hash-chained. Each row's hash covers the
-- previous row's hash and all of this row's fields (see ca/src/audit.rs).
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    ts         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL,  -- JSON object
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

-- Guard rails against accidental edits. They do not stop someone with write
-- access to the file (they can drop the triggers); the hash chain is what
-- detects that, through `shiftkey-ca audit verify`.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER certificates_no_update BEFORE UPDATE ON certificates
BEGIN SELECT RAISE(ABORT, 'issued certificates are immutable'); END;
-- Serials restart from MAX(serial): deleting rows would let them be reused.
CREATE TRIGGER certificates_no_delete BEFORE DELETE ON certificates
BEGIN SELECT RAISE(ABORT, 'issued certificates are kept'); END;
