//! Driver errors as the store's: the conflicts our own statements raise (by
//! SQLSTATE, class `SK`, defined in `0001_init.sql`), the states in which
//! the database cannot be used right now, and everything else.

use tokio_postgres::error::SqlState;

use crate::store::{Conflict, Error};

/// The SQLSTATE each conflict is raised with (`shiftkey_expect_one` and the
/// `certificates_incident_open` trigger).
pub(super) fn code(conflict: Conflict) -> &'static str {
    match conflict {
        Conflict::IncidentNotOpen => "SK001",
        Conflict::IncidentExists => "SK002",
        Conflict::RequestChanged => "SK003",
        Conflict::TokenSpent => "SK004",
        Conflict::SessionNotLive => "SK005",
        Conflict::SessionSealing => "SK006",
        Conflict::UploadMoved => "SK007",
        Conflict::OverrideChanged => "SK008",
        Conflict::SessionTooLarge => "SK009",
        Conflict::SessionHeard => "SK010",
        Conflict::RecordingKept => "SK011",
        Conflict::NoSuchSession => "SK012",
        Conflict::RecordingDeleted => "SK013",
        Conflict::NotHeld => "SK014",
        Conflict::KeyStateChanged => "SK015",
    }
}

const CONFLICTS: [Conflict; 15] = [
    Conflict::IncidentNotOpen,
    Conflict::IncidentExists,
    Conflict::RequestChanged,
    Conflict::TokenSpent,
    Conflict::SessionNotLive,
    Conflict::SessionSealing,
    Conflict::UploadMoved,
    Conflict::OverrideChanged,
    Conflict::SessionTooLarge,
    Conflict::SessionHeard,
    Conflict::RecordingKept,
    Conflict::NoSuchSession,
    Conflict::RecordingDeleted,
    Conflict::NotHeld,
    Conflict::KeyStateChanged,
];

/// The conflict a statement raised, if it raised one of ours.
pub(super) fn conflict_of(e: &tokio_postgres::Error) -> Option<Conflict> {
    let state = e.code()?.code();
    CONFLICTS.into_iter().find(|c| code(*c) == state)
}

/// Whether the database cannot be used right now (rather than refusing a
/// statement): the connection broke, or the server ran out of something,
/// is shutting down, gave up waiting for a lock or rolled back a deadlock.
fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
        Some(c) => {
            matches!(&c.code()[..2], "08" | "53" | "57" | "40")
                || *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::READ_ONLY_SQL_TRANSACTION
                || *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        }
    }
}

/// Whether the error ends a whole batch rather than one entry: anything
/// the server did not answer for one statement (the connection, or a value
/// the driver could not send, which would leave that statement out and the
/// next ones in), and every transient state.
pub(super) fn ends_the_batch(e: &tokio_postgres::Error) -> bool {
    e.code().is_none() || transient(e)
}

/// A driver error as the store's.
pub(super) fn map_error(e: &tokio_postgres::Error) -> Error {
    if let Some(conflict) = conflict_of(e) {
        return Error::Conflict(conflict);
    }
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    if transient(e) {
        Error::Unavailable(message)
    } else {
        Error::Failed(message)
    }
}
