-- Shiftkey CA store on PostgreSQL, version 3: what SQLite version 11
-- (0011_identities_overrides_requests.sql) does, with the same meaning:
-- 1. one spelling per identity: `user:` emails lowercased wherever a row
--    names who did or owns something (the audit log keeps what it recorded,
--    its hash chain covers it);
-- 2. on-call overrides get an ID people can name to shorten or delete one;
-- 3. access requests can be `expired` (pending or approved, past their time);
-- 4. incidents opened by Alertmanager remember which firing they are for.
-- `local:` user names, `group:` and `webhook:` names are kept as they are.
--
-- Lowercasing is ASCII only, as SQLite's lower(): every lower() here is on
-- a COLLATE "C" value, whatever the database's locale.

CREATE FUNCTION pg_temp.canonical(who text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN left(who, 5) = 'user:'
                THEN 'user:' || lower(substr(who, 6) COLLATE "C")
                ELSE who END
$$;

-- 1. Canonical identities. Certificates and revocations are immutable by
-- trigger; the rewrite lifts the triggers for its own statements only
-- (this transaction).
ALTER TABLE certificates DISABLE TRIGGER certificates_no_change;
UPDATE certificates SET identity = pg_temp.canonical(identity)
 WHERE identity <> pg_temp.canonical(identity);
ALTER TABLE certificates ENABLE TRIGGER certificates_no_change;

ALTER TABLE revocations DISABLE TRIGGER revocations_no_change;
UPDATE revocations SET revoked_by = pg_temp.canonical(revoked_by)
 WHERE revoked_by <> pg_temp.canonical(revoked_by);
ALTER TABLE revocations ENABLE TRIGGER revocations_no_change;

UPDATE incidents SET opened_by = pg_temp.canonical(opened_by)
 WHERE opened_by <> pg_temp.canonical(opened_by);
UPDATE incidents SET resolved_by = pg_temp.canonical(resolved_by)
 WHERE resolved_by <> pg_temp.canonical(resolved_by);

UPDATE sessions SET identity = pg_temp.canonical(identity)
 WHERE identity <> pg_temp.canonical(identity);

UPDATE join_tokens SET created_by = pg_temp.canonical(created_by)
 WHERE created_by <> pg_temp.canonical(created_by);

-- The review UI keeps the bare email.
UPDATE ui_sessions SET email = lower(email COLLATE "C") WHERE email <> lower(email COLLATE "C");

-- Two spellings of one identity locked: one lock remains (the earliest).
UPDATE identity_locks SET locked_by = pg_temp.canonical(locked_by)
 WHERE locked_by <> pg_temp.canonical(locked_by);
DELETE FROM identity_locks a
 USING identity_locks b
 WHERE left(a.identity, 5) = 'user:'
   AND pg_temp.canonical(b.identity) = pg_temp.canonical(a.identity)
   AND (b.locked_at, b.identity) < (a.locked_at, a.identity);
UPDATE identity_locks SET identity = pg_temp.canonical(identity)
 WHERE identity <> pg_temp.canonical(identity);

-- 2. Overrides: a text ID (`ov_` and hex, as requests are `r_`), and the
-- canonical member and creator.
CREATE TABLE oncall_overrides_v3 (
    id          text COLLATE "C" PRIMARY KEY,  -- ov_ + hex: names the override in the API and audit rows
    schedule    text NOT NULL,
    member      text NOT NULL,                 -- user:EMAIL or local:USER, on call instead
    start       bigint NOT NULL,               -- unix seconds
    "end"       bigint NOT NULL,               -- unix seconds, > start
    reason      text NOT NULL,
    created_by  text NOT NULL,
    created_at  text NOT NULL
);
INSERT INTO oncall_overrides_v3 (id, schedule, member, start, "end", reason, created_by, created_at)
SELECT 'ov_' || lpad(to_hex(id), 12, '0'), schedule, pg_temp.canonical(member),
       start, "end", reason, pg_temp.canonical(created_by), created_at
  FROM oncall_overrides;
DROP TABLE oncall_overrides;
ALTER TABLE oncall_overrides_v3 RENAME TO oncall_overrides;
ALTER INDEX oncall_overrides_v3_pkey RENAME TO oncall_overrides_pkey;
CREATE INDEX oncall_overrides_end ON oncall_overrides ("end");

-- 3. Requests: `expired`, and canonical requester, approvers and denier.
-- `expires_at` is when a pending request expires, and once approved, when
-- the approval does if unused.
ALTER TABLE access_requests DROP CONSTRAINT access_requests_status_check;
ALTER TABLE access_requests ADD CONSTRAINT access_requests_status_check
    CHECK (status IN ('pending', 'approved', 'denied', 'issued', 'expired'));
UPDATE access_requests
   SET requester = pg_temp.canonical(requester),
       approvals = ARRAY(SELECT pg_temp.canonical(a)
                           FROM unnest(approvals) WITH ORDINALITY AS t(a, n) ORDER BY n),
       denied_by = pg_temp.canonical(denied_by);

-- 4. The Alertmanager firing an incident was opened for:
-- `FINGERPRINT@STARTS_AT` (RFC 3339); NULL for other incidents.
ALTER TABLE incidents ADD COLUMN alert_key text COLLATE "C";
CREATE INDEX incidents_alert_key ON incidents (alert_key);
