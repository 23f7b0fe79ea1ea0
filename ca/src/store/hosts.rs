//! Enrolled hosts and bastions: join tokens, host certificates, and the
//! sessions bastions open.

use rusqlite::{Connection, OptionalExtension, params};

use super::to_sql_u64;

/// Raised inside a transaction when the join token was spent or expired
/// between the CA's look and its commit (two hosts racing with one token).
pub(crate) const TOKEN_SPENT: &str = "join token already used or expired";

fn token_spent_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        Some(TOKEN_SPENT.to_owned()),
    )
}

/// A join token as stored: only its hash.
#[derive(Debug, Clone)]
pub(crate) struct StoredToken {
    pub(crate) id: String,
    pub(crate) token_hash: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) principals: Vec<String>,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
    pub(crate) expires_at: i64,
    pub(crate) used_at: Option<String>,
}

impl StoredToken {
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO join_tokens (id, token_hash, name, kind, principals, created_by, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                self.id,
                self.token_hash,
                self.name,
                self.kind,
                json_list(&self.principals),
                self.created_by,
                self.created_at,
                self.expires_at
            ],
        )?;
        Ok(())
    }
}

/// An enrolled host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredHost {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) principals: Vec<String>,
    pub(crate) key_fingerprint: String,
    pub(crate) enrolled_at: String,
    pub(crate) renewed_at: Option<String>,
}

/// One host certificate, as stored.
#[derive(Debug, Clone)]
pub(crate) struct HostCertificate {
    pub(crate) serial: u64,
    pub(crate) name: String,
    pub(crate) key_fingerprint: String,
    pub(crate) valid_after: u64,
    pub(crate) valid_before: u64,
    pub(crate) issued_at: String,
    pub(crate) certificate: String,
}

impl HostCertificate {
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO host_certificates (serial, name, key_fingerprint, valid_after, valid_before, issued_at, certificate)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                to_sql_u64(self.serial),
                self.name,
                self.key_fingerprint,
                to_sql_u64(self.valid_after),
                to_sql_u64(self.valid_before),
                self.issued_at,
                self.certificate
            ],
        )?;
        Ok(())
    }
}

/// Spends the token (only if unused and unexpired at `now`), records the host
/// (replacing an earlier enrollment under the same name) and its certificate.
pub(crate) fn enroll(
    conn: &Connection,
    token_hash: &str,
    now: i64,
    host: &StoredHost,
    certificate: &HostCertificate,
) -> rusqlite::Result<()> {
    let spent = conn.execute(
        "UPDATE join_tokens SET used_at = ?2, used_by = ?3
         WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?4",
        params![token_hash, host.enrolled_at, host.key_fingerprint, now],
    )?;
    if spent != 1 {
        return Err(token_spent_error());
    }
    conn.execute(
        "INSERT INTO hosts (name, kind, principals, key_fingerprint, enrolled_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, principals = excluded.principals,
             key_fingerprint = excluded.key_fingerprint, enrolled_at = excluded.enrolled_at, renewed_at = NULL",
        params![
            host.name,
            host.kind,
            json_list(&host.principals),
            host.key_fingerprint,
            host.enrolled_at
        ],
    )?;
    certificate.insert(conn)
}

/// Records a renewal: the host's (possibly new) key and its new certificate.
pub(crate) fn renew(conn: &Connection, certificate: &HostCertificate) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hosts SET key_fingerprint = ?2, renewed_at = ?3 WHERE name = ?1",
        params![
            certificate.name,
            certificate.key_fingerprint,
            certificate.issued_at
        ],
    )?;
    certificate.insert(conn)
}

/// A token by the hash of its text.
pub(crate) fn token_by_hash(
    conn: &Connection,
    token_hash: &str,
) -> rusqlite::Result<Option<StoredToken>> {
    conn.query_row(
        "SELECT id, token_hash, name, kind, principals, created_by, created_at, expires_at, used_at
         FROM join_tokens WHERE token_hash = ?1",
        [token_hash],
        |row| {
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
        },
    )
    .optional()
}

/// The host a stored host certificate belongs to, if `serial` is one of
/// ours and was issued for `key_fingerprint`, the host's current key.
pub(crate) fn host_for_certificate(
    conn: &Connection,
    serial: u64,
    key_fingerprint: &str,
) -> rusqlite::Result<Option<StoredHost>> {
    conn.query_row(
        "SELECT h.name, h.kind, h.principals, h.key_fingerprint, h.enrolled_at, h.renewed_at
         FROM host_certificates c JOIN hosts h ON h.name = c.name
         WHERE c.serial = ?1 AND c.key_fingerprint = ?2 AND h.key_fingerprint = ?2",
        params![to_sql_u64(serial), key_fingerprint],
        host_row,
    )
    .optional()
}

/// Every enrolled host, by name.
pub(crate) fn hosts(conn: &Connection) -> rusqlite::Result<Vec<StoredHost>> {
    conn.prepare(
        "SELECT name, kind, principals, key_fingerprint, enrolled_at, renewed_at FROM hosts ORDER BY name",
    )?
    .query_map([], host_row)?
    .collect()
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

/// The highest host certificate serial (0 when none).
pub(crate) fn max_host_serial(conn: &Connection) -> rusqlite::Result<u64> {
    let max: Option<i64> =
        conn.query_row("SELECT MAX(serial) FROM host_certificates", [], |r| {
            r.get(0)
        })?;
    Ok(max.map_or(0, |m| u64::try_from(m).unwrap_or(0)))
}

/// A bastion session, as authorized.
#[derive(Debug, Clone)]
pub(crate) struct StoredSession {
    pub(crate) id: String,
    pub(crate) identity: String,
    pub(crate) user_serial: u64,
    pub(crate) session_serial: u64,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) principal: String,
    pub(crate) target: String,
    pub(crate) client_address: String,
    pub(crate) bastion: String,
    pub(crate) started_at: i64,
}

impl StoredSession {
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO sessions (id, identity, user_serial, session_serial, role, incident, principal, target,
                client_address, bastion, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                self.id,
                self.identity,
                to_sql_u64(self.user_serial),
                to_sql_u64(self.session_serial),
                self.role,
                self.incident,
                self.principal,
                self.target,
                self.client_address,
                self.bastion,
                self.started_at
            ],
        )?;
        Ok(())
    }
}

/// True when the certificate with `serial` is revoked.
pub(crate) fn is_revoked(conn: &Connection, serial: u64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM revocations WHERE serial = ?1)",
        [to_sql_u64(serial)],
        |r| r.get(0),
    )
}

/// What the store knows of an issued user certificate.
#[derive(Debug, Clone)]
pub(crate) struct KnownCertificate {
    pub(crate) identity: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) key_id: String,
    pub(crate) key_fingerprint: String,
}

pub(crate) fn user_certificate(
    conn: &Connection,
    serial: u64,
) -> rusqlite::Result<Option<KnownCertificate>> {
    conn.query_row(
        "SELECT identity, role, incident, key_id, key_fingerprint FROM certificates WHERE serial = ?1",
        [to_sql_u64(serial)],
        |row| {
            Ok(KnownCertificate {
                identity: row.get(0)?,
                role: row.get(1)?,
                incident: row.get(2)?,
                key_id: row.get(3)?,
                key_fingerprint: row.get(4)?,
            })
        },
    )
    .optional()
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
