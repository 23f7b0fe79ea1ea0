//! Recordings in the store: the sessions bastions recorded, the seal the CA
//! signed over each, the files it covered, and the search index.

use rusqlite::{Connection, OptionalExtension, params};
use shiftkey_wire::{RecordingFile, RecordingMatch};

use super::to_sql_u64;

/// Raised inside the sealing transaction when the session was sealed by a
/// concurrent request between the CA's look and its commit.
pub(crate) const NOT_LIVE: &str = "the session is no longer live";

fn not_live_error() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        Some(NOT_LIVE.to_owned()),
    )
}

/// A bastion session as stored (`sessions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub(crate) id: String,
    pub(crate) identity: String,
    pub(crate) user_serial: u64,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) principal: String,
    pub(crate) target: String,
    pub(crate) client_address: String,
    pub(crate) bastion: String,
    pub(crate) started_at: i64,
    pub(crate) ended_at: Option<i64>,
    pub(crate) exit_status: Option<u32>,
    pub(crate) end_reason: Option<String>,
    /// `live`, `ended`, `sealed` or `verification-failed`.
    pub(crate) status: String,
}

const SESSION_COLUMNS: &str = "id, identity, user_serial, role, incident, principal, target, client_address, \
     bastion, started_at, ended_at, exit_status, end_reason, status";

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        identity: row.get(1)?,
        user_serial: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
        role: row.get(3)?,
        incident: row.get(4)?,
        principal: row.get(5)?,
        target: row.get(6)?,
        client_address: row.get(7)?,
        bastion: row.get(8)?,
        started_at: row.get(9)?,
        ended_at: row.get(10)?,
        exit_status: row
            .get::<_, Option<i64>>(11)?
            .and_then(|s| u32::try_from(s).ok()),
        end_reason: row.get(12)?,
        status: row.get(13)?,
    })
}

pub(crate) fn session(conn: &Connection, id: &str) -> rusqlite::Result<Option<SessionRow>> {
    conn.query_row(
        &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
        [id],
        session_row,
    )
    .optional()
}

/// What `GET /v1/recordings` filters on; every field given must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Exact identity (`user:alice@example.com`).
    pub(crate) identity: Option<String>,
    /// Target host, with or without `:port`.
    pub(crate) host: Option<String>,
    pub(crate) incident: Option<String>,
    pub(crate) role: Option<String>,
    /// Sessions started at or after (unix seconds).
    pub(crate) since: Option<i64>,
    pub(crate) status: Option<String>,
    pub(crate) limit: u32,
}

/// Sessions matching `filter`, newest first.
pub(crate) fn sessions(conn: &Connection, filter: &Filter) -> rusqlite::Result<Vec<SessionRow>> {
    let mut clauses = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut add = |clause: &str, value: rusqlite::types::Value| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    let text = |s: &String| rusqlite::types::Value::Text(s.clone());
    if let Some(identity) = &filter.identity {
        add("identity = ? COLLATE NOCASE", text(identity));
    }
    if let Some(host) = &filter.host {
        // `host` alone, or `host:port` exactly.
        add(
            "(target = ? OR substr(target, 1, length(?) + 1) = ? || ':')",
            text(host),
        );
    }
    if let Some(incident) = &filter.incident {
        add("incident = ?", text(incident));
    }
    if let Some(role) = &filter.role {
        add("role = ?", text(role));
    }
    if let Some(since) = filter.since {
        add("started_at >= ?", rusqlite::types::Value::Integer(since));
    }
    if let Some(status) = &filter.status {
        add("status = ?", text(status));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions {filter_sql} ORDER BY started_at DESC, id LIMIT {}",
        filter.limit
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), session_row)?;
    rows.collect()
}

/// The files of a sealed session, by name.
pub(crate) fn files(conn: &Connection, session: &str) -> rusqlite::Result<Vec<RecordingFile>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, kind, command, bytes, sha256 FROM recording_files WHERE session = ?1",
    )?;
    let rows = stmt.query_map([session], |row| {
        Ok(RecordingFile {
            name: row.get(0)?,
            kind: row.get(1)?,
            command: row.get(2)?,
            bytes: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
            sha256: row.get(4)?,
        })
    })?;
    let mut files = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    files.sort_by(|a, b| crate::recordings::file_order(&a.name, &b.name));
    Ok(files)
}

/// What the CA signed about a sealed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSeal {
    pub(crate) manifest: String,
    pub(crate) digest: String,
    pub(crate) signature: String,
    pub(crate) problems: Vec<String>,
    /// Hex SHA-256 of the claims the seal was made from.
    pub(crate) claims: String,
}

pub(crate) fn stored_seal(
    conn: &Connection,
    session: &str,
) -> rusqlite::Result<Option<StoredSeal>> {
    conn.query_row(
        "SELECT manifest, digest, signature, problems, claims FROM recording_seals WHERE session = ?1",
        [session],
        |row| {
            Ok(StoredSeal {
                manifest: row.get(0)?,
                digest: row.get(1)?,
                signature: row.get(2)?,
                problems: serde_json::from_str(&row.get::<_, String>(3)?).unwrap_or_default(),
                claims: row.get(4)?,
            })
        },
    )
    .optional()
}

/// One searchable line of a recording.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexLine {
    pub(crate) channel: u32,
    /// Seconds from the channel's start.
    pub(crate) seconds: f64,
    pub(crate) line: String,
    /// `input`, `exec` or `sftp`.
    pub(crate) source: &'static str,
}

/// A session's end, as the seal records it: the session row's new state,
/// the signed manifest, the files it covers and the search index.
#[derive(Debug, Clone)]
pub(crate) struct Seal {
    pub(crate) session: String,
    pub(crate) ended_at: i64,
    pub(crate) exit_status: Option<u32>,
    pub(crate) end_reason: String,
    /// `sealed` or `verification-failed`.
    pub(crate) status: &'static str,
    pub(crate) manifest: String,
    pub(crate) digest: String,
    pub(crate) signature: String,
    pub(crate) problems: Vec<String>,
    /// Hex SHA-256 of the claims the seal was made from.
    pub(crate) claims: String,
    pub(crate) sealed_at: i64,
    pub(crate) files: Vec<RecordingFile>,
    pub(crate) lines: Vec<IndexLine>,
}

/// Applies a seal, only to a session that is still live.
pub(crate) fn seal(conn: &Connection, seal: &Seal) -> rusqlite::Result<()> {
    let changed = conn.execute(
        "UPDATE sessions SET ended_at = ?2, exit_status = ?3, end_reason = ?4, status = ?5
         WHERE id = ?1 AND status = 'live'",
        params![
            seal.session,
            seal.ended_at,
            seal.exit_status.map(i64::from),
            seal.end_reason,
            seal.status
        ],
    )?;
    if changed != 1 {
        return Err(not_live_error());
    }
    conn.execute(
        "INSERT INTO recording_seals (session, manifest, digest, signature, problems, claims, sealed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seal.session,
            seal.manifest,
            seal.digest,
            seal.signature,
            serde_json::to_string(&seal.problems).unwrap_or_else(|_| "[]".to_owned()),
            seal.claims,
            seal.sealed_at
        ],
    )?;
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
            to_sql_u64(file.bytes),
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

/// Lines containing `text` (case-insensitive for ASCII), newest sessions
/// first.
pub(crate) fn search(
    conn: &Connection,
    text: &str,
    limit: u32,
) -> rusqlite::Result<Vec<RecordingMatch>> {
    // A plain LIKE pattern uses the trigram index; text with LIKE's own
    // wildcards in it is matched literally with instr() instead (a scan).
    let (condition, needle) = if text.contains(['%', '_']) {
        ("instr(lower(l.line), lower(?1)) > 0", text.to_owned())
    } else {
        ("l.line LIKE ?1", format!("%{text}%"))
    };
    let sql = format!(
        "SELECT l.session, l.channel, l.seconds, l.line, l.source, s.identity, s.target, s.started_at
         FROM recording_lines l JOIN sessions s ON s.id = l.session
         WHERE {condition}
         ORDER BY s.started_at DESC, l.session, l.channel, l.seconds
         LIMIT ?2"
    );
    let mut stmt = conn.prepare(&sql)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("shiftkey.db")).unwrap();
        (dir, conn)
    }

    fn add_session(conn: &Connection, id: &str, target: &str, started_at: i64) {
        crate::store::hosts::StoredSession {
            id: id.into(),
            identity: "user:alice@example.com".into(),
            user_serial: 7,
            session_serial: 8,
            role: "shell".into(),
            incident: Some("INC-1".into()),
            principal: "postgres".into(),
            target: target.into(),
            client_address: "127.0.0.1:5000".into(),
            bastion: "bastion-1".into(),
            started_at,
        }
        .insert(conn)
        .unwrap();
    }

    fn a_seal(session: &str, lines: &[&str]) -> Seal {
        Seal {
            session: session.into(),
            ended_at: 2000,
            exit_status: Some(0),
            end_reason: "client closed".into(),
            status: "sealed",
            manifest: "{}".into(),
            digest: "d".into(),
            signature: "s".into(),
            problems: vec![],
            claims: "c".into(),
            sealed_at: 2001,
            files: vec![RecordingFile {
                name: "0.cast.gz".into(),
                kind: "shell".into(),
                command: None,
                bytes: 10,
                sha256: "ab".into(),
            }],
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, l)| IndexLine {
                    channel: 0,
                    seconds: i as f64 + 0.5,
                    line: (*l).into(),
                    source: "input",
                })
                .collect(),
        }
    }

    #[test]
    fn sealing_is_once_and_search_finds_substrings() {
        let (_dir, conn) = store();
        add_session(&conn, "s_1", "db-1.example.com:22", 1000);
        add_session(&conn, "s_2", "db-10.example.com:22", 1100);
        seal(
            &conn,
            &a_seal("s_1", &["sudo systemctl restart postgres", "ls"]),
        )
        .unwrap();
        let again = seal(&conn, &a_seal("s_1", &[])).unwrap_err();
        assert!(again.to_string().contains(NOT_LIVE), "{again}");
        let row = session(&conn, "s_1").unwrap().unwrap();
        assert_eq!(
            (row.status.as_str(), row.ended_at, row.exit_status),
            ("sealed", Some(2000), Some(0))
        );
        assert_eq!(files(&conn, "s_1").unwrap().len(), 1);
        assert_eq!(stored_seal(&conn, "s_1").unwrap().unwrap().digest, "d");

        let found = search(&conn, "RESTART post", 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, "sudo systemctl restart postgres");
        assert_eq!(found[0].offset_seconds, 0.5);
        assert_eq!(found[0].target, "db-1.example.com:22");
        assert_eq!(
            search(&conn, "ls", 10).unwrap().len(),
            1,
            "short text scans"
        );
        assert!(search(&conn, "50%", 10).unwrap().is_empty());
        assert!(search(&conn, "%", 10).unwrap().is_empty(), "literal %");
    }

    #[test]
    fn filters_match_hosts_with_or_without_port() {
        let (_dir, conn) = store();
        add_session(&conn, "s_1", "db-1.example.com:22", 1000);
        add_session(&conn, "s_2", "db-10.example.com:22", 1100);
        let ids = |filter: Filter| -> Vec<String> {
            let limit = if filter.limit == 0 { 10 } else { filter.limit };
            sessions(&conn, &Filter { limit, ..filter })
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect()
        };
        assert_eq!(ids(Filter::default()), ["s_2", "s_1"]);
        let host = |h: &str| Filter {
            host: Some(h.into()),
            ..Filter::default()
        };
        assert_eq!(ids(host("db-1.example.com")), ["s_1"]);
        assert_eq!(ids(host("db-1.example.com:22")), ["s_1"]);
        assert!(ids(host("db-1")).is_empty());
        assert_eq!(
            ids(Filter {
                since: Some(1050),
                ..Filter::default()
            }),
            ["s_2"]
        );
        assert_eq!(
            ids(Filter {
                identity: Some("user:alice@example.com".into()),
                status: Some("live".into()),
                incident: Some("INC-1".into()),
                role: Some("shell".into()),
                ..Filter::default()
            }),
            ["s_2", "s_1"]
        );
        assert_eq!(
            ids(Filter {
                limit: 1,
                ..Filter::default()
            }),
            ["s_2"]
        );
    }
}
