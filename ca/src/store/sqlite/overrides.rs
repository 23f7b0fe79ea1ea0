//! On-call overrides in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriteError};
use crate::store::{Conflict, Error, OverrideStore, StoredOverride};

const COLUMNS: &str = "id, schedule, member, start, end, reason, created_by, created_at";

fn override_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredOverride> {
    Ok(StoredOverride {
        id: r.get(0)?,
        schedule: r.get(1)?,
        member: r.get(2)?,
        start: r.get(3)?,
        end: r.get(4)?,
        reason: r.get(5)?,
        created_by: r.get(6)?,
        created_at: r.get(7)?,
    })
}

pub(super) fn insert(conn: &Connection, o: &StoredOverride) -> Result<(), WriteError> {
    conn.prepare_cached(&format!(
        "INSERT INTO oncall_overrides ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        o.id,
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

/// Exactly one row changed, or the override was not as the change expected.
fn one_row(changed: usize) -> Result<(), WriteError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(Conflict::OverrideChanged.into())
    }
}

pub(super) fn shorten(
    conn: &Connection,
    id: &str,
    expected_end: i64,
    end: i64,
) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE oncall_overrides SET end = ?3 WHERE id = ?1 AND end = ?2 AND start < ?3",
        )?
        .execute(params![id, expected_end, end])?;
    one_row(changed)
}

pub(super) fn delete(conn: &Connection, id: &str, expected_end: i64) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached("DELETE FROM oncall_overrides WHERE id = ?1 AND end = ?2")?
        .execute(params![id, expected_end])?;
    one_row(changed)
}

#[async_trait]
impl OverrideStore for SqliteStore {
    async fn current_overrides(&self, now: i64) -> Result<Vec<StoredOverride>, Error> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM oncall_overrides WHERE end > ?1 ORDER BY start LIMIT 1000"
            ))?;
            let rows = stmt.query_map([now], override_row)?;
            rows.collect()
        })
        .await
    }

    async fn on_call_override(&self, id: &str) -> Result<Option<StoredOverride>, Error> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM oncall_overrides WHERE id = ?1"
            ))?
            .query_row([id], override_row)
            .optional()
        })
        .await
    }
}
