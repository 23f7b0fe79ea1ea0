//! Webhook replay and notification state in SQLite.

use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params};

use super::{SqliteStore, map_error, to_sql};
use crate::store::{Admission, Error, WebhookStore};

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn admit_webhook_event(
        &self,
        source: &str,
        id: &str,
        now: i64,
        window: i64,
        max: u64,
    ) -> Result<Admission, Error> {
        let (source, id) = (source.to_owned(), id.to_owned());
        self.write(move |conn| {
            let mut admit = || -> rusqlite::Result<Admission> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "DELETE FROM webhook_events WHERE seen_at < ?1",
                    [now - window],
                )?;
                let seen: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM webhook_events WHERE source = ?1 AND id = ?2)",
                    params![source, id],
                    |r| r.get(0),
                )?;
                let admission = if seen {
                    Admission::Replayed
                } else {
                    let held: i64 =
                        tx.query_row("SELECT COUNT(*) FROM webhook_events", [], |r| r.get(0))?;
                    if held >= to_sql(max) {
                        Admission::Full
                    } else {
                        tx.execute(
                            "INSERT INTO webhook_events (source, id, seen_at) VALUES (?1, ?2, ?3)",
                            params![source, id, now],
                        )?;
                        Admission::New
                    }
                };
                tx.commit()?;
                Ok(admission)
            };
            admit().map_err(map_error)
        })
        .await
    }

    async fn forget_webhook_event(&self, source: &str, id: &str) -> Result<(), Error> {
        let (source, id) = (source.to_owned(), id.to_owned());
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM webhook_events WHERE source = ?1 AND id = ?2",
                params![source, id],
            )
            .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn claim_notification(
        &self,
        seq: u64,
        sender: &str,
        now: i64,
        keep: i64,
    ) -> Result<bool, Error> {
        let sender = sender.to_owned();
        self.write(move |conn| {
            let mut claim = || -> rusqlite::Result<bool> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "DELETE FROM notification_claims WHERE claimed_at < ?1",
                    [now - keep],
                )?;
                let claimed = tx.execute(
                    "INSERT INTO notification_claims (seq, claimed_by, claimed_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(seq) DO NOTHING",
                    params![to_sql(seq), sender, now],
                )?;
                tx.commit()?;
                Ok(claimed == 1)
            };
            claim().map_err(map_error)
        })
        .await
    }
}
