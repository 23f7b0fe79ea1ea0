-- Shiftkey CA store, version 3: access requests waiting for approval.

CREATE TABLE access_requests (
    id                TEXT PRIMARY KEY,          -- r_…, also the key ID's req=
    requester         TEXT NOT NULL,             -- user:EMAIL or local:USER
    role              TEXT NOT NULL,
    incident          TEXT,
    reason            TEXT,
    request           TEXT NOT NULL,             -- the CertificateRequest, JSON
    status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'issued')),
    approvals         TEXT NOT NULL DEFAULT '[]', -- JSON array of identities
    approvals_needed  INTEGER NOT NULL,
    denied_by         TEXT,
    decision_reason   TEXT,
    serial            INTEGER REFERENCES certificates(serial),
    created_at        INTEGER NOT NULL,          -- unix seconds
    expires_at        INTEGER NOT NULL           -- unix seconds; pending past it = expired
);
CREATE INDEX access_requests_status ON access_requests(status);
