-- Shiftkey CA store, version 4: on-call overrides (covers and swaps).

CREATE TABLE oncall_overrides (
    id          INTEGER PRIMARY KEY,
    schedule    TEXT NOT NULL,
    member      TEXT NOT NULL,     -- user:EMAIL or local:USER, on call instead
    start       INTEGER NOT NULL,  -- unix seconds
    end         INTEGER NOT NULL,  -- unix seconds, > start
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX oncall_overrides_end ON oncall_overrides(end);
