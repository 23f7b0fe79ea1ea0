-- Shiftkey CA store, version 14: one-time sign-in links to the review UI
-- for a user of the CA's host (`shiftkey-ca ui link`), and review UI
-- sessions of such local users.

CREATE TABLE ui_links (
    token_hash  TEXT PRIMARY KEY,   -- hex SHA-256 of the link's token; the token itself is never stored
    local_user  TEXT NOT NULL,      -- the user of the CA's host the link signs in (identity local:USER)
    local_uid   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,   -- unix seconds
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER             -- NULL until the link is used (once)
);
CREATE INDEX ui_links_expires ON ui_links(expires_at);

-- NULL: an OIDC sign-in, `email` is the ID token's email. Set: a local
-- user's sign-in by link, `email` holds the local user's name.
ALTER TABLE ui_sessions ADD COLUMN local_uid INTEGER;
