//! The SQLite store: opening it, migrating it, and the tables' row types.
//!
//! The CA writes through one connection owned by the audit writer thread
//! (see `audit.rs`); readers (CLI commands, `audit verify`) open their own.
//! WAL mode with `synchronous=FULL`: a commit is on disk when it returns.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// Numbered migrations, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/0001_init.sql")];

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

/// The highest serial issued so far (0 when none).
pub(crate) fn max_serial(conn: &Connection) -> rusqlite::Result<u64> {
    let max: Option<i64> =
        conn.query_row("SELECT MAX(serial) FROM certificates", [], |row| row.get(0))?;
    Ok(max.map_or(0, |m| u64::try_from(m).unwrap_or(0)))
}

/// SQLite integers are signed; serials and times stay far below `i64::MAX`.
fn to_sql_u64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

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
