-- Shiftkey CA store, version 10: review UI sessions live in the store, so
-- that any replica can serve a signed-in reviewer.

CREATE TABLE ui_sessions (
    id_hash     TEXT PRIMARY KEY,   -- hex SHA-256 of the cookie's value; the value itself is never stored
    email       TEXT NOT NULL,
    groups      TEXT NOT NULL,      -- JSON array, from the ID token at sign-in
    csrf        TEXT NOT NULL,      -- this session's form token
    created_at  INTEGER NOT NULL,   -- unix seconds
    expires_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions(expires_at);
