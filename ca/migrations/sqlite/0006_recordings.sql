-- Shiftkey CA store, version 6: sealed recordings of bastion sessions and
-- their search index. The recorded bytes themselves are files under the
-- data directory (recordings/SESSION/NAME); these tables hold what the CA
-- signed about them.

-- One row per sealed session: the manifest exactly as signed.
CREATE TABLE recording_seals (
    session     TEXT PRIMARY KEY REFERENCES sessions(id),
    manifest    TEXT NOT NULL,             -- JSON (shiftkey_wire::RecordingManifest), the signed bytes
    digest      TEXT NOT NULL,             -- hex SHA-256 of manifest
    signature   TEXT NOT NULL,             -- armored SSHSIG by the user CA key, namespace shiftkey-recording@shiftkey
    problems    TEXT NOT NULL DEFAULT '[]', -- JSON array: where the bastion's claims and our copy differed
    claims      TEXT NOT NULL,             -- hex SHA-256 of the seal request's files: a retried seal is recognized
    sealed_at   INTEGER NOT NULL           -- unix seconds
);

-- The files of a sealed session, as the CA stored them.
CREATE TABLE recording_files (
    session TEXT NOT NULL REFERENCES sessions(id),
    name    TEXT NOT NULL,                 -- 0.cast.gz, 1.sftp.jsonl.gz
    kind    TEXT NOT NULL,                 -- shell, exec, sftp
    command TEXT,                          -- an exec channel's command
    bytes   INTEGER NOT NULL,
    sha256  TEXT NOT NULL,
    PRIMARY KEY (session, name)
);

-- Reconstructed input lines, exec commands and sftp operations, for
-- `GET /v1/recordings/search`. The trigram tokenizer makes substring
-- searches (LIKE '%text%') use the index.
CREATE VIRTUAL TABLE recording_lines USING fts5(
    line,
    session UNINDEXED,
    channel UNINDEXED,
    seconds UNINDEXED,                     -- from the channel's start to the first keystroke
    source UNINDEXED,                      -- input, exec, sftp
    tokenize = 'trigram'
);

CREATE INDEX sessions_bastion ON sessions(bastion, status);
CREATE INDEX sessions_target ON sessions(target);
