//! Review UI sessions in PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::{Error, UiSession, UiSessionStore};

#[async_trait]
impl UiSessionStore for PostgresStore {
    async fn create_ui_session(&self, s: UiSession) -> Result<(), Error> {
        // One statement, so the sweep and the insert commit together.
        self.execute(
            "WITH swept AS (DELETE FROM ui_sessions WHERE expires_at <= $5)
             INSERT INTO ui_sessions (id_hash, email, groups, csrf, created_at, expires_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &s.id_hash,
                &s.email,
                &s.groups,
                &s.csrf,
                &s.created_at,
                &s.expires_at,
                &s.last_seen,
            ],
        )
        .await?;
        Ok(())
    }

    async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSession>, Error> {
        let row = self
            .query_opt(
                "SELECT id_hash, email, groups, csrf, created_at, expires_at, last_seen
                 FROM ui_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await?;
        Ok(row.map(|r| UiSession {
            id_hash: r.get(0),
            email: r.get(1),
            groups: r.get(2),
            csrf: r.get(3),
            created_at: r.get(4),
            expires_at: r.get(5),
            last_seen: r.get(6),
        }))
    }

    async fn touch_ui_session(&self, id_hash: &str, now: i64) -> Result<(), Error> {
        self.execute(
            "UPDATE ui_sessions SET last_seen = GREATEST(last_seen, $2) WHERE id_hash = $1",
            &[&id_hash, &now],
        )
        .await?;
        Ok(())
    }

    async fn delete_ui_session(&self, id_hash: &str) -> Result<(), Error> {
        self.execute("DELETE FROM ui_sessions WHERE id_hash = $1", &[&id_hash])
            .await?;
        Ok(())
    }
}
