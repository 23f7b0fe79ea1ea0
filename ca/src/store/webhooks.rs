//! Webhook state every replica must share: incoming deliveries accepted
//! recently (a replay to any replica is refused) and which replica sends
//! each outgoing notification (the receiver gets it once).

use async_trait::async_trait;

use super::Error;

/// What became of an incoming delivery's event ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Not seen within the window: remembered now.
    New,
    /// Seen within the window: a replay.
    Replayed,
    /// Too many IDs are remembered; refuse until old ones age out.
    Full,
}

#[async_trait]
pub(crate) trait WebhookStore {
    /// Remembers event `id` from `source` as seen at `now` (unix seconds),
    /// unless it was seen since `now - window`: `Replayed`. IDs seen before
    /// that are forgotten first; `Full` when `max` are remembered already.
    async fn admit_webhook_event(
        &self,
        source: &str,
        id: &str,
        now: i64,
        window: i64,
        max: u64,
    ) -> Result<Admission, Error>;

    /// Forgets `id` again: its delivery failed on our side and will be retried.
    async fn forget_webhook_event(&self, source: &str, id: &str) -> Result<(), Error>;

    /// Claims the notification of audit row `seq` for `sender`: `true` for
    /// the one process that gets to send it. Claims older than `now - keep`
    /// are forgotten.
    async fn claim_notification(
        &self,
        seq: u64,
        sender: &str,
        now: i64,
        keep: i64,
    ) -> Result<bool, Error>;
}
