//! Review UI sessions and one-time sign-in links in PostgreSQL.

use async_trait::async_trait;

use super::PostgresStore;
use super::conflict::map_error;
use crate::store::{Error, Redeemed, UiLink, UiSession, UiSessionStore};

/// Expired links are kept this long, so that a late use is told so.
const LINK_KEPT_SECS: i64 = 86_400;

/// A uid as stored (BIGINT, checked to fit a uid by the schema).
fn uid_from_sql(value: i64) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| Error::Failed(format!("stored uid {value} is not a uid")))
}

#[async_trait]
impl UiSessionStore for PostgresStore {
    async fn create_ui_session(&self, s: UiSession) -> Result<(), Error> {
        let local_uid = s.local_uid.map(i64::from);
        // One statement, so the sweep and the insert commit together.
        self.execute(
            "WITH swept AS (DELETE FROM ui_sessions WHERE expires_at <= $5)
             INSERT INTO ui_sessions (id_hash, email, groups, csrf, created_at, expires_at, last_seen, local_uid)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &s.id_hash,
                &s.email,
                &s.groups,
                &s.csrf,
                &s.created_at,
                &s.expires_at,
                &s.last_seen,
                &local_uid,
            ],
        )
        .await?;
        Ok(())
    }

    async fn ui_session(&self, id_hash: &str) -> Result<Option<UiSession>, Error> {
        let row = self
            .query_opt(
                "SELECT id_hash, email, groups, csrf, created_at, expires_at, last_seen, local_uid
                 FROM ui_sessions WHERE id_hash = $1",
                &[&id_hash],
            )
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(UiSession {
            id_hash: r.get(0),
            email: r.get(1),
            groups: r.get(2),
            csrf: r.get(3),
            created_at: r.get(4),
            expires_at: r.get(5),
            last_seen: r.get(6),
            local_uid: r.get::<_, Option<i64>>(7).map(uid_from_sql).transpose()?,
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

    async fn create_ui_link(&self, link: UiLink) -> Result<(), Error> {
        // One statement, so the sweep and the insert commit together.
        self.execute(
            "WITH swept AS (DELETE FROM ui_links WHERE expires_at <= $6)
             INSERT INTO ui_links (token_hash, local_user, local_uid, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &link.token_hash,
                &link.local_user,
                &i64::from(link.local_uid),
                &link.created_at,
                &link.expires_at,
                &(link.created_at - LINK_KEPT_SECS),
            ],
        )
        .await?;
        Ok(())
    }

    async fn redeem_ui_link(&self, token_hash: &str, now: i64) -> Result<Redeemed, Error> {
        let mut client = self.writer().await?;
        let tx = client.transaction().await.map_err(|e| map_error(&e))?;
        // The row stays locked until the commit: a use at the same moment,
        // on this replica or another, waits and then reads it used.
        let found = tx
            .query_opt(
                "SELECT token_hash, local_user, local_uid, created_at, expires_at, used_at
                 FROM ui_links WHERE token_hash = $1 FOR UPDATE",
                &[&token_hash],
            )
            .await
            .map_err(|e| map_error(&e))?;
        let found = match found {
            None => None,
            Some(r) => Some((
                UiLink {
                    token_hash: r.get(0),
                    local_user: r.get(1),
                    local_uid: uid_from_sql(r.get(2))?,
                    created_at: r.get(3),
                    expires_at: r.get(4),
                },
                r.get::<_, Option<i64>>(5),
            )),
        };
        let redeemed = match found {
            None => Redeemed::Unknown,
            Some((link, Some(used_at))) => Redeemed::AlreadyUsed { link, used_at },
            Some((link, None)) if now >= link.expires_at => Redeemed::Expired(link),
            Some((link, None)) => {
                let changed = tx
                    .execute(
                        "UPDATE ui_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
                        &[&token_hash, &now],
                    )
                    .await
                    .map_err(|e| map_error(&e))?;
                if changed != 1 {
                    return Err(Error::Failed("a sign-in link changed under its use".into()));
                }
                Redeemed::Now(link)
            }
        };
        tx.commit().await.map_err(|e| map_error(&e))?;
        Ok(redeemed)
    }
}
