//! Identity locks in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriteError, to_sql};
use crate::store::{Error, LockStore};

/// Locks `identity` out and revokes its certificates live at `now`, in the
/// same transaction.
pub(super) fn lock(
    conn: &Connection,
    identity: &str,
    by: &str,
    at: &str,
    reason: &str,
    now: u64,
) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO identity_locks (identity, locked_by, locked_at, reason) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(identity) DO UPDATE SET locked_by = excluded.locked_by,
             locked_at = excluded.locked_at, reason = excluded.reason",
    )?
    .execute(params![identity, by, at, reason])?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO revocations (serial, revoked_at, revoked_by, reason)
         SELECT serial, ?2, ?3, 'identity locked: ' || ?4 FROM certificates
         WHERE identity = ?1 AND valid_before > ?5",
    )?
    .execute(params![identity, at, by, reason, to_sql(now)])?;
    Ok(())
}

pub(super) fn unlock(conn: &Connection, identity: &str) -> Result<(), WriteError> {
    conn.prepare_cached("DELETE FROM identity_locks WHERE identity = ?1")?
        .execute([identity])?;
    Ok(())
}

#[async_trait]
impl LockStore for SqliteStore {
    async fn lock_of(&self, identity: &str) -> Result<Option<String>, Error> {
        let identity = identity.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT reason FROM identity_locks WHERE identity = ?1")?
                .query_row([identity], |r| r.get(0))
                .optional()
        })
        .await
    }
}
