//! The life of a session after its start, in SQLite: heartbeats, sealing
//! the silent ones as lost, retention deleting sealed recordings, and legal
//! holds that keep them.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::WriteError;
use super::sessions::{COLUMNS, FROM, session_row, uploads};
use crate::store::{Conflict, Hold, Session, Upload};

/// When a session was last known to run: its last heartbeat, else its start.
const LAST_HEARD: &str = "MAX(COALESCE(s.last_seen, s.started_at), s.started_at)";

/// A silent session, with `?2` the cutoff: live, unheard since the cutoff,
/// and no seal started after it.
const SILENT: &str = "s.status = 'live' \
     AND MAX(COALESCE(s.last_seen, s.started_at), s.started_at) <= ?2 \
     AND (s.sealing_since IS NULL OR s.sealing_since <= ?2)";

/// A recording retention may delete, over `{FROM} JOIN recording_seals r`,
/// with `?2` the cutoff: sealed by then, not deleted, not held, and not
/// under an incident that is open.
const DELETABLE: &str = "s.status IN ('sealed', 'verification-failed', 'lost') \
     AND r.sealed_at <= ?2 \
     AND s.recording_deleted_at IS NULL \
     AND h.session IS NULL \
     AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = s.incident AND i.status = 'open')";

pub(super) fn heard_from(
    conn: &mut Connection,
    bastion: &str,
    sessions: &[String],
    now: i64,
) -> Result<Vec<String>, WriteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut not_live = Vec::new();
    {
        let mut heard = tx.prepare_cached(
            "UPDATE sessions SET last_seen = MAX(COALESCE(last_seen, 0), ?3)
             WHERE id = ?1 AND bastion = ?2 AND status = 'live'",
        )?;
        for id in sessions {
            if heard.execute(params![id, bastion, now])? == 0 && !not_live.contains(id) {
                not_live.push(id.clone());
            }
        }
    }
    tx.commit()?;
    Ok(not_live)
}

pub(super) fn silent_sessions(
    conn: &Connection,
    cutoff: i64,
    limit: u32,
) -> rusqlite::Result<Vec<Session>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {SILENT} ORDER BY {LAST_HEARD}, s.id LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![limit, cutoff], session_row)?;
    rows.collect()
}

pub(super) fn claim_lost(
    conn: &mut Connection,
    session: &str,
    cutoff: i64,
    now: i64,
) -> Result<Vec<Upload>, WriteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let claimed = tx
        .prepare_cached(&format!(
            "UPDATE sessions SET sealing_since = ?3
             WHERE id = ?1 AND id IN (SELECT s.id FROM sessions s WHERE s.id = ?1 AND {SILENT})"
        ))?
        .execute(params![session, cutoff, now])?;
    if claimed != 1 {
        return Err(Conflict::SessionHeard.into());
    }
    let files = uploads(&tx, session)?;
    tx.commit()?;
    Ok(files)
}

pub(super) fn expired_recordings(
    conn: &Connection,
    cutoff: i64,
    limit: u32,
) -> rusqlite::Result<Vec<Session>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {FROM} JOIN recording_seals r ON r.session = s.id
         WHERE {DELETABLE} ORDER BY r.sealed_at, s.id LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![limit, cutoff], session_row)?;
    rows.collect()
}

pub(super) fn recordings_to_purge(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM sessions
         WHERE recording_deleted_at IS NOT NULL AND bytes_deleted_at IS NULL
         ORDER BY recording_deleted_at, id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| r.get(0))?;
    rows.collect()
}

/// Applies `Change::DeleteRecording`.
pub(super) fn delete_recording(
    conn: &Connection,
    session: &str,
    cutoff: i64,
    at: i64,
) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE sessions SET recording_deleted_at = ?3
             WHERE id = ?1 AND id IN (SELECT s.id FROM {FROM} JOIN recording_seals r ON r.session = s.id
                                      WHERE s.id = ?1 AND {DELETABLE})"
        ))?
        .execute(params![session, cutoff, at])?;
    if changed != 1 {
        return Err(Conflict::RecordingKept.into());
    }
    // The typed lines are the recording's content; the seal and the file
    // list (names, sizes, digests) stay as the record that it existed.
    for sql in [
        "DELETE FROM recording_lines WHERE session = ?1",
        "DELETE FROM recording_uploads WHERE session = ?1",
        "DELETE FROM recording_reads WHERE session = ?1",
    ] {
        conn.prepare_cached(sql)?.execute([session])?;
    }
    Ok(())
}

/// Applies `Change::HoldRecording`.
pub(super) fn hold(conn: &Connection, hold: &Hold) -> Result<(), WriteError> {
    let deleted: Option<Option<i64>> = conn
        .prepare_cached("SELECT recording_deleted_at FROM sessions WHERE id = ?1")?
        .query_row([&hold.session], |r| r.get(0))
        .optional()?;
    match deleted {
        None => return Err(Conflict::NoSuchSession.into()),
        Some(Some(_)) => return Err(Conflict::RecordingDeleted.into()),
        Some(None) => {}
    }
    conn.prepare_cached(
        "INSERT INTO recording_holds (session, reason, held_by, held_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(session) DO UPDATE
         SET reason = excluded.reason, held_by = excluded.held_by, held_at = excluded.held_at",
    )?
    .execute(params![
        hold.session,
        hold.reason,
        hold.held_by,
        hold.held_at
    ])?;
    Ok(())
}

/// Applies `Change::ReleaseHold`.
pub(super) fn release(conn: &Connection, session: &str) -> Result<(), WriteError> {
    let removed = conn
        .prepare_cached("DELETE FROM recording_holds WHERE session = ?1")?
        .execute([session])?;
    if removed != 1 {
        return Err(Conflict::NotHeld.into());
    }
    Ok(())
}
