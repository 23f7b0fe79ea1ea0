//! Access requests in PostgreSQL.

use async_trait::async_trait;

use super::change::Stmt;
use super::conflict::code;
use super::{PostgresStore, from_sql, to_sql};
use crate::store::{Conflict, Error, RequestStatus, RequestStore, StoredRequest};

const COLUMNS: &str = "id, requester, role, incident, reason, request, status, approvals, approvals_needed, \
    denied_by, decision_reason, serial, created_at, expires_at";

fn request_row(r: &tokio_postgres::Row) -> StoredRequest {
    let status: String = r.get(6);
    StoredRequest {
        id: r.get(0),
        requester: r.get(1),
        role: r.get(2),
        incident: r.get(3),
        reason: r.get(4),
        request: r.get(5),
        // The table's CHECK allows only these.
        status: RequestStatus::parse(&status).unwrap_or(RequestStatus::Denied),
        approvals: r.get(7),
        approvals_needed: u8::try_from(r.get::<_, i64>(8)).unwrap_or(u8::MAX),
        denied_by: r.get(9),
        decision_reason: r.get(10),
        serial: r.get::<_, Option<i64>>(11).map(from_sql),
        created_at: r.get(12),
        expires_at: r.get(13),
    }
}

/// `UPDATE` that must change exactly one row, or the request was not in
/// the state the change expected: `RequestChanged`.
fn one_row(update: &'static str, mut params: Vec<super::change::Param>) -> Stmt {
    params.push(Box::new(code(Conflict::RequestChanged)));
    Stmt::new(update, params)
}

pub(super) fn insert(r: &StoredRequest) -> Stmt {
    Stmt::new(
        "INSERT INTO access_requests (id, requester, role, incident, reason, request, status, approvals,
            approvals_needed, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        vec![
            Box::new(r.id.clone()),
            Box::new(r.requester.clone()),
            Box::new(r.role.clone()),
            Box::new(r.incident.clone()),
            Box::new(r.reason.clone()),
            Box::new(r.request.clone()),
            Box::new(r.status.as_str()),
            Box::new(r.approvals.clone()),
            Box::new(i64::from(r.approvals_needed)),
            Box::new(r.created_at),
            Box::new(r.expires_at),
        ],
    )
}

pub(super) fn mark_issued(id: &str, serial: u64) -> Stmt {
    one_row(
        "WITH changed AS (
             UPDATE access_requests SET status = 'issued', serial = $2
             WHERE id = $1 AND status = 'approved' RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM changed), $3)",
        vec![Box::new(id.to_owned()), Box::new(to_sql(serial))],
    )
}

pub(super) fn approve(
    id: &str,
    expected: &[String],
    approvals: &[String],
    status: RequestStatus,
    expires_at: i64,
) -> Stmt {
    one_row(
        "WITH changed AS (
             UPDATE access_requests SET approvals = $3, status = $4, expires_at = $5
             WHERE id = $1 AND status = 'pending' AND approvals = $2 RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM changed), $6)",
        vec![
            Box::new(id.to_owned()),
            Box::new(expected.to_vec()),
            Box::new(approvals.to_vec()),
            Box::new(status.as_str()),
            Box::new(expires_at),
        ],
    )
}

/// Marks a request that is still `status` expired (`RequestChanged`
/// otherwise).
pub(super) fn expire(id: &str, status: RequestStatus) -> Stmt {
    one_row(
        "WITH changed AS (
             UPDATE access_requests SET status = 'expired'
             WHERE id = $1 AND status = $2 RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM changed), $3)",
        vec![Box::new(id.to_owned()), Box::new(status.as_str())],
    )
}

pub(super) fn deny(id: &str, by: &str, reason: &str) -> Stmt {
    one_row(
        "WITH changed AS (
             UPDATE access_requests SET status = 'denied', denied_by = $2, decision_reason = $3
             WHERE id = $1 AND status = 'pending' RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM changed), $4)",
        vec![
            Box::new(id.to_owned()),
            Box::new(by.to_owned()),
            Box::new(reason.to_owned()),
        ],
    )
}

#[async_trait]
impl RequestStore for PostgresStore {
    async fn access_request(&self, id: &str) -> Result<Option<StoredRequest>, Error> {
        let row = self
            .query_opt(
                &format!("SELECT {COLUMNS} FROM access_requests WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(request_row))
    }

    async fn pending_requests(&self, now: i64) -> Result<Vec<StoredRequest>, Error> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM access_requests WHERE status = 'pending' AND expires_at > $1
                     ORDER BY created_at, id LIMIT 500"
                ),
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(request_row).collect())
    }

    async fn decided_requests(&self, limit: u32) -> Result<Vec<StoredRequest>, Error> {
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM access_requests WHERE status <> 'pending'
                     ORDER BY created_at DESC, id LIMIT $1"
                ),
                &[&i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(request_row).collect())
    }
}
