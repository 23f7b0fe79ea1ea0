//! Incidents in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriteError, to_sql};
use crate::store::{Conflict, Error, Incident, IncidentStore};

const COLUMNS: &str =
    "id, title, severity, status, source, opened_by, opened_at, resolved_by, resolved_at";

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        title: r.get(1)?,
        severity: r.get(2)?,
        status: r.get(3)?,
        source: r.get(4)?,
        opened_by: r.get(5)?,
        opened_at: r.get(6)?,
        resolved_by: r.get(7)?,
        resolved_at: r.get(8)?,
    })
}

pub(super) fn open(
    conn: &Connection,
    i: &Incident,
    alert_key: Option<&str>,
) -> Result<(), WriteError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO incidents (id, title, severity, status, source, opened_by, opened_at, alert_key)
             VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7) ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![
            i.id,
            i.title,
            i.severity,
            i.source,
            i.opened_by,
            i.opened_at,
            alert_key
        ])?;
    if inserted == 1 {
        Ok(())
    } else {
        Err(Conflict::IncidentExists.into())
    }
}

/// Resolves the incident and revokes, in the same transaction, every
/// certificate issued under it that is live at `now`; with the
/// `certificates_incident_open` check, none can slip in between.
pub(super) fn resolve(
    conn: &Connection,
    id: &str,
    by: &str,
    at: &str,
    now: u64,
) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE incidents SET status = 'resolved', resolved_by = ?2, resolved_at = ?3
             WHERE id = ?1 AND status = 'open'",
        )?
        .execute(params![id, by, at])?;
    // Resolved by someone else a moment ago: no second audit row may claim
    // this resolution.
    if changed != 1 {
        return Err(Conflict::IncidentNotOpen.into());
    }
    conn.prepare_cached(
        "INSERT OR IGNORE INTO revocations (serial, revoked_at, revoked_by, reason)
         SELECT serial, ?2, ?3, 'incident ' || ?1 || ' resolved' FROM certificates
         WHERE incident = ?1 AND valid_before > ?4",
    )?
    .execute(params![id, at, by, to_sql(now)])?;
    Ok(())
}

#[async_trait]
impl IncidentStore for SqliteStore {
    async fn incident(&self, id: &str) -> Result<Option<Incident>, Error> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"))?
                .query_row([id], incident_row)
                .optional()
        })
        .await
    }

    async fn incidents(&self, open_only: bool) -> Result<Vec<Incident>, Error> {
        self.read(move |conn| {
            let filter = if open_only {
                "WHERE status = 'open'"
            } else {
                ""
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM incidents {filter} ORDER BY opened_at DESC LIMIT 500"
            ))?;
            let rows = stmt.query_map([], incident_row)?;
            rows.collect()
        })
        .await
    }

    async fn alert_incident(&self, alert_key: &str) -> Result<Option<Incident>, Error> {
        let key = alert_key.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM incidents WHERE alert_key = ?1"
            ))?
            .query_row([key], incident_row)
            .optional()
        })
        .await
    }

    async fn alert_key_of(&self, id: &str) -> Result<Option<String>, Error> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT alert_key FROM incidents WHERE id = ?1")?
                .query_row([id], |r| r.get::<_, Option<String>>(0))
                .optional()
                .map(Option::flatten)
        })
        .await
    }
}
