-- Shiftkey CA store, version 7: identities an operator has locked out.
-- A locked identity gets no certificate and no bastion session; locking
-- also revokes its live certificates (in the same transaction).

CREATE TABLE identity_locks (
    identity   TEXT PRIMARY KEY,   -- user:EMAIL or local:USER
    locked_by  TEXT NOT NULL,
    locked_at  TEXT NOT NULL,
    reason     TEXT NOT NULL
);
