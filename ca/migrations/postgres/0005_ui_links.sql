-- Shiftkey CA store on PostgreSQL, version 5: what SQLite version 14
-- (0014_ui_links.sql) does: one-time sign-in links to the review UI for a
-- user of the CA's host (`shiftkey-ca ui link`), and review UI sessions of
-- such local users.
--
-- A link is used once: its use is one conditional UPDATE on the locked row
-- (`used_at IS NULL`), so of two replicas using it at once exactly one
-- signs in.

CREATE TABLE ui_links (
    token_hash  text COLLATE "C" PRIMARY KEY,  -- hex SHA-256 of the link's token; the token itself is never stored
    local_user  text NOT NULL,                 -- the user of the CA's host the link signs in (identity local:USER)
    local_uid   bigint NOT NULL CHECK (local_uid BETWEEN 0 AND 4294967295),
    created_at  bigint NOT NULL,               -- unix seconds
    expires_at  bigint NOT NULL,
    used_at     bigint                         -- NULL until the link is used (once)
);
CREATE INDEX ui_links_expires ON ui_links (expires_at);

-- NULL: an OIDC sign-in, `email` is the ID token's email. Set: a local
-- user's sign-in by link, `email` holds the local user's name.
ALTER TABLE ui_sessions ADD COLUMN local_uid bigint
    CHECK (local_uid BETWEEN 0 AND 4294967295);
