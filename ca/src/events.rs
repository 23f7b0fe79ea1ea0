//! The CA's event stream (`GET /v1/events`): what enforcers must act on at
//! once — certificates revoked, incidents resolved, identities locked,
//! policy reloaded — for the bastion to end live sessions.
//!
//! The stream is a view of the audit log: every event is an audit row, its
//! SSE id the row's sequence number, so a subscriber that reconnects with
//! `Last-Event-ID` (or `?since=SEQ`) misses nothing. One follower per
//! process reads new event rows from the store whenever the store's
//! notifier says the log grew (from this process or another writing to the
//! same store) and fans them out to this process's subscribers.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::store::{self, AuditFilter, AuditRow, Store};

/// Audit row kinds that are events.
pub(crate) const KINDS: [&str; 17] = [
    "certificate.revoked",
    "incident.resolved",
    "incident.opened",
    "policy.reloaded",
    "break_glass.used",
    "request.created",
    "request.approved",
    "request.denied",
    "request.expired",
    "oncall.override",
    "oncall.override_shortened",
    "oncall.override_deleted",
    "identity.locked",
    "identity.unlocked",
    crate::keys::rotation::ROTATED,
    crate::keys::rotation::ACTIVATED,
    crate::keys::rotation::RETIRED,
];
/// How long the follower waits before reading again after a failed read.
const RETRY: Duration = Duration::from_millis(500);
/// The follower reads at most this often, however fast the log grows (at
/// thousands of issuances a second, one read per commit would compete
/// with them); a change meanwhile is read right after the pause.
const READ_EVERY: Duration = Duration::from_millis(100);
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
    fn from_row(row: AuditRow) -> Self {
        CaEvent {
            seq: row.seq,
            kind: row.kind,
            ts: row.ts,
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The event stream could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the event stream: {0}")]
pub(crate) struct Error(#[from] store::Error);

/// Events after `since`, oldest first, at most `MAX_BACKLOG`.
pub(crate) async fn read_since(store: &dyn Store, since: u64) -> Result<Vec<CaEvent>, Error> {
    let rows = store
        .audit_rows(AuditFilter {
            after: Some(since),
            kinds: KINDS.iter().map(|k| (*k).to_owned()).collect(),
            limit: u32::try_from(MAX_BACKLOG).unwrap_or(1000),
            ..AuditFilter::default()
        })
        .await?;
    Ok(rows.into_iter().map(CaEvent::from_row).collect())
}

/// This process's fan-out of new events.
#[derive(Debug)]
pub(crate) struct EventFeed {
    store: Arc<dyn Store>,
    sender: broadcast::Sender<CaEvent>,
}

impl EventFeed {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            sender: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<CaEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Follows the store's notifier and broadcasts new event rows, until
    /// the CA stops.
    pub(crate) async fn follow(self: Arc<Self>) {
        let mut tip = self.store.audit_tip();
        let mut cursor = *tip.borrow_and_update();
        loop {
            if tip.changed().await.is_err() {
                return;
            }
            let seen = *tip.borrow_and_update();
            // Every row up to `seen` is committed: once a read of events
            // after the cursor is not cut short, the cursor may jump to it
            // (over rows that are not events).
            loop {
                match read_since(self.store.as_ref(), cursor).await {
                    Ok(events) => {
                        let complete = events.len() < MAX_BACKLOG;
                        for event in events {
                            cursor = cursor.max(event.seq);
                            // No subscribers is fine.
                            let _ = self.sender.send(event);
                        }
                        if complete {
                            cursor = cursor.max(seen);
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading events from the audit log failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
            tokio::time::sleep(READ_EVERY).await;
        }
    }
}
