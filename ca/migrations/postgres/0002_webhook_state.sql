-- Shiftkey CA store on PostgreSQL, version 2: webhook state that every
-- replica must see (SQLite version 13 holds the same tables).

-- Incoming deliveries accepted recently, by the sender's event ID: a
-- delivery replayed to any replica within the window is refused.
CREATE TABLE webhook_events (
    source   text COLLATE "C" NOT NULL,   -- pagerduty
    id       text COLLATE "C" NOT NULL,   -- the sender's event ID
    seen_at  bigint NOT NULL,             -- unix seconds
    PRIMARY KEY (source, id)
);
CREATE INDEX webhook_events_seen ON webhook_events (seen_at);

-- Outgoing notifications: the replica that claims an event sends it, so
-- that the receiver gets each event once, not once per replica.
CREATE TABLE notification_claims (
    seq         bigint PRIMARY KEY,       -- the audit row announced
    claimed_by  text NOT NULL,            -- the replica sending it
    claimed_at  bigint NOT NULL           -- unix seconds
);
CREATE INDEX notification_claims_at ON notification_claims (claimed_at);
