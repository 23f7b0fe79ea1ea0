//! The SQLite backend: one file, WAL mode with `synchronous=FULL` (a commit
//! is on disk when it returns), numbered migrations in
//! `ca/migrations/sqlite/` recorded in `PRAGMA user_version`.
//!
//! Writes go through one connection (SQLite has one writer at a time);
//! reads through a small pool of read-only connections. Both run on
//! tokio's blocking pool, never on an async worker.

mod audit;
mod ca_keys;
mod certificates;
mod change;
mod hosts;
mod incidents;
mod lifecycle;
mod locks;
mod overrides;
mod requests;
mod sessions;
mod ui_sessions;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use tokio::sync::watch;

use super::{Access, Conflict, Error, OpenError};

/// Numbered migrations, applied in order; `PRAGMA user_version` records the last.
pub(in crate::store) const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_incidents_revocations.sql"),
    include_str!("../../../migrations/sqlite/0003_access_requests.sql"),
    include_str!("../../../migrations/sqlite/0004_oncall_overrides.sql"),
    include_str!("../../../migrations/sqlite/0005_hosts_sessions.sql"),
    include_str!("../../../migrations/sqlite/0006_recordings.sql"),
    include_str!("../../../migrations/sqlite/0007_identity_locks.sql"),
    include_str!("../../../migrations/sqlite/0008_serial_sequence.sql"),
    include_str!("../../../migrations/sqlite/0009_recording_uploads.sql"),
    include_str!("../../../migrations/sqlite/0010_ui_sessions.sql"),
    include_str!("../../../migrations/sqlite/0011_identities_overrides_requests.sql"),
    include_str!("../../../migrations/sqlite/0012_lost_sessions_retention.sql"),
    include_str!("../../../migrations/sqlite/0013_webhook_state.sql"),
    include_str!("../../../migrations/sqlite/0014_ui_links.sql"),
    include_str!("../../../migrations/sqlite/0015_ca_keys.sql"),
];
/// How long a statement waits for another writer (a CLI command, another
/// process) before the store answers `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads that run at once, each on its own connection, kept open: more
/// would only queue for the CPUs (and open and close connections, which
/// costs more than a read).
const MAX_READERS: usize = 4;

/// The store in one SQLite file.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    path: PathBuf,
    /// Dropped before the writer (fields drop in order): the last
    /// connection to close checkpoints the WAL into the file, and only a
    /// writing one can.
    readers: Arc<Readers>,
    /// `None` when opened read-only.
    writer: Option<Arc<Mutex<Connection>>>,
    /// Serials reserved and not yet handed out (see `certificates.rs`).
    serials: tokio::sync::Mutex<certificates::SerialBlock>,
    /// The audit log's tip, for `audit_tip` (see `audit.rs`).
    tip: Arc<watch::Sender<u64>>,
    tip_follower: OnceLock<()>,
}

impl SqliteStore {
    pub(crate) fn open(path: &Path, access: Access) -> Result<Self, OpenError> {
        let open_err = |e: rusqlite::Error| OpenError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let writer = match access {
            Access::ReadWrite => {
                let conn = Connection::open(path).map_err(open_err)?;
                configure(&conn).map_err(open_err)?;
                migrate(&conn, path)?;
                Some(Arc::new(Mutex::new(conn)))
            }
            Access::ReadOnly => {
                if !path.exists() {
                    return Err(OpenError::Missing {
                        path: path.to_owned(),
                    });
                }
                None
            }
        };
        let readers = Arc::new(Readers {
            path: path.to_owned(),
            turns: tokio::sync::Semaphore::new(MAX_READERS),
            idle: Mutex::new(Vec::new()),
        });
        // Fail at open, not at the first request, if the file is unreadable
        // or from a newer binary.
        let probe = readers.open().map_err(open_err)?;
        schema_version(&probe, path)?;
        let tip = audit::max_seq(&probe).map_err(open_err)?;
        readers.keep(probe);
        Ok(Self {
            path: path.to_owned(),
            writer,
            readers,
            serials: tokio::sync::Mutex::new(certificates::SerialBlock::default()),
            tip: Arc::new(watch::channel(tip).0),
            tip_follower: OnceLock::new(),
        })
    }

    /// Runs a read on a pooled read-only connection, off the async workers.
    async fn read<T, F>(&self, query: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let _turn = self
            .readers
            .turns
            .acquire()
            .await
            .map_err(|e| Error::Unavailable(format!("the store readers stopped: {e}")))?;
        tokio::task::spawn_blocking(move || readers.with(query))
            .await
            .map_err(|e| Error::Unavailable(format!("the store reader stopped: {e}")))?
            .map_err(map_error)
    }

    /// Runs a write on the one write connection, off the async workers.
    async fn write<T, F>(&self, change: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let writer = self.writer()?;
        tokio::task::spawn_blocking(move || change(&mut lock(&writer)))
            .await
            .map_err(|e| Error::Unavailable(format!("the store writer stopped: {e}")))?
    }

    fn writer(&self) -> Result<Arc<Mutex<Connection>>, Error> {
        self.writer.as_ref().map(Arc::clone).ok_or_else(|| {
            Error::Unavailable(format!("{} was opened read-only", self.path.display()))
        })
    }
}

/// Read-only connections, opened as needed and kept for reuse.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    /// One per read running: no more than `MAX_READERS` at once.
    turns: tokio::sync::Semaphore,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn keep(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
    }

    fn with<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = lock(&self.idle).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = query(&conn);
        self.keep(conn);
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection cannot leave it half-changed: an
    // open transaction rolls back when it is dropped.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode the commit is fsynced before it returns. That is what
    // lets the CA answer only once the audit row is durable.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The schema version this binary's migrations reach.
pub(super) fn schema_version_known() -> usize {
    MIGRATIONS.len()
}

/// The store's schema version, refusing one newer than this binary's.
fn schema_version(conn: &Connection, path: &Path) -> Result<usize, OpenError> {
    let found: usize = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| OpenError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if found > MIGRATIONS.len() {
        return Err(OpenError::TooNew {
            path: path.to_owned(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    Ok(found)
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let current = schema_version(conn, path)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        // Foreign keys off while a migration runs (SQLite changes a table's
        // constraints only by rebuilding it; the pragma is a no-op inside a
        // transaction), and every reference checked before it commits.
        let run = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "foreign_keys", "OFF")?;
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            let dangling: Option<String> = tx
                .prepare("PRAGMA foreign_key_check")?
                .query_row([], |row| row.get(0))
                .optional()?;
            if let Some(table) = dangling {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                    Some(format!("a row of {table} refers to one that is gone")),
                ));
            }
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        let ran = run();
        let restored = conn.pragma_update(None, "foreign_keys", "ON");
        ran.and(restored).map_err(|e| OpenError::Migrate {
            path: path.to_owned(),
            version,
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// What applying a change or a conditional write can end in.
#[derive(Debug)]
enum WriteError {
    Conflict(Conflict),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Sql(e)
    }
}

impl From<Conflict> for WriteError {
    fn from(c: Conflict) -> Self {
        WriteError::Conflict(c)
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Conflict(c) => Error::Conflict(c),
            WriteError::Sql(e) => map_error(e),
        }
    }
}

/// A driver error as the store's: the database could not be used right now,
/// or it failed a statement.
fn map_error(e: rusqlite::Error) -> Error {
    let unavailable = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
        )
    );
    if unavailable {
        Error::Unavailable(e.to_string())
    } else {
        Error::Failed(e.to_string())
    }
}

/// SQLite integers are signed; serials and times stay far below `i64::MAX`.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
