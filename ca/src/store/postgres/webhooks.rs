//! Webhook replay and notification state in PostgreSQL: what makes a
//! replay refused by every replica, and each notification sent by one.

use async_trait::async_trait;

use super::conflict::map_error;
use super::{PostgresStore, to_sql};
use crate::store::{Admission, Error, WebhookStore};

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn admit_webhook_event(
        &self,
        source: &str,
        id: &str,
        now: i64,
        window: i64,
        max: u64,
    ) -> Result<Admission, Error> {
        let mut client = self.writer().await?;
        let tx = client.transaction().await.map_err(|e| map_error(&e))?;
        tx.execute(
            "DELETE FROM webhook_events WHERE seen_at < $1",
            &[&(now - window)],
        )
        .await
        .map_err(|e| map_error(&e))?;
        let held: i64 = tx
            .query_one("SELECT COUNT(*) FROM webhook_events", &[])
            .await
            .map_err(|e| map_error(&e))?
            .get(0);
        // Two replicas admitting the same ID at once: the primary key lets
        // one insert through; the other sees nothing inserted, a replay.
        let inserted = tx
            .execute(
                "INSERT INTO webhook_events (source, id, seen_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source, id) DO NOTHING",
                &[&source, &id, &now],
            )
            .await
            .map_err(|e| map_error(&e))?;
        let admission = if inserted == 0 {
            Admission::Replayed
        } else if held >= to_sql(max) {
            // Over the bound: do not remember this one either.
            tx.rollback().await.map_err(|e| map_error(&e))?;
            return Ok(Admission::Full);
        } else {
            Admission::New
        };
        tx.commit().await.map_err(|e| map_error(&e))?;
        Ok(admission)
    }

    async fn forget_webhook_event(&self, source: &str, id: &str) -> Result<(), Error> {
        self.execute(
            "DELETE FROM webhook_events WHERE source = $1 AND id = $2",
            &[&source, &id],
        )
        .await?;
        Ok(())
    }

    async fn claim_notification(
        &self,
        seq: u64,
        sender: &str,
        now: i64,
        keep: i64,
    ) -> Result<bool, Error> {
        let claimed = self
            .execute(
                "WITH swept AS (DELETE FROM notification_claims WHERE claimed_at < $4)
                 INSERT INTO notification_claims (seq, claimed_by, claimed_at) VALUES ($1, $2, $3)
                 ON CONFLICT (seq) DO NOTHING",
                &[&to_sql(seq), &sender, &now, &(now - keep)],
            )
            .await?;
        Ok(claimed == 1)
    }
}
