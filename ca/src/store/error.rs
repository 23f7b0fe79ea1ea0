//! What the store answers when it cannot do what it was asked.
//!
//! Callers `match` on [`Conflict`]: each variant is a state the domain
//! expects to meet (two people acting at once), never a driver's message.

use std::path::PathBuf;

/// Why a read or a write failed. Clone: one failed group commit answers
/// every entry of the batch with the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// The write met a state that forbids it; nothing was changed.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The store cannot be read or written right now (locked, full,
    /// read-only, an I/O error); nothing was changed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused or failed a statement it should have taken: a bug
    /// or a damaged store. Nothing was changed.
    #[error("the store failed: {0}")]
    Failed(String),
}

/// A write that lost a race, or came too late. Each names the state the
/// store found, so the caller can say what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Conflict {
    /// A certificate under an incident that is not open (resolved a moment
    /// ago, or never opened), or a resolution of one that is not open.
    #[error("the incident is not open")]
    IncidentNotOpen,
    /// An incident with this ID exists already.
    #[error("an incident with this ID exists already")]
    IncidentExists,
    /// The access request was decided or approved by someone else since it
    /// was read.
    #[error("the access request changed meanwhile")]
    RequestChanged,
    /// The on-call override was changed or deleted since it was read.
    #[error("the on-call override changed meanwhile")]
    OverrideChanged,
    /// The join token was spent (or expired) since it was read.
    #[error("the join token was already used or has expired")]
    TokenSpent,
    /// The session is no longer live (sealed, or its seal started).
    #[error("the session is no longer live")]
    SessionNotLive,
    /// The session's seal has started: its recording no longer changes.
    #[error("the session is being sealed")]
    SessionSealing,
    /// The recording file's committed length moved on since it was read
    /// (another upload of the same file landed first).
    #[error("the recording file changed meanwhile")]
    UploadMoved,
    /// The session's recording would grow past the per-session limit.
    #[error("the session's recording reached its size limit")]
    SessionTooLarge,
    /// A session to seal as lost was heard from, or claimed by another
    /// process, since it was read.
    #[error("the session was heard from or claimed meanwhile")]
    SessionHeard,
    /// Retention may no longer delete the recording (held, under an open
    /// incident, or deleted meanwhile).
    #[error("the recording is kept")]
    RecordingKept,
    /// No session with this ID.
    /// A CA key rotation phase found the keys in other states than it read
    /// (another operator moved first).
    #[error("the CA keys changed meanwhile")]
    KeyStateChanged,
    #[error("no such session")]
    NoSuchSession,
    /// Retention deleted the session's recording already.
    #[error("the recording was deleted")]
    RecordingDeleted,
    /// There is no legal hold to release.
    #[error("the recording is not held")]
    NotHeld,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("{path}: cannot open the database: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path}: migration {version} failed: {message}")]
    Migrate {
        path: PathBuf,
        version: usize,
        message: String,
    },
    #[error(
        "{path}: the database is at schema version {found}, newer than this binary's {known}; upgrade shiftkey-ca"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error(
        "{path}: no database here\nhint: create the data directory with `shiftkey-ca init`, or pass the right --data-dir"
    )]
    Missing { path: PathBuf },
    #[error(
        "{database}: the database holds no Shiftkey store\nhint: start `shiftkey-ca serve` with this [store] once (it creates the tables), or copy a SQLite store there with `shiftkey-ca store migrate`"
    )]
    NoSchema { database: String },
}
