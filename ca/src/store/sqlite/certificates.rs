//! Certificates, revocations and the serial sequence in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriteError, from_sql, json_list, to_sql};
use crate::store::{
    CertificateStore, CertificateSummary, Conflict, Error, IssuedCertificate, KRL_MARGIN_SECS,
    KnownCertificate, Revocations, Selector,
};

/// Serials reserved with one committed write: a process that dies wastes
/// what it had left of its block, no other process can ever get them.
const SERIAL_BLOCK: u64 = 128;

/// The serials this process reserved and has not handed out yet.
#[derive(Debug, Default)]
pub(super) struct SerialBlock {
    next: u64,
    end: u64,
}

/// Refuses a certificate under an incident that is not open now, inside
/// the writing transaction (the `certificates_incident_open` trigger is the
/// second guard).
fn check_incident_open(conn: &Connection, incident: Option<&str>) -> Result<(), WriteError> {
    let Some(id) = incident else { return Ok(()) };
    let open: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM incidents WHERE id = ?1 AND status = 'open')",
        )?
        .query_row([id], |r| r.get(0))?;
    if open {
        Ok(())
    } else {
        Err(Conflict::IncidentNotOpen.into())
    }
}

pub(super) fn insert(conn: &Connection, c: &IssuedCertificate) -> Result<(), WriteError> {
    check_incident_open(conn, c.incident.as_deref())?;
    conn.prepare_cached(
        "INSERT INTO certificates (serial, key_id, identity, role, incident, request_id, principals,
            valid_after, valid_before, key_fingerprint, issued_at, certificate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        to_sql(c.serial),
        c.key_id,
        c.identity,
        c.role,
        c.incident,
        c.request_id,
        json_list(&c.principals),
        to_sql(c.valid_after),
        to_sql(c.valid_before),
        c.key_fingerprint,
        c.issued_at,
        c.certificate,
    ])?;
    Ok(())
}

pub(super) fn revoke(
    conn: &Connection,
    serials: &[u64],
    by: &str,
    reason: &str,
    at: &str,
) -> Result<(), WriteError> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO revocations (serial, revoked_at, revoked_by, reason) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for serial in serials {
        insert.execute(params![to_sql(*serial), at, by, reason])?;
    }
    Ok(())
}

fn reserve(conn: &Connection, n: u64) -> rusqlite::Result<u64> {
    conn.query_row(
        "UPDATE serial_sequence SET last = last + ?1 WHERE id = 1 RETURNING last",
        [to_sql(n)],
        |r| r.get::<_, i64>(0),
    )
    .map(from_sql)
}

fn live_serials(conn: &Connection, selector: &Selector, now: u64) -> rusqlite::Result<Vec<u64>> {
    use rusqlite::types::Value;
    let (column, value) = match selector {
        Selector::Serial(serial) => ("serial", Value::Integer(to_sql(*serial))),
        Selector::KeyId(key_id) => ("key_id", Value::Text(key_id.clone())),
        Selector::Identity(identity) => ("identity", Value::Text(identity.clone())),
        Selector::Request(request) => ("request_id", Value::Text(request.clone())),
        Selector::Incident(incident) => ("incident", Value::Text(incident.clone())),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT serial FROM certificates WHERE {column} = ?1 AND valid_before > ?2
         AND serial NOT IN (SELECT serial FROM revocations) ORDER BY serial"
    ))?;
    let rows = stmt.query_map(params![value, to_sql(now)], |r| r.get::<_, i64>(0))?;
    rows.map(|r| r.map(from_sql)).collect()
}

#[async_trait]
impl CertificateStore for SqliteStore {
    async fn next_serial(&self) -> Result<u64, Error> {
        let mut block = self.serials.lock().await;
        if block.next >= block.end {
            let last = self
                .write(|conn| reserve(conn, SERIAL_BLOCK).map_err(super::map_error))
                .await?;
            block.next = last - SERIAL_BLOCK + 1;
            block.end = last + 1;
        }
        let serial = block.next;
        block.next += 1;
        Ok(serial)
    }

    async fn live_serials(&self, selector: Selector, now: u64) -> Result<Vec<u64>, Error> {
        self.read(move |conn| live_serials(conn, &selector, now))
            .await
    }

    async fn revoked_under_incident(&self, incident: &str) -> Result<Vec<u64>, Error> {
        let incident = incident.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.serial FROM revocations r JOIN certificates c ON c.serial = r.serial
                 WHERE c.incident = ?1 ORDER BY r.serial",
            )?;
            let rows = stmt.query_map([incident], |r| r.get::<_, i64>(0))?;
            rows.map(|r| r.map(from_sql)).collect()
        })
        .await
    }

    async fn revocations(&self, now: u64) -> Result<Revocations, Error> {
        let since = now.saturating_sub(KRL_MARGIN_SECS);
        self.read(move |conn| {
            let tx = conn.unchecked_transaction()?;
            let live_serials = {
                let mut stmt = tx.prepare_cached(
                    "SELECT r.serial FROM revocations r JOIN certificates c ON c.serial = r.serial
                     WHERE c.valid_before > ?1 ORDER BY r.serial",
                )?;
                let rows = stmt.query_map([to_sql(since)], |r| r.get::<_, i64>(0))?;
                rows.map(|r| r.map(from_sql))
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            let version: i64 =
                tx.query_row("SELECT COUNT(*) FROM revocations", [], |r| r.get(0))?;
            Ok(Revocations {
                live_serials,
                version: from_sql(version),
            })
        })
        .await
    }

    async fn user_certificate(&self, serial: u64) -> Result<Option<KnownCertificate>, Error> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT identity, role, incident, key_id, key_fingerprint,
                        EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
                 FROM certificates c WHERE serial = ?1",
            )?
            .query_row([to_sql(serial)], |row| {
                Ok(KnownCertificate {
                    identity: row.get(0)?,
                    role: row.get(1)?,
                    incident: row.get(2)?,
                    key_id: row.get(3)?,
                    key_fingerprint: row.get(4)?,
                    revoked: row.get(5)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn certificates_under_incident(
        &self,
        incident: &str,
        limit: u32,
    ) -> Result<Vec<CertificateSummary>, Error> {
        let incident = incident.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.serial, c.identity, c.role, c.key_id, c.valid_after, c.valid_before,
                        EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
                 FROM certificates c WHERE c.incident = ?1 ORDER BY c.serial LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![incident, limit], |r| {
                Ok(CertificateSummary {
                    serial: from_sql(r.get(0)?),
                    identity: r.get(1)?,
                    role: r.get(2)?,
                    key_id: r.get(3)?,
                    valid_after: from_sql(r.get(4)?),
                    valid_before: from_sql(r.get(5)?),
                    revoked: r.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}
