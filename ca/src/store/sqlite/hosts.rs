//! Hosts, join tokens and host certificates in SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, WriteError, json_list, parse_list, to_sql};
use crate::store::{Conflict, Error, HostCertificate, HostStore, StoredHost, StoredToken};

pub(super) fn insert_token(conn: &Connection, t: &StoredToken) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO join_tokens (id, token_hash, name, kind, principals, created_by, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        t.id,
        t.token_hash,
        t.name,
        t.kind,
        json_list(&t.principals),
        t.created_by,
        t.created_at,
        t.expires_at
    ])?;
    Ok(())
}

pub(super) fn insert_certificate(conn: &Connection, c: &HostCertificate) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO host_certificates (serial, name, key_fingerprint, valid_after, valid_before, issued_at, certificate)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        to_sql(c.serial),
        c.name,
        c.key_fingerprint,
        to_sql(c.valid_after),
        to_sql(c.valid_before),
        c.issued_at,
        c.certificate
    ])?;
    Ok(())
}

/// Spends the token (only if unused and unexpired at `now`), records the
/// host (replacing an earlier enrollment under the same name) and its
/// certificate.
pub(super) fn enroll(
    conn: &Connection,
    token_hash: &str,
    now: i64,
    host: &StoredHost,
    certificate: &HostCertificate,
) -> Result<(), WriteError> {
    let spent = conn
        .prepare_cached(
            "UPDATE join_tokens SET used_at = ?2, used_by = ?3
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?4",
        )?
        .execute(params![
            token_hash,
            host.enrolled_at,
            host.key_fingerprint,
            now
        ])?;
    if spent != 1 {
        return Err(Conflict::TokenSpent.into());
    }
    conn.prepare_cached(
        "INSERT INTO hosts (name, kind, principals, key_fingerprint, enrolled_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, principals = excluded.principals,
             key_fingerprint = excluded.key_fingerprint, enrolled_at = excluded.enrolled_at, renewed_at = NULL",
    )?
    .execute(params![
        host.name,
        host.kind,
        json_list(&host.principals),
        host.key_fingerprint,
        host.enrolled_at
    ])?;
    insert_certificate(conn, certificate)
}

/// Records a renewal: the host's (possibly new) key and its new certificate.
pub(super) fn renew(conn: &Connection, c: &HostCertificate) -> Result<(), WriteError> {
    conn.prepare_cached("UPDATE hosts SET key_fingerprint = ?2, renewed_at = ?3 WHERE name = ?1")?
        .execute(params![c.name, c.key_fingerprint, c.issued_at])?;
    insert_certificate(conn, c)
}

fn host_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredHost> {
    Ok(StoredHost {
        name: row.get(0)?,
        kind: row.get(1)?,
        principals: parse_list(&row.get::<_, String>(2)?),
        key_fingerprint: row.get(3)?,
        enrolled_at: row.get(4)?,
        renewed_at: row.get(5)?,
    })
}

#[async_trait]
impl HostStore for SqliteStore {
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<StoredToken>, Error> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, token_hash, name, kind, principals, created_by, created_at, expires_at, used_at
                 FROM join_tokens WHERE token_hash = ?1",
            )?
            .query_row([token_hash], |row| {
                Ok(StoredToken {
                    id: row.get(0)?,
                    token_hash: row.get(1)?,
                    name: row.get(2)?,
                    kind: row.get(3)?,
                    principals: parse_list(&row.get::<_, String>(4)?),
                    created_by: row.get(5)?,
                    created_at: row.get(6)?,
                    expires_at: row.get(7)?,
                    used_at: row.get(8)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn host_for_certificate(
        &self,
        serial: u64,
        key_fingerprint: &str,
    ) -> Result<Option<StoredHost>, Error> {
        let key_fingerprint = key_fingerprint.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT h.name, h.kind, h.principals, h.key_fingerprint, h.enrolled_at, h.renewed_at
                 FROM host_certificates c JOIN hosts h ON h.name = c.name
                 WHERE c.serial = ?1 AND c.key_fingerprint = ?2 AND h.key_fingerprint = ?2",
            )?
            .query_row(params![to_sql(serial), key_fingerprint], host_row)
            .optional()
        })
        .await
    }

    async fn hosts(&self) -> Result<Vec<StoredHost>, Error> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, kind, principals, key_fingerprint, enrolled_at, renewed_at FROM hosts ORDER BY name",
            )?;
            let rows = stmt.query_map([], host_row)?;
            rows.collect()
        })
        .await
    }
}
