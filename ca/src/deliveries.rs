//! Webhook deliveries every replica must agree on: incoming event IDs
//! accepted recently (a delivery replayed to any replica is refused) and
//! which replica sends each outgoing notification (the receiver gets each
//! event once, however many replicas follow the log). The state lives in
//! the store; this module holds the rules and speaks for `http/` and
//! `notify`, which never touch the store themselves.

use std::sync::Arc;

use crate::store::{self, Store};

pub(crate) use crate::store::Admission;

/// How long notification claims are kept: far longer than any replica
/// takes to see an event.
const KEEP_CLAIMS_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone)]
pub(crate) struct Deliveries {
    store: Arc<dyn Store>,
    /// Names this process in claims (host name and process ID).
    sender: String,
}

impl Deliveries {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            store,
            sender: format!("{host}:{}", std::process::id()),
        }
    }

    /// Remembers `id` from `source` as seen at `now` unless it was seen
    /// within `window` seconds (`Replayed`); `Full` past `max` IDs.
    pub(crate) async fn admit(
        &self,
        source: &str,
        id: &str,
        now: i64,
        window: i64,
        max: u64,
    ) -> Result<Admission, store::Error> {
        self.store
            .admit_webhook_event(source, id, now, window, max)
            .await
    }

    /// Lets a delivery that failed on our side through again.
    pub(crate) async fn forget(&self, source: &str, id: &str) -> Result<(), store::Error> {
        self.store.forget_webhook_event(source, id).await
    }

    /// Whether this process sends the notification of event `seq`: the
    /// first replica to claim it does, the others skip it.
    pub(crate) async fn claim_notification(&self, seq: u64) -> Result<bool, store::Error> {
        let now = chrono::Utc::now().timestamp();
        self.store
            .claim_notification(seq, &self.sender, now, KEEP_CLAIMS_SECS)
            .await
    }
}
