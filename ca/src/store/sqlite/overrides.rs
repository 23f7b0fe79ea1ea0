//! On-call overrides in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{SqliteStore, WriteError};
use crate::store::{Error, OverrideStore, StoredOverride};

pub(super) fn insert(conn: &Connection, o: &StoredOverride) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO oncall_overrides (schedule, member, start, end, reason, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        o.schedule,
        o.member,
        o.start,
        o.end,
        o.reason,
        o.created_by,
        o.created_at
    ])?;
    Ok(())
}

#[async_trait]
impl OverrideStore for SqliteStore {
    async fn current_overrides(&self, now: i64) -> Result<Vec<StoredOverride>, Error> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT schedule, member, start, end, reason, created_by, created_at FROM oncall_overrides
                 WHERE end > ?1 ORDER BY start LIMIT 1000",
            )?;
            let rows = stmt.query_map([now], |r| {
                Ok(StoredOverride {
                    schedule: r.get(0)?,
                    member: r.get(1)?,
                    start: r.get(2)?,
                    end: r.get(3)?,
                    reason: r.get(4)?,
                    created_by: r.get(5)?,
                    created_at: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}
