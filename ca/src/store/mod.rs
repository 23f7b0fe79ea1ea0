//! The SQLite store: opening it, migrating it, and the tables' row types.
//!
//! The CA writes through one connection owned by the audit writer thread
//! (see `audit.rs`); readers (CLI commands, `audit verify`) open their own.
//! WAL mode with `synchronous=FULL`: a commit is on disk when it returns.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

pub(crate) mod hosts;
pub(crate) mod recordings;

/// Numbered migrations, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_incidents_revocations.sql"),
    include_str!("../../migrations/0003_access_requests.sql"),
    include_str!("../../migrations/0004_oncall_overrides.sql"),
    include_str!("../../migrations/0005_hosts_sessions.sql"),
    include_str!("../../migrations/0006_recordings.sql"),
    include_str!("../../migrations/0007_identity_locks.sql"),
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{path}: cannot open the database: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: migration {version} failed: {source}")]
    Migrate {
        path: PathBuf,
        version: usize,
        source: rusqlite::Error,
    },
    #[error(
        "{path}: the database is at schema version {found}, newer than this binary's {known}; upgrade shiftkey-ca"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub(crate) fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("shiftkey.db")
}

/// Opens (creating if needed) and migrates the database for writing.
pub(crate) fn open(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    configure(&conn).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens an existing database read-only (for `audit verify`, `audit export`).
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode the commit is fsynced before it returns. That is what
    // lets the CA answer only once the audit row is durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), Error> {
    let current: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > MIGRATIONS.len() {
        return Err(Error::TooNew {
            path: path.to_owned(),
            found: current,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let run = || -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        run().map_err(|source| Error::Migrate {
            path: path.to_owned(),
            version,
            source,
        })?;
    }
    Ok(())
}

/// One issued certificate, as stored.
#[derive(Debug, Clone)]
pub(crate) struct IssuedCertificate {
    pub(crate) serial: u64,
    pub(crate) key_id: String,
    pub(crate) identity: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) request_id: String,
    pub(crate) principals: Vec<String>,
    pub(crate) valid_after: u64,
    pub(crate) valid_before: u64,
    pub(crate) key_fingerprint: String,
    pub(crate) issued_at: String,
    pub(crate) certificate: String,
}

impl IssuedCertificate {
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        let principals =
            serde_json::to_string(&self.principals).unwrap_or_else(|_| "[]".to_owned());
        conn.prepare_cached(
            "INSERT INTO certificates (serial, key_id, identity, role, incident, request_id, principals,
                valid_after, valid_before, key_fingerprint, issued_at, certificate)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(rusqlite::params![
                to_sql_u64(self.serial),
                self.key_id,
                self.identity,
                self.role,
                self.incident,
                self.request_id,
                principals,
                to_sql_u64(self.valid_after),
                to_sql_u64(self.valid_before),
                self.key_fingerprint,
                self.issued_at,
                self.certificate,
            ])?;
        Ok(())
    }
}

/// A change to the store, applied in the same transaction as the audit row
/// that records it (see `audit::AuditLog::record_change`). Data, not a
/// closure, so a batch that failed can be retried row by row.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Issue(IssuedCertificate),
    /// The certificate of an approved access request, and the request marked issued.
    IssueForRequest {
        certificate: IssuedCertificate,
        request: String,
    },
    CreateRequest(StoredRequest),
    /// Sets a pending request's approvals (and status), if they are still
    /// `expected` (two approvers at once: the second retries).
    Approve {
        id: String,
        expected: String,
        approvals: String,
        status: String,
    },
    Deny {
        id: String,
        by: String,
        reason: String,
    },
    AddOverride(StoredOverride),
    Revoke {
        serials: Vec<u64>,
        by: String,
        reason: String,
        at: String,
    },
    OpenIncident(Incident),
    /// Locks `identity` out and revokes its live certificates (`now`, unix seconds).
    Lock {
        identity: String,
        by: String,
        at: String,
        reason: String,
        now: u64,
    },
    Unlock {
        identity: String,
    },
    /// A one-time join token for a host or bastion.
    CreateJoinToken(hosts::StoredToken),
    /// Spends a join token and records the host and its first certificate.
    Enroll {
        token_hash: String,
        now: i64,
        host: hosts::StoredHost,
        certificate: hosts::HostCertificate,
    },
    RenewHost(hosts::HostCertificate),
    /// A host certificate that changes no host's identity (what a bastion
    /// presents under a target's name).
    RecordHostCertificate(hosts::HostCertificate),
    /// A bastion session starts: its one-session certificate and its row.
    StartSession {
        certificate: IssuedCertificate,
        session: hosts::StoredSession,
    },
    /// A bastion session ends: its seal, files and search index.
    SealRecording(Box<recordings::Seal>),
    /// Resolves the incident and revokes the certificates issued under it
    /// that are live at `now` (unix seconds).
    ResolveIncident {
        id: String,
        by: String,
        at: String,
        now: u64,
    },
}

impl Change {
    pub(crate) fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        match self {
            Change::Issue(cert) => cert.insert(conn),
            Change::CreateJoinToken(token) => token.insert(conn),
            Change::Lock {
                identity,
                by,
                at,
                reason,
                now,
            } => {
                conn.execute(
                    "INSERT INTO identity_locks (identity, locked_by, locked_at, reason) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(identity) DO UPDATE SET locked_by = excluded.locked_by,
                         locked_at = excluded.locked_at, reason = excluded.reason",
                    rusqlite::params![identity, by, at, reason],
                )?;
                conn.execute(
                    "INSERT OR IGNORE INTO revocations (serial, revoked_at, revoked_by, reason)
                     SELECT serial, ?2, ?3, 'identity locked: ' || ?4 FROM certificates
                     WHERE identity = ?1 AND valid_before > ?5",
                    rusqlite::params![identity, at, by, reason, to_sql_u64(*now)],
                )?;
                Ok(())
            }
            Change::Unlock { identity } => {
                conn.execute("DELETE FROM identity_locks WHERE identity = ?1", [identity])?;
                Ok(())
            }
            Change::Enroll {
                token_hash,
                now,
                host,
                certificate,
            } => hosts::enroll(conn, token_hash, *now, host, certificate),
            Change::RenewHost(certificate) => hosts::renew(conn, certificate),
            Change::RecordHostCertificate(certificate) => certificate.insert(conn),
            Change::SealRecording(seal) => recordings::seal(conn, seal),
            Change::StartSession {
                certificate,
                session,
            } => {
                certificate.insert(conn)?;
                session.insert(conn)
            }
            Change::IssueForRequest {
                certificate,
                request,
            } => {
                certificate.insert(conn)?;
                let changed = conn.execute(
                    "UPDATE access_requests SET status = 'issued', serial = ?2 WHERE id = ?1 AND status = 'approved'",
                    rusqlite::params![request, to_sql_u64(certificate.serial)],
                )?;
                if changed != 1 {
                    Err(state_changed_error())
                } else {
                    Ok(())
                }
            }
            Change::CreateRequest(r) => {
                conn.execute(
                    "INSERT INTO access_requests (id, requester, role, incident, reason, request, status, approvals,
                        approvals_needed, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', '[]', ?7, ?8, ?9)",
                    rusqlite::params![r.id, r.requester, r.role, r.incident, r.reason, r.request, r.approvals_needed, r.created_at, r.expires_at],
                )?;
                Ok(())
            }
            Change::Approve {
                id,
                expected,
                approvals,
                status,
            } => {
                let changed = conn.execute(
                    "UPDATE access_requests SET approvals = ?3, status = ?4 WHERE id = ?1 AND status = 'pending' AND approvals = ?2",
                    rusqlite::params![id, expected, approvals, status],
                )?;
                if changed != 1 {
                    Err(state_changed_error())
                } else {
                    Ok(())
                }
            }
            Change::AddOverride(o) => {
                conn.execute(
                    "INSERT INTO oncall_overrides (schedule, member, start, end, reason, created_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![o.schedule, o.member, o.start, o.end, o.reason, o.created_by, o.created_at],
                )?;
                Ok(())
            }
            Change::Deny { id, by, reason } => {
                let changed = conn.execute(
                    "UPDATE access_requests SET status = 'denied', denied_by = ?2, decision_reason = ?3 WHERE id = ?1 AND status = 'pending'",
                    rusqlite::params![id, by, reason],
                )?;
                if changed != 1 {
                    Err(state_changed_error())
                } else {
                    Ok(())
                }
            }
            Change::Revoke {
                serials,
                by,
                reason,
                at,
            } => {
                let mut insert = conn.prepare_cached(
                    "INSERT OR IGNORE INTO revocations (serial, revoked_at, revoked_by, reason) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for serial in serials {
                    insert.execute(rusqlite::params![to_sql_u64(*serial), at, by, reason])?;
                }
                Ok(())
            }
            Change::OpenIncident(i) => {
                conn.execute(
                    "INSERT INTO incidents (id, title, severity, status, source, opened_by, opened_at)
                     VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6)",
                    rusqlite::params![i.id, i.title, i.severity, i.source, i.opened_by, i.opened_at],
                )?;
                Ok(())
            }
            Change::ResolveIncident { id, by, at, now } => {
                let changed = conn.execute(
                    "UPDATE incidents SET status = 'resolved', resolved_by = ?2, resolved_at = ?3 WHERE id = ?1 AND status = 'open'",
                    rusqlite::params![id, by, at],
                )?;
                // Resolved by someone else a moment ago: no second audit row
                // may claim this resolution.
                if changed != 1 {
                    return Err(not_open_error());
                }
                // Every live certificate issued under it, in this same
                // transaction (see the certificates_incident_open trigger).
                conn.execute(
                    "INSERT OR IGNORE INTO revocations (serial, revoked_at, revoked_by, reason)
                     SELECT serial, ?2, ?3, 'incident ' || ?1 || ' resolved' FROM certificates
                     WHERE incident = ?1 AND valid_before > ?4",
                    rusqlite::params![id, at, by, to_sql_u64(*now)],
                )?;
                Ok(())
            }
        }
    }
}

/// An incident as stored: the API's type, field for field.
pub(crate) use shiftkey_wire::Incident;

fn incident_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
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

const INCIDENT_COLUMNS: &str =
    "id, title, severity, status, source, opened_by, opened_at, resolved_by, resolved_at";

pub(crate) fn incident(conn: &Connection, id: &str) -> rusqlite::Result<Option<Incident>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    rows.next()?.map(incident_from_row).transpose()
}

/// Incidents, newest first; only open ones when `open_only`.
pub(crate) fn incidents(conn: &Connection, open_only: bool) -> rusqlite::Result<Vec<Incident>> {
    let filter = if open_only {
        "WHERE status = 'open'"
    } else {
        ""
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents {filter} ORDER BY opened_at DESC LIMIT 500"
    ))?;
    let rows = stmt.query_map([], incident_from_row)?;
    rows.collect()
}

/// Serials of certificates still valid at `now` that match: issued under
/// `incident`, to `identity`, with `key_id`, or the given `serial`.
pub(crate) fn live_serials(
    conn: &Connection,
    selector: &Selector<'_>,
    now: u64,
) -> rusqlite::Result<Vec<u64>> {
    let (column, value): (&str, rusqlite::types::Value) = match selector {
        Selector::Serial(serial) => (
            "serial",
            rusqlite::types::Value::Integer(to_sql_u64(*serial)),
        ),
        Selector::KeyId(key_id) => ("key_id", rusqlite::types::Value::Text((*key_id).to_owned())),
        Selector::Identity(identity) => (
            "identity",
            rusqlite::types::Value::Text((*identity).to_owned()),
        ),
        Selector::Request(request) => (
            "request_id",
            rusqlite::types::Value::Text((*request).to_owned()),
        ),
        Selector::Incident(incident) => (
            "incident",
            rusqlite::types::Value::Text((*incident).to_owned()),
        ),
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT serial FROM certificates WHERE {column} = ?1 AND valid_before > ?2
         AND serial NOT IN (SELECT serial FROM revocations) ORDER BY serial"
    ))?;
    let rows = stmt.query_map(rusqlite::params![value, to_sql_u64(now)], |r| {
        r.get::<_, i64>(0)
    })?;
    rows.map(|r| r.map(|s| u64::try_from(s).unwrap_or(0)))
        .collect()
}

/// Which certificates a revocation is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selector<'a> {
    Serial(u64),
    KeyId(&'a str),
    Identity(&'a str),
    Incident(&'a str),
    /// The certificate issued for an access request (its `req=`).
    Request(&'a str),
}

/// Serials revoked because they were issued under `incident`.
pub(crate) fn revoked_under_incident(
    conn: &Connection,
    incident: &str,
) -> rusqlite::Result<Vec<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.serial FROM revocations r JOIN certificates c ON c.serial = r.serial
         WHERE c.incident = ?1 ORDER BY r.serial",
    )?;
    let rows = stmt.query_map([incident], |r| r.get::<_, i64>(0))?;
    rows.map(|r| r.map(|s| u64::try_from(s).unwrap_or(0)))
        .collect()
}

/// A request's state changed under us (decided, or approved by someone
/// else a moment ago).
pub(crate) const STATE_CHANGED: &str = "the request changed meanwhile";

fn state_changed_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        Some(STATE_CHANGED.to_owned()),
    )
}

/// An on-call override as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct StoredOverride {
    pub(crate) schedule: String,
    pub(crate) member: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) reason: String,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
}

/// Overrides that have not ended by `now`.
pub(crate) fn current_overrides(
    conn: &Connection,
    now: i64,
) -> rusqlite::Result<Vec<StoredOverride>> {
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
}

/// An access request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRequest {
    pub(crate) id: String,
    pub(crate) requester: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) reason: Option<String>,
    /// The `CertificateRequest`, JSON.
    pub(crate) request: String,
    pub(crate) status: String,
    /// JSON array of identities.
    pub(crate) approvals: String,
    pub(crate) approvals_needed: u8,
    pub(crate) denied_by: Option<String>,
    pub(crate) decision_reason: Option<String>,
    pub(crate) serial: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

const REQUEST_COLUMNS: &str = "id, requester, role, incident, reason, request, status, approvals, approvals_needed, \
    denied_by, decision_reason, serial, created_at, expires_at";

fn request_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRequest> {
    Ok(StoredRequest {
        id: r.get(0)?,
        requester: r.get(1)?,
        role: r.get(2)?,
        incident: r.get(3)?,
        reason: r.get(4)?,
        request: r.get(5)?,
        status: r.get(6)?,
        approvals: r.get(7)?,
        approvals_needed: r.get(8)?,
        denied_by: r.get(9)?,
        decision_reason: r.get(10)?,
        serial: r.get(11)?,
        created_at: r.get(12)?,
        expires_at: r.get(13)?,
    })
}

pub(crate) fn access_request(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Option<StoredRequest>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = ?1"
    ))?;
    let mut rows = stmt.query([id])?;
    rows.next()?.map(request_from_row).transpose()
}

/// Pending requests not yet expired at `now`, oldest first.
pub(crate) fn pending_requests(
    conn: &Connection,
    now: i64,
) -> rusqlite::Result<Vec<StoredRequest>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE status = 'pending' AND expires_at > ?1 ORDER BY created_at LIMIT 500"
    ))?;
    let rows = stmt.query_map([now], request_from_row)?;
    rows.collect()
}

/// The message of the `certificates_incident_open` trigger, and of a
/// resolution that found the incident no longer open.
pub(crate) const INCIDENT_NOT_OPEN: &str = "incident is not open";

fn not_open_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        Some(INCIDENT_NOT_OPEN.to_owned()),
    )
}

/// How long a revoked certificate stays in the KRL after its `valid_before`:
/// a host whose clock runs behind would still accept it until then.
pub(crate) const KRL_MARGIN_SECS: u64 = 3600;

/// Revoked serials of certificates that have not expired by `now` (an
/// expired certificate needs no KRL entry: sshd refuses it anyway).
pub(crate) fn revoked_live_serials(conn: &Connection, now: u64) -> rusqlite::Result<Vec<u64>> {
    let now = now.saturating_sub(KRL_MARGIN_SECS);
    let mut stmt = conn.prepare_cached(
        "SELECT r.serial FROM revocations r JOIN certificates c ON c.serial = r.serial
         WHERE c.valid_before > ?1 ORDER BY r.serial",
    )?;
    let rows = stmt.query_map([to_sql_u64(now)], |r| r.get::<_, i64>(0))?;
    rows.map(|r| r.map(|s| u64::try_from(s).unwrap_or(0)))
        .collect()
}

/// A number that changes whenever revocations change: the KRL's version.
pub(crate) fn revocation_count(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM revocations", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Why `identity` is locked, if it is.
pub(crate) fn lock_of(conn: &Connection, identity: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT reason FROM identity_locks WHERE identity = ?1",
        [identity],
        |r| r.get(0),
    )
    .optional()
}

/// The highest serial issued so far (0 when none).
pub(crate) fn max_serial(conn: &Connection) -> rusqlite::Result<u64> {
    let max: Option<i64> =
        conn.query_row("SELECT MAX(serial) FROM certificates", [], |row| row.get(0))?;
    // User and host certificates share one sequence.
    Ok(max
        .map_or(0, |m| u64::try_from(m).unwrap_or(0))
        .max(hosts::max_host_serial(conn)?))
}

/// SQLite integers are signed; serials and times stay far below `i64::MAX`.
fn to_sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(serial: u64, incident: Option<&str>, valid_before: u64) -> IssuedCertificate {
        IssuedCertificate {
            serial,
            key_id: format!("a role=r req=r_1 serial={serial}"),
            identity: "user:a@example.com".into(),
            role: "r".into(),
            incident: incident.map(str::to_owned),
            request_id: "r_1".into(),
            principals: vec!["p".into()],
            valid_after: 0,
            valid_before,
            key_fingerprint: "SHA256:x".into(),
            issued_at: "2026-11-25T00:00:00Z".into(),
            certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
        }
    }

    #[test]
    fn resolving_revokes_live_certificates_and_the_store_refuses_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&db_path(dir.path())).unwrap();
        let incident = Incident {
            id: "INC-1".into(),
            title: "t".into(),
            severity: 2,
            status: "open".into(),
            source: "manual".into(),
            opened_by: "local:root".into(),
            opened_at: "2026-11-25T00:00:00Z".into(),
            resolved_by: None,
            resolved_at: None,
        };
        // Unknown incident: refused by the trigger.
        let err = Change::Issue(cert(1, Some("INC-1"), 2_000))
            .apply(&conn)
            .unwrap_err();
        assert!(err.to_string().contains(INCIDENT_NOT_OPEN), "{err}");
        Change::OpenIncident(incident).apply(&conn).unwrap();
        Change::Issue(cert(1, Some("INC-1"), 2_000))
            .apply(&conn)
            .unwrap();
        Change::Issue(cert(2, Some("INC-1"), 500))
            .apply(&conn)
            .unwrap();
        Change::Issue(cert(3, None, 2_000)).apply(&conn).unwrap();
        let resolve = Change::ResolveIncident {
            id: "INC-1".into(),
            by: "local:root".into(),
            at: "x".into(),
            now: 1_000,
        };
        resolve.apply(&conn).unwrap();
        assert_eq!(
            revoked_under_incident(&conn, "INC-1").unwrap(),
            vec![1],
            "only the live one"
        );
        assert_eq!(revoked_live_serials(&conn, 1_000).unwrap(), vec![1]);
        let err = Change::Issue(cert(4, Some("INC-1"), 2_000))
            .apply(&conn)
            .unwrap_err();
        assert!(
            err.to_string().contains(INCIDENT_NOT_OPEN),
            "after resolution: {err}"
        );
        assert!(
            conn.execute("DELETE FROM revocations", []).is_err(),
            "revocations are permanent"
        );
    }

    #[test]
    fn migrates_once_and_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        drop(open(&path).unwrap());
        let conn = open(&path).unwrap();
        assert_eq!(max_serial(&conn).unwrap(), 0);
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(open(&path), Err(Error::TooNew { found: 99, .. })));
    }
}
