-- Shiftkey CA store, version 2: incidents and revocations.

-- Incidents, opened by people (API, `shiftkey incident open`) or alert
-- sources. Roles that require an incident require an open one.
CREATE TABLE incidents (
    id           TEXT PRIMARY KEY,
    title        TEXT NOT NULL,
    severity     INTEGER NOT NULL,  -- 1 (sev1, worst) .. 4
    status       TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    source       TEXT NOT NULL,     -- manual, alertmanager, pagerduty
    opened_by    TEXT NOT NULL,
    opened_at    TEXT NOT NULL,     -- RFC 3339
    resolved_by  TEXT,
    resolved_at  TEXT
);

-- Revoked certificates, by serial (every serial the CA issued is in
-- `certificates`, so key IDs and identities resolve to serials). The KRL
-- served at /v1/krl is built from this table.
CREATE TABLE revocations (
    serial      INTEGER PRIMARY KEY REFERENCES certificates(serial),
    revoked_at  TEXT NOT NULL,
    revoked_by  TEXT NOT NULL,
    reason      TEXT NOT NULL
);

-- A certificate can only be recorded under an incident that is open at the
-- moment of the commit. Together with resolution revoking, in its own
-- transaction, every live certificate issued under the incident, no
-- certificate can slip in between a resolution's read and its commit.
CREATE TRIGGER certificates_incident_open BEFORE INSERT ON certificates
WHEN NEW.incident IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM incidents WHERE id = NEW.incident AND status = 'open')
BEGIN SELECT RAISE(ABORT, 'incident is not open'); END;

CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations cannot be undone'); END;
CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
BEGIN SELECT RAISE(ABORT, 'revocations cannot be changed'); END;
