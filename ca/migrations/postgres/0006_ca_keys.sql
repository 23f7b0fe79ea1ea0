-- Shiftkey CA store on PostgreSQL, version 6: what SQLite version 15
-- (0015_ca_keys.sql) does: the CA keys of rotation (`shiftkey-ca keys`)
-- with their states, and which CA keys each host reported installed.
--
-- Phases are conditional UPDATEs (`shiftkey_expect_one`), so of two
-- operators activating at once exactly one succeeds; replicas notice a
-- phase by the generation number (row count plus set timestamps), which
-- only grows because rows are never deleted and timestamps set once.

CREATE TABLE ca_keys (
    fingerprint   text COLLATE "C" PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('user', 'host')),
    state         text NOT NULL CHECK (state IN ('next', 'active', 'previous', 'retired')),
    public_line   text NOT NULL,
    location      text NOT NULL,
    created_at    bigint NOT NULL,
    activated_at  bigint,
    retired_at    bigint,
    revoked       bigint NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (kind) WHERE state = 'active';
CREATE UNIQUE INDEX ca_keys_one_next ON ca_keys (kind) WHERE state = 'next';
CREATE FUNCTION ca_keys_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'CA keys are kept';
END $$;
CREATE TRIGGER ca_keys_no_delete BEFORE DELETE ON ca_keys
    FOR EACH ROW EXECUTE FUNCTION ca_keys_kept();

CREATE TABLE host_ca_reports (
    name          text COLLATE "C" PRIMARY KEY REFERENCES hosts (name) ON DELETE CASCADE,
    fingerprints  text[] NOT NULL,
    reported_at   bigint NOT NULL
);
