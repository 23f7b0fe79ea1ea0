//! Access requests in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriteError, from_sql, json_list, parse_list, to_sql};
use crate::store::{Conflict, Error, RequestStatus, RequestStore, StoredRequest};

const COLUMNS: &str = "id, requester, role, incident, reason, request, status, approvals, approvals_needed, \
    denied_by, decision_reason, serial, created_at, expires_at";

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRequest> {
    let status: String = r.get(6)?;
    Ok(StoredRequest {
        id: r.get(0)?,
        requester: r.get(1)?,
        role: r.get(2)?,
        incident: r.get(3)?,
        reason: r.get(4)?,
        request: r.get(5)?,
        // The table's CHECK allows only these.
        status: RequestStatus::parse(&status).unwrap_or(RequestStatus::Denied),
        approvals: parse_list(&r.get::<_, String>(7)?),
        approvals_needed: r.get(8)?,
        denied_by: r.get(9)?,
        decision_reason: r.get(10)?,
        serial: r.get::<_, Option<i64>>(11)?.map(from_sql),
        created_at: r.get(12)?,
        expires_at: r.get(13)?,
    })
}

/// Exactly one row changed, or the request was not in the state the
/// change expected.
fn one_row(changed: usize) -> Result<(), WriteError> {
    if changed == 1 {
        Ok(())
    } else {
        Err(Conflict::RequestChanged.into())
    }
}

pub(super) fn insert(conn: &Connection, r: &StoredRequest) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO access_requests (id, requester, role, incident, reason, request, status, approvals,
            approvals_needed, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.id,
        r.requester,
        r.role,
        r.incident,
        r.reason,
        r.request,
        r.status.as_str(),
        json_list(&r.approvals),
        r.approvals_needed,
        r.created_at,
        r.expires_at
    ])?;
    Ok(())
}

pub(super) fn mark_issued(conn: &Connection, id: &str, serial: u64) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE access_requests SET status = 'issued', serial = ?2 WHERE id = ?1 AND status = 'approved'",
        )?
        .execute(params![id, to_sql(serial)])?;
    one_row(changed)
}

pub(super) fn approve(
    conn: &Connection,
    id: &str,
    expected: &[String],
    approvals: &[String],
    status: RequestStatus,
    expires_at: i64,
) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE access_requests SET approvals = ?3, status = ?4, expires_at = ?5
             WHERE id = ?1 AND status = 'pending' AND approvals = ?2",
        )?
        .execute(params![
            id,
            json_list(expected),
            json_list(approvals),
            status.as_str(),
            expires_at
        ])?;
    one_row(changed)
}

pub(super) fn expire(conn: &Connection, id: &str, status: RequestStatus) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE access_requests SET status = 'expired' WHERE id = ?1 AND status = ?2",
        )?
        .execute(params![id, status.as_str()])?;
    one_row(changed)
}

pub(super) fn deny(conn: &Connection, id: &str, by: &str, reason: &str) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE access_requests SET status = 'denied', denied_by = ?2, decision_reason = ?3
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![id, by, reason])?;
    one_row(changed)
}

#[async_trait]
impl RequestStore for SqliteStore {
    async fn access_request(&self, id: &str) -> Result<Option<StoredRequest>, Error> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM access_requests WHERE id = ?1"
            ))?
            .query_row([id], request_row)
            .optional()
        })
        .await
    }

    async fn pending_requests(&self, now: i64) -> Result<Vec<StoredRequest>, Error> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM access_requests WHERE status = 'pending' AND expires_at > ?1
                 ORDER BY created_at LIMIT 500"
            ))?;
            let rows = stmt.query_map([now], request_row)?;
            rows.collect()
        })
        .await
    }

    async fn decided_requests(&self, limit: u32) -> Result<Vec<StoredRequest>, Error> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM access_requests WHERE status != 'pending'
                 ORDER BY created_at DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], request_row)?;
            rows.collect()
        })
        .await
    }
}
