-- Shiftkey CA store, version 11 (issue 13):
-- 1. one spelling per identity: `user:` emails lowercased wherever a row
--    names who did or owns something (the policy compares them so; the
--    audit log keeps what it recorded, its hash chain covers it);
-- 2. on-call overrides get an ID people can name to shorten or delete one;
-- 3. access requests can be `expired` (pending or approved, past their time);
-- 4. incidents opened by Alertmanager remember which firing they are for,
--    so a late `resolved` of an earlier firing leaves a newer one open.
-- `local:` user names, `group:` and `webhook:` names are kept as they are.

-- 1. Canonical identities. Certificates and revocations are immutable by
-- trigger; the rewrite lifts the triggers for its own statements only.
DROP TRIGGER certificates_no_update;
UPDATE certificates SET identity = 'user:' || lower(substr(identity, 6))
 WHERE substr(identity, 1, 5) = 'user:' AND identity <> 'user:' || lower(substr(identity, 6));
CREATE TRIGGER certificates_no_update BEFORE UPDATE ON certificates
BEGIN SELECT RAISE(ABORT, 'issued certificates are immutable'); END;

DROP TRIGGER revocations_no_update;
UPDATE revocations SET revoked_by = 'user:' || lower(substr(revoked_by, 6))
 WHERE substr(revoked_by, 1, 5) = 'user:';
CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations cannot be changed'); END;

UPDATE incidents SET opened_by = 'user:' || lower(substr(opened_by, 6))
 WHERE substr(opened_by, 1, 5) = 'user:';
UPDATE incidents SET resolved_by = 'user:' || lower(substr(resolved_by, 6))
 WHERE substr(resolved_by, 1, 5) = 'user:';

UPDATE sessions SET identity = 'user:' || lower(substr(identity, 6))
 WHERE substr(identity, 1, 5) = 'user:';

UPDATE join_tokens SET created_by = 'user:' || lower(substr(created_by, 6))
 WHERE substr(created_by, 1, 5) = 'user:';

-- The review UI keeps the bare email.
UPDATE ui_sessions SET email = lower(email);

-- Two spellings of one identity locked: one lock remains (the earliest).
UPDATE identity_locks SET locked_by = 'user:' || lower(substr(locked_by, 6))
 WHERE substr(locked_by, 1, 5) = 'user:';
DELETE FROM identity_locks
 WHERE substr(identity, 1, 5) = 'user:'
   AND rowid NOT IN (SELECT min(rowid) FROM identity_locks
                      WHERE substr(identity, 1, 5) = 'user:'
                      GROUP BY lower(identity));
UPDATE identity_locks SET identity = 'user:' || lower(substr(identity, 6))
 WHERE substr(identity, 1, 5) = 'user:';

-- 2. Overrides: a text ID (`ov_` and hex, as requests are `r_`), and the
-- canonical member and creator.
CREATE TABLE oncall_overrides_v11 (
    id          TEXT PRIMARY KEY,  -- ov_ + hex: names the override in the API and audit rows
    schedule    TEXT NOT NULL,
    member      TEXT NOT NULL,     -- user:EMAIL or local:USER, on call instead
    start       INTEGER NOT NULL,  -- unix seconds
    end         INTEGER NOT NULL,  -- unix seconds, > start
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
INSERT INTO oncall_overrides_v11 (id, schedule, member, start, end, reason, created_by, created_at)
SELECT printf('ov_%012x', id), schedule,
       CASE WHEN substr(member, 1, 5) = 'user:' THEN 'user:' || lower(substr(member, 6)) ELSE member END,
       start, end, reason,
       CASE WHEN substr(created_by, 1, 5) = 'user:' THEN 'user:' || lower(substr(created_by, 6)) ELSE created_by END,
       created_at
  FROM oncall_overrides;
DROP TABLE oncall_overrides;
ALTER TABLE oncall_overrides_v11 RENAME TO oncall_overrides;
CREATE INDEX oncall_overrides_end ON oncall_overrides(end);

-- 3. Requests: `expired`, and canonical requester, approvers and denier.
-- `expires_at` is when a pending request expires, and once approved, when
-- the approval does if unused.
CREATE TABLE access_requests_v11 (
    id                TEXT PRIMARY KEY,
    requester         TEXT NOT NULL,
    role              TEXT NOT NULL,
    incident          TEXT,
    reason            TEXT,
    request           TEXT NOT NULL,
    status            TEXT NOT NULL
                      CHECK (status IN ('pending', 'approved', 'denied', 'issued', 'expired')),
    approvals         TEXT NOT NULL DEFAULT '[]',
    approvals_needed  INTEGER NOT NULL,
    denied_by         TEXT,
    decision_reason   TEXT,
    serial            INTEGER REFERENCES certificates(serial),
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL
);
INSERT INTO access_requests_v11
SELECT id,
       CASE WHEN substr(requester, 1, 5) = 'user:' THEN 'user:' || lower(substr(requester, 6)) ELSE requester END,
       role, incident, reason, request, status,
       (SELECT json_group_array(CASE WHEN substr(value, 1, 5) = 'user:'
                                     THEN 'user:' || lower(substr(value, 6)) ELSE value END)
          FROM json_each(access_requests.approvals)),
       approvals_needed,
       CASE WHEN substr(denied_by, 1, 5) = 'user:' THEN 'user:' || lower(substr(denied_by, 6)) ELSE denied_by END,
       decision_reason, serial, created_at, expires_at
  FROM access_requests;
DROP TABLE access_requests;
ALTER TABLE access_requests_v11 RENAME TO access_requests;
CREATE INDEX access_requests_status ON access_requests(status);

-- 4. The Alertmanager firing an incident was opened for:
-- `FINGERPRINT@STARTS_AT` (RFC 3339); NULL for other incidents.
ALTER TABLE incidents ADD COLUMN alert_key TEXT;
CREATE INDEX incidents_alert_key ON incidents(alert_key);
