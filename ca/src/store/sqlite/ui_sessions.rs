//! Review UI sessions in SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, json_list, map_error, parse_list};
use crate::store::{Error, UiSession, UiSessionStore};

#[async_trait]
impl UiSessionStore for SqliteStore {
    async fn create_ui_session(&self, s: UiSession) -> Result<(), Error> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(map_error)?;
            tx.execute(
                "DELETE FROM ui_sessions WHERE expires_at <= ?1",
                [s.created_at],
            )
            .map_err(map_error)?;
            tx.execute(
                "INSERT INTO ui_sessions (id_hash, email, groups, csrf, created_at, expires_at, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id_hash,
                    s.email,
                    json_list(&s.groups),
                    s.csrf,
                    s.created_at,
                    s.expires_at,
                    s.last_seen
                ],
            )
            .map_err(map_error)?;
            tx.commit().map_err(map_error)
        })
        .await
    }

    async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSession>, Error> {
        let id_hash = id_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id_hash, email, groups, csrf, created_at, expires_at, last_seen
                 FROM ui_sessions WHERE id_hash = ?1",
            )?
            .query_row([id_hash], |r| {
                Ok(UiSession {
                    id_hash: r.get(0)?,
                    email: r.get(1)?,
                    groups: parse_list(&r.get::<_, String>(2)?),
                    csrf: r.get(3)?,
                    created_at: r.get(4)?,
                    expires_at: r.get(5)?,
                    last_seen: r.get(6)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn touch_ui_session(&self, id_hash: &str, now: i64) -> Result<(), Error> {
        let id_hash = id_hash.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE ui_sessions SET last_seen = MAX(last_seen, ?2) WHERE id_hash = ?1",
                params![id_hash, now],
            )
            .map_err(map_error)?;
            Ok(())
        })
        .await
    }

    async fn delete_ui_session(&self, id_hash: &str) -> Result<(), Error> {
        let id_hash = id_hash.to_owned();
        self.write(move |conn| {
            conn.execute("DELETE FROM ui_sessions WHERE id_hash = ?1", [id_hash])
                .map_err(map_error)?;
            Ok(())
        })
        .await
    }
}
