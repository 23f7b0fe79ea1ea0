//! Certificates, revocations and the serial sequence in PostgreSQL.

use async_trait::async_trait;

use super::change::Stmt;
use super::{PostgresStore, from_sql, to_sql};
use crate::store::{
    CertificateStore, CertificateSummary, Error, IssuedCertificate, KRL_MARGIN_SECS,
    KnownCertificate, Revocations, Selector,
};

/// Serials one `nextval` reserves (the sequence's INCREMENT, `0001_init.sql`).
const SERIAL_BLOCK: u64 = 128;

/// The serials this replica reserved and has not handed out yet.
#[derive(Debug, Default)]
pub(super) struct SerialBlock {
    next: u64,
    end: u64,
}

/// The incident, if any, must be open: the `certificates_incident_open`
/// trigger raises `IncidentNotOpen` otherwise.
pub(super) fn insert(c: &IssuedCertificate) -> Stmt {
    Stmt::new(
        "INSERT INTO certificates (serial, key_id, identity, role, incident, request_id, principals,
            valid_after, valid_before, key_fingerprint, issued_at, certificate)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        vec![
            Box::new(to_sql(c.serial)),
            Box::new(c.key_id.clone()),
            Box::new(c.identity.clone()),
            Box::new(c.role.clone()),
            Box::new(c.incident.clone()),
            Box::new(c.request_id.clone()),
            Box::new(c.principals.clone()),
            Box::new(to_sql(c.valid_after)),
            Box::new(to_sql(c.valid_before)),
            Box::new(c.key_fingerprint.clone()),
            Box::new(c.issued_at.clone()),
            Box::new(c.certificate.clone()),
        ],
    )
}

/// Revokes `serials`; ones already revoked stay as they were.
pub(super) fn revoke(serials: &[u64], by: &str, reason: &str, at: &str) -> Stmt {
    Stmt::new(
        "INSERT INTO revocations (serial, revoked_at, revoked_by, reason)
         SELECT s, $2, $3, $4 FROM unnest($1::bigint[]) AS s ON CONFLICT (serial) DO NOTHING",
        vec![
            Box::new(serials.iter().map(|s| to_sql(*s)).collect::<Vec<i64>>()),
            Box::new(at.to_owned()),
            Box::new(by.to_owned()),
            Box::new(reason.to_owned()),
        ],
    )
}

fn summary(r: &tokio_postgres::Row) -> CertificateSummary {
    CertificateSummary {
        serial: from_sql(r.get(0)),
        identity: r.get(1),
        role: r.get(2),
        key_id: r.get(3),
        valid_after: from_sql(r.get(4)),
        valid_before: from_sql(r.get(5)),
        revoked: r.get(6),
    }
}

#[async_trait]
impl CertificateStore for PostgresStore {
    async fn next_serial(&self) -> Result<u64, Error> {
        let mut block = self.serials.lock().await;
        if block.next >= block.end {
            // Not a write to any row: a replica opened read-only cannot
            // sign anyway, but `nextval` is refused in a read-only
            // transaction, which answers `Unavailable` like other writes.
            let client = self.writer().await?;
            let row = client
                .query_one("SELECT nextval('serial_blocks')", &[])
                .await
                .map_err(|e| super::conflict::map_error(&e))?;
            let last = from_sql(row.get(0));
            block.next = last - SERIAL_BLOCK + 1;
            block.end = last + 1;
        }
        let serial = block.next;
        block.next += 1;
        Ok(serial)
    }

    async fn live_serials(&self, selector: Selector, now: u64) -> Result<Vec<u64>, Error> {
        const WHERE_LIVE: &str = "AND valid_before > $2
             AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) ORDER BY serial";
        let now = to_sql(now);
        let rows = match &selector {
            Selector::Serial(serial) => {
                self.query(
                    &format!("SELECT serial FROM certificates c WHERE serial = $1 {WHERE_LIVE}"),
                    &[&to_sql(*serial), &now],
                )
                .await?
            }
            Selector::KeyId(text)
            | Selector::Identity(text)
            | Selector::Request(text)
            | Selector::Incident(text) => {
                let column = match selector {
                    Selector::KeyId(_) => "key_id",
                    Selector::Identity(_) => "identity",
                    Selector::Request(_) => "request_id",
                    _ => "incident",
                };
                self.query(
                    &format!("SELECT serial FROM certificates c WHERE {column} = $1 {WHERE_LIVE}"),
                    &[text, &now],
                )
                .await?
            }
        };
        Ok(rows.iter().map(|r| from_sql(r.get(0))).collect())
    }

    async fn revoked_under_incident(&self, incident: &str) -> Result<Vec<u64>, Error> {
        let rows = self
            .query(
                "SELECT r.serial FROM revocations r JOIN certificates c ON c.serial = r.serial
                 WHERE c.incident = $1 ORDER BY r.serial",
                &[&incident],
            )
            .await?;
        Ok(rows.iter().map(|r| from_sql(r.get(0))).collect())
    }

    async fn revocations(&self, now: u64) -> Result<Revocations, Error> {
        let since = to_sql(now.saturating_sub(KRL_MARGIN_SECS));
        // One statement: the list and its version from the same snapshot.
        let rows = self
            .query(
                "SELECT (SELECT COUNT(*) FROM revocations),
                        COALESCE((SELECT array_agg(r.serial ORDER BY r.serial) FROM revocations r
                                  JOIN certificates c ON c.serial = r.serial
                                  WHERE c.valid_before > $1), '{}')",
                &[&since],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(Error::Failed(
                "the revocations query answered no row".into(),
            ));
        };
        Ok(Revocations {
            version: from_sql(row.get(0)),
            live_serials: row
                .get::<_, Vec<i64>>(1)
                .into_iter()
                .map(from_sql)
                .collect(),
        })
    }

    async fn user_certificate(&self, serial: u64) -> Result<Option<KnownCertificate>, Error> {
        let row = self
            .query_opt(
                "SELECT identity, role, incident, key_id, key_fingerprint,
                        EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
                 FROM certificates c WHERE serial = $1",
                &[&to_sql(serial)],
            )
            .await?;
        Ok(row.map(|r| KnownCertificate {
            identity: r.get(0),
            role: r.get(1),
            incident: r.get(2),
            key_id: r.get(3),
            key_fingerprint: r.get(4),
            revoked: r.get(5),
        }))
    }

    async fn certificates_under_incident(
        &self,
        incident: &str,
        limit: u32,
    ) -> Result<Vec<CertificateSummary>, Error> {
        let rows = self
            .query(
                "SELECT c.serial, c.identity, c.role, c.key_id, c.valid_after, c.valid_before,
                        EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
                 FROM certificates c WHERE c.incident = $1 ORDER BY c.serial LIMIT $2",
                &[&incident, &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(summary).collect())
    }
}
