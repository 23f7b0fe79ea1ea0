//! Review UI sessions in SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, json_list, map_error, parse_list};
use crate::store::{Error, Redeemed, UiLink, UiSession, UiSessionStore};

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
                "INSERT INTO ui_sessions (id_hash, email, local_uid, groups, csrf, created_at, expires_at, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id_hash,
                    s.email,
                    s.local_uid,
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
                "SELECT id_hash, email, groups, csrf, created_at, expires_at, last_seen, local_uid
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
                    local_uid: r.get(7)?,
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

    async fn create_ui_link(&self, link: UiLink) -> Result<(), Error> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(map_error)?;
            tx.execute(
                "DELETE FROM ui_links WHERE expires_at <= ?1",
                [link.created_at - LINK_KEPT_SECS],
            )
            .map_err(map_error)?;
            tx.execute(
                "INSERT INTO ui_links (token_hash, local_user, local_uid, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    link.token_hash,
                    link.local_user,
                    link.local_uid,
                    link.created_at,
                    link.expires_at
                ],
            )
            .map_err(map_error)?;
            tx.commit().map_err(map_error)
        })
        .await
    }

    async fn redeem_ui_link(&self, token_hash: &str, now: i64) -> Result<Redeemed, Error> {
        let token_hash = token_hash.to_owned();
        self.write(move |conn| {
            // Immediate: the read and the update hold the write lock
            // together, against any other process's writer too.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_error)?;
            let found = tx
                .query_row(
                    "SELECT token_hash, local_user, local_uid, created_at, expires_at, used_at
                     FROM ui_links WHERE token_hash = ?1",
                    [&token_hash],
                    |r| {
                        Ok((
                            UiLink {
                                token_hash: r.get(0)?,
                                local_user: r.get(1)?,
                                local_uid: r.get(2)?,
                                created_at: r.get(3)?,
                                expires_at: r.get(4)?,
                            },
                            r.get::<_, Option<i64>>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(map_error)?;
            let redeemed = match found {
                None => Redeemed::Unknown,
                Some((link, Some(used_at))) => Redeemed::AlreadyUsed { link, used_at },
                Some((link, None)) if now >= link.expires_at => Redeemed::Expired(link),
                Some((link, None)) => {
                    let changed = tx
                        .execute(
                            "UPDATE ui_links SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
                            params![token_hash, now],
                        )
                        .map_err(map_error)?;
                    if changed != 1 {
                        return Err(Error::Failed("a sign-in link changed under its use".into()));
                    }
                    Redeemed::Now(link)
                }
            };
            tx.commit().map_err(map_error)?;
            Ok(redeemed)
        })
        .await
    }
}

/// Expired links are kept this long, so that a late use is told so.
const LINK_KEPT_SECS: i64 = 86_400;
