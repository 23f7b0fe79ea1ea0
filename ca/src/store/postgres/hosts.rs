//! Hosts, join tokens and host certificates in PostgreSQL.

use async_trait::async_trait;

use super::change::Stmt;
use super::conflict::code;
use super::{PostgresStore, to_sql};
use crate::store::{Conflict, Error, HostCertificate, HostStore, StoredHost, StoredToken};

pub(super) fn insert_token(t: &StoredToken) -> Stmt {
    Stmt::new(
        "INSERT INTO join_tokens (id, token_hash, name, kind, principals, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        vec![
            Box::new(t.id.clone()),
            Box::new(t.token_hash.clone()),
            Box::new(t.name.clone()),
            Box::new(t.kind.clone()),
            Box::new(t.principals.clone()),
            Box::new(t.created_by.clone()),
            Box::new(t.created_at.clone()),
            Box::new(t.expires_at),
        ],
    )
}

pub(super) fn insert_certificate(c: &HostCertificate) -> Stmt {
    Stmt::new(
        "INSERT INTO host_certificates (serial, name, key_fingerprint, valid_after, valid_before, issued_at, certificate)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            Box::new(to_sql(c.serial)),
            Box::new(c.name.clone()),
            Box::new(c.key_fingerprint.clone()),
            Box::new(to_sql(c.valid_after)),
            Box::new(to_sql(c.valid_before)),
            Box::new(c.issued_at.clone()),
            Box::new(c.certificate.clone()),
        ],
    )
}

/// Spends the token (`TokenSpent` unless unused and unexpired at `now`),
/// records the host (replacing an earlier enrollment under the same name)
/// and its certificate.
pub(super) fn enroll(
    token_hash: &str,
    now: i64,
    host: &StoredHost,
    certificate: &HostCertificate,
) -> Vec<Stmt> {
    vec![
        Stmt::new(
            "WITH spent AS (
                 UPDATE join_tokens SET used_at = $2, used_by = $3
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $4 RETURNING 1)
             SELECT shiftkey_expect_one((SELECT count(*) FROM spent), $5)",
            vec![
                Box::new(token_hash.to_owned()),
                Box::new(host.enrolled_at.clone()),
                Box::new(host.key_fingerprint.clone()),
                Box::new(now),
                Box::new(code(Conflict::TokenSpent)),
            ],
        ),
        Stmt::new(
            "INSERT INTO hosts (name, kind, principals, key_fingerprint, enrolled_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, principals = excluded.principals,
                 key_fingerprint = excluded.key_fingerprint, enrolled_at = excluded.enrolled_at,
                 renewed_at = NULL",
            vec![
                Box::new(host.name.clone()),
                Box::new(host.kind.clone()),
                Box::new(host.principals.clone()),
                Box::new(host.key_fingerprint.clone()),
                Box::new(host.enrolled_at.clone()),
            ],
        ),
        insert_certificate(certificate),
    ]
}

/// A renewal: the host's (possibly new) key and its new certificate.
pub(super) fn renew(c: &HostCertificate) -> Vec<Stmt> {
    vec![
        Stmt::new(
            "UPDATE hosts SET key_fingerprint = $2, renewed_at = $3 WHERE name = $1",
            vec![
                Box::new(c.name.clone()),
                Box::new(c.key_fingerprint.clone()),
                Box::new(c.issued_at.clone()),
            ],
        ),
        insert_certificate(c),
    ]
}

const HOST_COLUMNS: &str =
    "h.name, h.kind, h.principals, h.key_fingerprint, h.enrolled_at, h.renewed_at";

fn host_row(r: &tokio_postgres::Row) -> StoredHost {
    StoredHost {
        name: r.get(0),
        kind: r.get(1),
        principals: r.get(2),
        key_fingerprint: r.get(3),
        enrolled_at: r.get(4),
        renewed_at: r.get(5),
    }
}

#[async_trait]
impl HostStore for PostgresStore {
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<StoredToken>, Error> {
        let row = self
            .query_opt(
                "SELECT id, token_hash, name, kind, principals, created_by, created_at, expires_at, used_at
                 FROM join_tokens WHERE token_hash = $1",
                &[&token_hash],
            )
            .await?;
        Ok(row.map(|r| StoredToken {
            id: r.get(0),
            token_hash: r.get(1),
            name: r.get(2),
            kind: r.get(3),
            principals: r.get(4),
            created_by: r.get(5),
            created_at: r.get(6),
            expires_at: r.get(7),
            used_at: r.get(8),
        }))
    }

    async fn host_for_certificate(
        &self,
        serial: u64,
        key_fingerprint: &str,
    ) -> Result<Option<StoredHost>, Error> {
        let row = self
            .query_opt(
                &format!(
                    "SELECT {HOST_COLUMNS} FROM host_certificates c JOIN hosts h ON h.name = c.name
                     WHERE c.serial = $1 AND c.key_fingerprint = $2 AND h.key_fingerprint = $2"
                ),
                &[&to_sql(serial), &key_fingerprint],
            )
            .await?;
        Ok(row.as_ref().map(host_row))
    }

    async fn hosts(&self) -> Result<Vec<StoredHost>, Error> {
        let rows = self
            .query(
                &format!("SELECT {HOST_COLUMNS} FROM hosts h ORDER BY h.name"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(host_row).collect())
    }
}
