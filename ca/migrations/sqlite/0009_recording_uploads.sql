-- Shiftkey CA store, version 9: recording upload state lives in the store.
--
-- The bytes of a recording go to the recording store (a directory today);
-- how much of each file is committed is recorded here, and only moved on by
-- a conditional update (from the length the uploader saw to the new one), so
-- two uploads of one file, from any process, cannot both land.

CREATE TABLE recording_uploads (
    session  TEXT NOT NULL REFERENCES sessions(id),
    name     TEXT NOT NULL,              -- 0.cast.gz, 1.sftp.jsonl.gz
    length   INTEGER NOT NULL CHECK (length > 0),
    PRIMARY KEY (session, name)
);

-- Set when a seal starts: no upload commits after it, so the files measured
-- are the files signed. A seal that fails clears it again.
ALTER TABLE sessions ADD COLUMN sealing_since INTEGER;

-- When each reviewer's read of a recording (per purpose and file) was last
-- audited: reads are audited once per window, not once per poll.
CREATE TABLE recording_reads (
    reviewer    TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    session     TEXT NOT NULL,
    file        TEXT NOT NULL,                 -- '' for the recording's metadata
    audited_at  INTEGER NOT NULL,              -- unix seconds
    PRIMARY KEY (reviewer, purpose, session, file)
);
