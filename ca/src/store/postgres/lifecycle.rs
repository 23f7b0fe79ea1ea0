//! The life of a session after its start, in PostgreSQL: heartbeats,
//! sealing the silent ones as lost, retention deleting sealed recordings,
//! and legal holds that keep them.
//!
//! Several replicas run the same sweeps at once. A lost session's claim is
//! one conditional `UPDATE` of its row whose conditions read only that row,
//! so a replica that waited for another's claim (or for a heartbeat)
//! re-checks them on the row as committed and claims nothing. Deletions and
//! holds are changes, applied with their audit row while the append holds
//! the chain's head: one at a time across replicas, each seeing the last.

use super::PostgresStore;
use super::change::Stmt;
use super::conflict::code;
use super::sessions::{COLUMNS, FROM, session_row, transaction, uploads_of};
use crate::store::{Conflict, Error, Hold, Session, Upload};

/// When a session was last known to run: its last heartbeat, else its start.
const LAST_HEARD: &str = "GREATEST(COALESCE(s.last_seen, s.started_at), s.started_at)";

/// A silent session, with `$2` the cutoff: live, unheard since the cutoff,
/// and no seal started after it.
const SILENT: &str = "s.status = 'live' \
     AND GREATEST(COALESCE(s.last_seen, s.started_at), s.started_at) <= $2 \
     AND (s.sealing_since IS NULL OR s.sealing_since <= $2)";

/// A recording retention may delete, over `{FROM} JOIN recording_seals r`,
/// with `$2` the cutoff: sealed by then, not deleted, not held, and not
/// under an incident that is open.
const DELETABLE: &str = "s.status IN ('sealed', 'verification-failed', 'lost') \
     AND r.sealed_at <= $2 \
     AND s.recording_deleted_at IS NULL \
     AND h.session IS NULL \
     AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = s.incident AND i.status = 'open')";

pub(super) async fn heard_from(
    store: &PostgresStore,
    bastion: &str,
    sessions: &[String],
    now: i64,
) -> Result<Vec<String>, Error> {
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    // The named sessions that are this bastion's and live are marked
    // heard; the others are the answer, in the order they were named.
    let rows = transaction(
        store,
        vec![Stmt::new(
            "WITH named AS (
                 SELECT id, min(n) AS n FROM unnest($2::text[]) WITH ORDINALITY AS t(id, n) GROUP BY id),
             heard AS (
                 UPDATE sessions s SET last_seen = GREATEST(COALESCE(s.last_seen, 0), $3)
                 FROM named WHERE s.id = named.id AND s.bastion = $1 AND s.status = 'live'
                 RETURNING s.id)
             SELECT id FROM named WHERE id NOT IN (SELECT id FROM heard) ORDER BY n",
            vec![
                Box::new(bastion.to_owned()),
                Box::new(sessions.to_vec()),
                Box::new(now),
            ],
        )],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn silent_sessions(
    store: &PostgresStore,
    cutoff: i64,
    limit: u32,
) -> Result<Vec<Session>, Error> {
    let rows = store
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE {SILENT} ORDER BY {LAST_HEARD}, s.id LIMIT $1"
            ),
            &[&i64::from(limit), &cutoff],
        )
        .await?;
    Ok(rows.iter().map(session_row).collect())
}

pub(super) async fn claim_lost(
    store: &PostgresStore,
    session: &str,
    cutoff: i64,
    now: i64,
) -> Result<Vec<Upload>, Error> {
    let rows = transaction(
        store,
        vec![
            Stmt::new(
                CLAIM_LOST,
                vec![
                    Box::new(session.to_owned()),
                    Box::new(cutoff),
                    Box::new(now),
                    Box::new(code(Conflict::SessionHeard)),
                ],
            ),
            Stmt::new(
                "SELECT name, length FROM recording_uploads WHERE session = $1",
                vec![Box::new(session.to_owned())],
            ),
        ],
    )
    .await?;
    Ok(uploads_of(&rows))
}

/// [`SILENT`] for one session, as one conditional update. Its conditions
/// read only the row being updated: a claim that waited for another
/// replica's claim (or a heartbeat) re-checks them on the row as committed.
const CLAIM_LOST: &str = "WITH claimed AS (
         UPDATE sessions s SET sealing_since = $3
         WHERE s.id = $1 AND s.status = 'live'
           AND GREATEST(COALESCE(s.last_seen, s.started_at), s.started_at) <= $2
           AND (s.sealing_since IS NULL OR s.sealing_since <= $2)
         RETURNING 1)
     SELECT shiftkey_expect_one((SELECT count(*) FROM claimed), $4)";

pub(super) async fn expired_recordings(
    store: &PostgresStore,
    cutoff: i64,
    limit: u32,
) -> Result<Vec<Session>, Error> {
    let rows = store
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {FROM} JOIN recording_seals r ON r.session = s.id
                 WHERE {DELETABLE} ORDER BY r.sealed_at, s.id LIMIT $1"
            ),
            &[&i64::from(limit), &cutoff],
        )
        .await?;
    Ok(rows.iter().map(session_row).collect())
}

pub(super) async fn recordings_to_purge(
    store: &PostgresStore,
    limit: u32,
) -> Result<Vec<String>, Error> {
    let rows = store
        .query(
            "SELECT id FROM sessions
             WHERE recording_deleted_at IS NOT NULL AND bytes_deleted_at IS NULL
             ORDER BY recording_deleted_at, id LIMIT $1",
            &[&i64::from(limit)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Idempotent: a replica that purged the same bytes a moment later changes
/// nothing.
pub(super) async fn note_bytes_deleted(
    store: &PostgresStore,
    session: &str,
    now: i64,
) -> Result<(), Error> {
    store
        .execute(
            "UPDATE sessions SET bytes_deleted_at = $2
             WHERE id = $1 AND recording_deleted_at IS NOT NULL AND bytes_deleted_at IS NULL",
            &[&session, &now],
        )
        .await?;
    Ok(())
}

/// Applies `Change::DeleteRecording`: `RecordingKept` unless retention may
/// still delete it; then the search index, upload state and reads go (the
/// seal and the file list stay as the record that it existed).
pub(super) fn delete_recording(session: &str, cutoff: i64, at: i64) -> Vec<Stmt> {
    let mut statements = vec![Stmt::new(
        DELETE_RECORDING,
        vec![
            Box::new(session.to_owned()),
            Box::new(cutoff),
            Box::new(at),
            Box::new(code(Conflict::RecordingKept)),
        ],
    )];
    for sql in [
        "DELETE FROM recording_lines WHERE session = $1",
        "DELETE FROM recording_uploads WHERE session = $1",
        "DELETE FROM recording_reads WHERE session = $1",
    ] {
        statements.push(Stmt::new(sql, vec![Box::new(session.to_owned())]));
    }
    statements
}

/// [`DELETABLE`] for one session, as one conditional update (a change: it
/// runs while the append holds the chain's head, after every earlier hold,
/// deletion or incident change committed).
const DELETE_RECORDING: &str = "WITH deleted AS (
         UPDATE sessions SET recording_deleted_at = $3
         WHERE id = $1 AND id IN (
             SELECT s.id FROM sessions s LEFT JOIN recording_holds h ON h.session = s.id
                 JOIN recording_seals r ON r.session = s.id
             WHERE s.id = $1
               AND s.status IN ('sealed', 'verification-failed', 'lost')
               AND r.sealed_at <= $2
               AND s.recording_deleted_at IS NULL
               AND h.session IS NULL
               AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = s.incident AND i.status = 'open'))
         RETURNING 1)
     SELECT shiftkey_expect_one((SELECT count(*) FROM deleted), $4)";

/// Applies `Change::HoldRecording`: `NoSuchSession`, `RecordingDeleted`,
/// else the hold (a new reason replaces the old one).
pub(super) fn hold(hold: &Hold) -> Vec<Stmt> {
    vec![
        Stmt::new(
            "SELECT shiftkey_expect_one((SELECT count(*) FROM sessions WHERE id = $1), $2)",
            vec![
                Box::new(hold.session.clone()),
                Box::new(code(Conflict::NoSuchSession)),
            ],
        ),
        Stmt::new(
            "SELECT shiftkey_expect_one(
                 (SELECT count(*) FROM sessions WHERE id = $1 AND recording_deleted_at IS NULL), $2)",
            vec![
                Box::new(hold.session.clone()),
                Box::new(code(Conflict::RecordingDeleted)),
            ],
        ),
        Stmt::new(
            "INSERT INTO recording_holds (session, reason, held_by, held_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (session) DO UPDATE
             SET reason = excluded.reason, held_by = excluded.held_by, held_at = excluded.held_at",
            vec![
                Box::new(hold.session.clone()),
                Box::new(hold.reason.clone()),
                Box::new(hold.held_by.clone()),
                Box::new(hold.held_at),
            ],
        ),
    ]
}

/// Applies `Change::ReleaseHold` (`NotHeld` if there is none).
pub(super) fn release(session: &str) -> Stmt {
    Stmt::new(
        "WITH released AS (DELETE FROM recording_holds WHERE session = $1 RETURNING 1)
         SELECT shiftkey_expect_one((SELECT count(*) FROM released), $2)",
        vec![
            Box::new(session.to_owned()),
            Box::new(code(Conflict::NotHeld)),
        ],
    )
}
