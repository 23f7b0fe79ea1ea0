//! Sessions, recording upload state, seals, files and the search index in
//! SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use shiftkey_wire::{RecordingFile, RecordingMatch};

use super::{SqliteStore, WriteError, from_sql, lifecycle, to_sql};
use crate::store::{
    Conflict, Error, RecordingRead, Seal, Session, SessionFilter, SessionStatus, SessionStore,
    StoredSeal, Upload,
};

/// A session's columns, from `sessions s LEFT JOIN recording_holds h` (see
/// [`FROM`]), in the order [`session_row`] reads them.
pub(super) const COLUMNS: &str = "s.id, s.identity, s.user_serial, s.session_serial, s.role, \
     s.incident, s.principal, s.target, s.client_address, s.bastion, s.started_at, s.ended_at, \
     s.exit_status, s.end_reason, s.status, s.last_seen, s.recording_deleted_at, h.reason";

/// The tables [`COLUMNS`] come from.
pub(super) const FROM: &str = "sessions s LEFT JOIN recording_holds h ON h.session = s.id";

pub(super) fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let status: String = row.get(14)?;
    Ok(Session {
        id: row.get(0)?,
        identity: row.get(1)?,
        user_serial: from_sql(row.get(2)?),
        session_serial: from_sql(row.get(3)?),
        role: row.get(4)?,
        incident: row.get(5)?,
        principal: row.get(6)?,
        target: row.get(7)?,
        client_address: row.get(8)?,
        bastion: row.get(9)?,
        started_at: row.get(10)?,
        ended_at: row.get(11)?,
        exit_status: row
            .get::<_, Option<i64>>(12)?
            .and_then(|s| u32::try_from(s).ok()),
        end_reason: row.get(13)?,
        // The table's CHECK allows only these.
        status: SessionStatus::parse(&status).unwrap_or(SessionStatus::Ended),
        last_seen: row.get(15)?,
        recording_deleted_at: row.get(16)?,
        held: row.get(17)?,
    })
}

/// Files in channel order (`2.cast.gz` before `10.cast.gz`).
fn channel_order(a: &str, b: &str) -> std::cmp::Ordering {
    let channel = |name: &str| -> Option<u32> { name.split('.').next()?.parse().ok() };
    (channel(a), a).cmp(&(channel(b), b))
}

pub(super) fn insert(conn: &Connection, s: &Session) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO sessions (id, identity, user_serial, session_serial, role, incident, principal, target,
            client_address, bastion, started_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        s.id,
        s.identity,
        to_sql(s.user_serial),
        to_sql(s.session_serial),
        s.role,
        s.incident,
        s.principal,
        s.target,
        s.client_address,
        s.bastion,
        s.started_at,
        s.status.as_str()
    ])?;
    Ok(())
}

/// Applies a seal, only to a session that is still live.
pub(super) fn seal(conn: &Connection, seal: &Seal) -> Result<(), WriteError> {
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET ended_at = ?2, exit_status = ?3, end_reason = ?4, status = ?5
             WHERE id = ?1 AND status = 'live'",
        )?
        .execute(params![
            seal.session,
            seal.ended_at,
            seal.exit_status.map(i64::from),
            seal.end_reason,
            seal.status.as_str()
        ])?;
    if changed != 1 {
        return Err(Conflict::SessionNotLive.into());
    }
    conn.prepare_cached(
        "INSERT INTO recording_seals (session, manifest, digest, signature, problems, claims, sealed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        seal.session,
        seal.manifest,
        seal.digest,
        seal.signature,
        super::json_list(&seal.problems),
        seal.claims,
        seal.sealed_at
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO recording_files (session, name, kind, command, bytes, sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for file in &seal.files {
        insert.execute(params![
            seal.session,
            file.name,
            file.kind,
            file.command,
            to_sql(file.bytes),
            file.sha256
        ])?;
    }
    let mut index = conn.prepare_cached(
        "INSERT INTO recording_lines (line, session, channel, seconds, source) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for line in &seal.lines {
        index.execute(params![
            line.line,
            seal.session,
            line.channel,
            line.seconds,
            line.source
        ])?;
    }
    Ok(())
}

pub(super) fn note_read(conn: &Connection, read: &RecordingRead) -> Result<(), WriteError> {
    conn.prepare_cached(
        "INSERT INTO recording_reads (reviewer, purpose, session, file, audited_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(reviewer, purpose, session, file) DO UPDATE SET audited_at = excluded.audited_at",
    )?
    .execute(params![
        read.reviewer,
        read.purpose,
        read.session,
        read.file,
        read.audited_at
    ])?;
    Ok(())
}

pub(super) fn uploads(conn: &Connection, session: &str) -> rusqlite::Result<Vec<Upload>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, length FROM recording_uploads WHERE session = ?1")?;
    let rows = stmt.query_map([session], |r| {
        Ok(Upload {
            name: r.get(0)?,
            length: from_sql(r.get(1)?),
        })
    })?;
    let mut uploads = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    uploads.sort_by(|a, b| channel_order(&a.name, &b.name));
    Ok(uploads)
}

/// The session's state for an upload or a seal: live or not, sealing or not.
fn live_state(conn: &Connection, session: &str) -> Result<bool, WriteError> {
    let found: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT status, sealing_since FROM sessions WHERE id = ?1")?
        .query_row([session], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        Some((status, sealing)) if status == SessionStatus::Live.as_str() => Ok(sealing.is_some()),
        _ => Err(Conflict::SessionNotLive.into()),
    }
}

fn commit_upload(
    conn: &mut Connection,
    session: &str,
    name: &str,
    from: u64,
    to: u64,
    limit: u64,
) -> Result<(), WriteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if live_state(&tx, session)? {
        return Err(Conflict::SessionSealing.into());
    }
    let others: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(length), 0) FROM recording_uploads WHERE session = ?1 AND name != ?2",
        )?
        .query_row(params![session, name], |r| r.get(0))?;
    if from_sql(others).saturating_add(to) > limit {
        return Err(Conflict::SessionTooLarge.into());
    }
    let changed = if from == 0 {
        tx.prepare_cached(
            "INSERT INTO recording_uploads (session, name, length) VALUES (?1, ?2, ?3)
             ON CONFLICT(session, name) DO NOTHING",
        )?
        .execute(params![session, name, to_sql(to)])?
    } else {
        tx.prepare_cached(
            "UPDATE recording_uploads SET length = ?4 WHERE session = ?1 AND name = ?2 AND length = ?3",
        )?
        .execute(params![session, name, to_sql(from), to_sql(to)])?
    };
    if changed != 1 {
        return Err(Conflict::UploadMoved.into());
    }
    tx.commit()?;
    Ok(())
}

fn begin_seal(conn: &mut Connection, session: &str, now: i64) -> Result<Vec<Upload>, WriteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    live_state(&tx, session)?;
    tx.prepare_cached(
        "UPDATE sessions SET sealing_since = COALESCE(sealing_since, ?2) WHERE id = ?1",
    )?
    .execute(params![session, now])?;
    let files = uploads(&tx, session)?;
    tx.commit()?;
    Ok(files)
}

fn search(conn: &Connection, text: &str, limit: u32) -> rusqlite::Result<Vec<RecordingMatch>> {
    // A plain LIKE pattern uses the trigram index; text with LIKE's own
    // wildcards in it is matched literally with instr() instead (a scan).
    let (condition, needle) = if text.contains(['%', '_']) {
        ("instr(lower(l.line), lower(?1)) > 0", text.to_owned())
    } else {
        ("l.line LIKE ?1", format!("%{text}%"))
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT l.session, l.channel, l.seconds, l.line, l.source, s.identity, s.target, s.started_at
         FROM recording_lines l JOIN sessions s ON s.id = l.session
         WHERE {condition}
         ORDER BY s.started_at DESC, l.session, l.channel, l.seconds
         LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![needle, limit], |row| {
        Ok(RecordingMatch {
            session_id: row.get(0)?,
            channel: row.get(1)?,
            offset_seconds: row.get(2)?,
            line: row.get(3)?,
            source: row.get(4)?,
            identity: row.get(5)?,
            target: row.get(6)?,
            started_at: row.get(7)?,
        })
    })?;
    rows.collect()
}

fn sessions(conn: &Connection, filter: &SessionFilter) -> rusqlite::Result<Vec<Session>> {
    use rusqlite::types::Value;
    let mut clauses = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut add = |clause: &str, value: Value| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    if let Some(identity) = &filter.identity {
        add(
            "s.identity = ? COLLATE NOCASE",
            Value::Text(identity.clone()),
        );
    }
    if let Some(host) = &filter.host {
        // `host` alone, or `host:port` exactly.
        add(
            "(s.target = ? OR substr(s.target, 1, length(?) + 1) = ? || ':')",
            Value::Text(host.clone()),
        );
    }
    if let Some(incident) = &filter.incident {
        add("s.incident = ?", Value::Text(incident.clone()));
    }
    if let Some(role) = &filter.role {
        add("s.role = ?", Value::Text(role.clone()));
    }
    if let Some(since) = filter.since {
        add("s.started_at >= ?", Value::Integer(since));
    }
    if let Some(status) = filter.status {
        add("s.status = ?", Value::Text(status.as_str().to_owned()));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM {FROM} {where_sql} ORDER BY s.started_at DESC, s.id LIMIT {}",
        filter.limit
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), session_row)?;
    rows.collect()
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn session(&self, id: &str) -> Result<Option<Session>, Error> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} WHERE s.id = ?1"))?
                .query_row([id], session_row)
                .optional()
        })
        .await
    }

    async fn sessions(&self, filter: SessionFilter) -> Result<Vec<Session>, Error> {
        self.read(move |conn| sessions(conn, &filter)).await
    }

    async fn recording_files(&self, session: &str) -> Result<Vec<RecordingFile>, Error> {
        let session = session.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, kind, command, bytes, sha256 FROM recording_files WHERE session = ?1",
            )?;
            let rows = stmt.query_map([session], |row| {
                Ok(RecordingFile {
                    name: row.get(0)?,
                    kind: row.get(1)?,
                    command: row.get(2)?,
                    bytes: from_sql(row.get(3)?),
                    sha256: row.get(4)?,
                })
            })?;
            let mut files = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            files.sort_by(|a, b| channel_order(&a.name, &b.name));
            Ok(files)
        })
        .await
    }

    async fn stored_seal(&self, session: &str) -> Result<Option<StoredSeal>, Error> {
        let session = session.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT manifest, digest, signature, problems, claims FROM recording_seals WHERE session = ?1",
            )?
            .query_row([session], |row| {
                Ok(StoredSeal {
                    manifest: row.get(0)?,
                    digest: row.get(1)?,
                    signature: row.get(2)?,
                    problems: super::parse_list(&row.get::<_, String>(3)?),
                    claims: row.get(4)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn search(&self, text: &str, limit: u32) -> Result<Vec<RecordingMatch>, Error> {
        let text = text.to_owned();
        self.read(move |conn| search(conn, &text, limit)).await
    }

    async fn uploads(&self, session: &str) -> Result<Vec<Upload>, Error> {
        let session = session.to_owned();
        self.read(move |conn| uploads(conn, &session)).await
    }

    async fn commit_upload(
        &self,
        session: &str,
        name: &str,
        from: u64,
        to: u64,
        limit: u64,
    ) -> Result<(), Error> {
        let (session, name) = (session.to_owned(), name.to_owned());
        self.write(move |conn| Ok(commit_upload(conn, &session, &name, from, to, limit)?))
            .await
    }

    async fn begin_seal(&self, session: &str, now: i64) -> Result<Vec<Upload>, Error> {
        let session = session.to_owned();
        self.write(move |conn| Ok(begin_seal(conn, &session, now)?))
            .await
    }

    async fn abort_seal(&self, session: &str) -> Result<(), Error> {
        let session = session.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE sessions SET sealing_since = NULL WHERE id = ?1 AND status = 'live'",
                [session],
            )
            .map_err(super::map_error)?;
            Ok(())
        })
        .await
    }

    async fn read_audited_at(&self, read: &RecordingRead) -> Result<Option<i64>, Error> {
        let read = read.clone();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT audited_at FROM recording_reads
                 WHERE reviewer = ?1 AND purpose = ?2 AND session = ?3 AND file = ?4",
            )?
            .query_row(
                params![read.reviewer, read.purpose, read.session, read.file],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn heard_from(
        &self,
        bastion: &str,
        sessions: &[String],
        now: i64,
    ) -> Result<Vec<String>, Error> {
        let (bastion, sessions) = (bastion.to_owned(), sessions.to_vec());
        self.write(move |conn| Ok(lifecycle::heard_from(conn, &bastion, &sessions, now)?))
            .await
    }

    async fn silent_sessions(&self, cutoff: i64, limit: u32) -> Result<Vec<Session>, Error> {
        self.read(move |conn| lifecycle::silent_sessions(conn, cutoff, limit))
            .await
    }

    async fn claim_lost(&self, session: &str, cutoff: i64, now: i64) -> Result<Vec<Upload>, Error> {
        let session = session.to_owned();
        self.write(move |conn| Ok(lifecycle::claim_lost(conn, &session, cutoff, now)?))
            .await
    }

    async fn expired_recordings(&self, cutoff: i64, limit: u32) -> Result<Vec<Session>, Error> {
        self.read(move |conn| lifecycle::expired_recordings(conn, cutoff, limit))
            .await
    }

    async fn recordings_to_purge(&self, limit: u32) -> Result<Vec<String>, Error> {
        self.read(move |conn| lifecycle::recordings_to_purge(conn, limit))
            .await
    }

    async fn note_bytes_deleted(&self, session: &str, now: i64) -> Result<(), Error> {
        let session = session.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE sessions SET bytes_deleted_at = ?2
                 WHERE id = ?1 AND recording_deleted_at IS NOT NULL AND bytes_deleted_at IS NULL",
                params![session, now],
            )
            .map_err(super::map_error)?;
            Ok(())
        })
        .await
    }
}
