//! The CA's event stream (`GET /v1/events`): what enforcers must act on at
//! once — certificates revoked, incidents resolved, policy reloaded — for the
//! bastion to end live sessions.
//!
//! The stream is a view of the audit log: every event is an audit row, its
//! SSE id the row's sequence number, so a subscriber that reconnects with
//! `Last-Event-ID` (or `?since=SEQ`) misses nothing. One poller per CA reads
//! new rows twice a second and broadcasts them; that also picks up
//! revocations written by `shiftkey-ca revoke` from another process.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::service::Ca;

/// How often the audit log is read for new events.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Audit row kinds that are events.
pub(crate) const KINDS: [&str; 11] = [
    "certificate.revoked",
    "incident.resolved",
    "incident.opened",
    "policy.reloaded",
    "break_glass.used",
    "request.created",
    "request.approved",
    "request.denied",
    "oncall.override",
    "identity.locked",
    "identity.unlocked",
];
/// Rows replayed to a subscriber that asks for history, at most.
pub(crate) const MAX_BACKLOG: usize = 1000;

/// One event as subscribers see it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CaEvent {
    pub(crate) seq: u64,
    pub(crate) kind: String,
    pub(crate) ts: String,
    pub(crate) detail: serde_json::Value,
}

impl CaEvent {
    fn from_row(row: crate::audit::Row) -> Option<Self> {
        KINDS.contains(&row.kind.as_str()).then(|| CaEvent {
            seq: row.seq,
            kind: row.kind,
            ts: row.ts,
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// The broadcast side, held by `Ca`.
#[derive(Debug)]
pub(crate) struct Events {
    sender: broadcast::Sender<CaEvent>,
}

impl Events {
    pub(crate) fn new() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<CaEvent> {
        self.sender.subscribe()
    }
}

/// Events after `since`, oldest first, at most `MAX_BACKLOG`.
pub(crate) fn read_since(
    ca: &Ca,
    since: u64,
) -> Result<Vec<CaEvent>, crate::http::error::ApiError> {
    ca.read(|conn| {
        let mut events = Vec::new();
        let kinds = KINDS.map(|k| format!("'{k}'")).join(", ");
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM audit WHERE seq > ?1 AND kind IN ({kinds}) ORDER BY seq LIMIT ?2",
            crate::audit::ROW_COLUMNS
        ))?;
        let rows = stmt.query_map(
            rusqlite::params![
                i64::try_from(since).unwrap_or(i64::MAX),
                i64::try_from(MAX_BACKLOG).unwrap_or(1000)
            ],
            crate::audit::Row::from_sql,
        )?;
        for row in rows {
            if let Some(event) = CaEvent::from_row(row?) {
                events.push(event);
            }
        }
        Ok(events)
    })
}

/// The audit log's current tip, where a new poller starts.
pub(crate) fn tip(ca: &Ca) -> Result<u64, crate::http::error::ApiError> {
    ca.read(|conn| {
        let seq: Option<i64> = conn.query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))?;
        Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
    })
}

/// Reads new event rows every `POLL_INTERVAL` and broadcasts them, until the
/// CA stops.
pub(crate) async fn poll(ca: Arc<Ca>) {
    let mut cursor = tip(&ca).unwrap_or(0);
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    loop {
        interval.tick().await;
        // The tip first: every event row up to it is visible to the query
        // that follows, so when that query is not cut short the cursor may
        // jump to it (over rows that are not events).
        let Ok(tip_before) = tip(&ca) else { continue };
        match read_since(&ca, cursor) {
            Ok(events) => {
                let complete = events.len() < MAX_BACKLOG;
                for event in events {
                    cursor = cursor.max(event.seq);
                    // No subscribers is fine.
                    let _ = ca.events.sender.send(event);
                }
                if complete {
                    cursor = cursor.max(tip_before);
                }
            }
            Err(e) => tracing::warn!(error = ?e, "reading events from the audit log failed"),
        }
    }
}
