-- Shiftkey CA store, version 13: webhook state kept in the store, so that
-- every process (and, on PostgreSQL, every replica) sees it.

-- Incoming deliveries accepted recently, by the sender's event ID: a
-- delivery replayed within the window is refused.
CREATE TABLE webhook_events (
    source   TEXT NOT NULL,      -- pagerduty
    id       TEXT NOT NULL,      -- the sender's event ID
    seen_at  INTEGER NOT NULL,   -- unix seconds
    PRIMARY KEY (source, id)
);
CREATE INDEX webhook_events_seen ON webhook_events(seen_at);

-- Outgoing notifications: the process that claims an event sends it, so
-- the receiver gets each event once.
CREATE TABLE notification_claims (
    seq         INTEGER PRIMARY KEY,   -- the audit row announced
    claimed_by  TEXT NOT NULL,
    claimed_at  INTEGER NOT NULL       -- unix seconds
);
CREATE INDEX notification_claims_at ON notification_claims(claimed_at);
