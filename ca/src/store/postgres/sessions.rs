//! Sessions, recording upload state, seals, files and the search index in
//! PostgreSQL.

use async_trait::async_trait;
use shiftkey_wire::{RecordingFile, RecordingMatch};

use super::change::{Param, Stmt};
use super::conflict::{code, map_error};
use super::{PostgresStore, from_sql, lifecycle, to_sql};
use crate::store::{
    Conflict, Error, RecordingRead, Seal, Session, SessionFilter, SessionStatus, SessionStore,
    StoredSeal, Upload,
};

/// A session's columns, from [`FROM`], in the order [`session_row`] reads
/// them.
pub(super) const COLUMNS: &str = "s.id, s.identity, s.user_serial, s.session_serial, s.role, \
     s.incident, s.principal, s.target, s.client_address, s.bastion, s.started_at, s.ended_at, \
     s.exit_status, s.end_reason, s.status, s.last_seen, s.recording_deleted_at, h.reason";

/// The tables [`COLUMNS`] come from: a session and its legal hold, if any.
pub(super) const FROM: &str = "sessions s LEFT JOIN recording_holds h ON h.session = s.id";

pub(super) fn session_row(r: &tokio_postgres::Row) -> Session {
    let status: String = r.get(14);
    Session {
        id: r.get(0),
        identity: r.get(1),
        user_serial: from_sql(r.get(2)),
        session_serial: from_sql(r.get(3)),
        role: r.get(4),
        incident: r.get(5),
        principal: r.get(6),
        target: r.get(7),
        client_address: r.get(8),
        bastion: r.get(9),
        started_at: r.get(10),
        ended_at: r.get(11),
        exit_status: r
            .get::<_, Option<i64>>(12)
            .and_then(|s| u32::try_from(s).ok()),
        end_reason: r.get(13),
        // The table's CHECK allows only these.
        status: SessionStatus::parse(&status).unwrap_or(SessionStatus::Ended),
        last_seen: r.get(15),
        recording_deleted_at: r.get(16),
        held: r.get(17),
    }
}

/// Files in channel order (`2.cast.gz` before `10.cast.gz`).
fn channel_order(a: &str, b: &str) -> std::cmp::Ordering {
    let channel = |name: &str| -> Option<u32> { name.split('.').next()?.parse().ok() };
    (channel(a), a).cmp(&(channel(b), b))
}

pub(super) fn insert(s: &Session) -> Stmt {
    Stmt::new(
        "INSERT INTO sessions (id, identity, user_serial, session_serial, role, incident, principal, target,
            client_address, bastion, started_at, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        vec![
            Box::new(s.id.clone()),
            Box::new(s.identity.clone()),
            Box::new(to_sql(s.user_serial)),
            Box::new(to_sql(s.session_serial)),
            Box::new(s.role.clone()),
            Box::new(s.incident.clone()),
            Box::new(s.principal.clone()),
            Box::new(s.target.clone()),
            Box::new(s.client_address.clone()),
            Box::new(s.bastion.clone()),
            Box::new(s.started_at),
            Box::new(s.status.as_str()),
        ],
    )
}

/// Applies a seal, only to a session that is still live (`SessionNotLive`).
pub(super) fn seal(seal: &Seal) -> Vec<Stmt> {
    let mut statements = vec![
        Stmt::new(
            "WITH sealed AS (
                 UPDATE sessions SET ended_at = $2, exit_status = $3, end_reason = $4, status = $5
                 WHERE id = $1 AND status = 'live' RETURNING 1)
             SELECT shiftkey_expect_one((SELECT count(*) FROM sealed), $6)",
            vec![
                Box::new(seal.session.clone()),
                Box::new(seal.ended_at),
                Box::new(seal.exit_status.map(i64::from)),
                Box::new(seal.end_reason.clone()),
                Box::new(seal.status.as_str()),
                Box::new(code(Conflict::SessionNotLive)),
            ],
        ),
        Stmt::new(
            "INSERT INTO recording_seals (session, manifest, digest, signature, problems, claims, sealed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vec![
                Box::new(seal.session.clone()),
                Box::new(seal.manifest.clone()),
                Box::new(seal.digest.clone()),
                Box::new(seal.signature.clone()),
                Box::new(seal.problems.clone()),
                Box::new(seal.claims.clone()),
                Box::new(seal.sealed_at),
            ],
        ),
    ];
    if !seal.files.is_empty() {
        let files = &seal.files;
        statements.push(Stmt::new(
            "INSERT INTO recording_files (session, name, kind, command, bytes, sha256)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])",
            vec![
                Box::new(seal.session.clone()),
                Box::new(files.iter().map(|f| f.name.clone()).collect::<Vec<_>>()),
                Box::new(files.iter().map(|f| f.kind.clone()).collect::<Vec<_>>()),
                Box::new(files.iter().map(|f| f.command.clone()).collect::<Vec<_>>()),
                Box::new(files.iter().map(|f| to_sql(f.bytes)).collect::<Vec<_>>()),
                Box::new(files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>()),
            ],
        ));
    }
    if !seal.lines.is_empty() {
        let lines = &seal.lines;
        statements.push(Stmt::new(
            "INSERT INTO recording_lines (line, session, channel, seconds, source)
             SELECT l, $1, c, s, src FROM unnest($2::text[], $3::bigint[], $4::float8[], $5::text[])
                 AS t(l, c, s, src)",
            vec![
                Box::new(seal.session.clone()),
                Box::new(lines.iter().map(|l| l.line.clone()).collect::<Vec<_>>()),
                Box::new(
                    lines
                        .iter()
                        .map(|l| i64::from(l.channel))
                        .collect::<Vec<_>>(),
                ),
                Box::new(lines.iter().map(|l| l.seconds).collect::<Vec<_>>()),
                Box::new(lines.iter().map(|l| l.source).collect::<Vec<_>>()),
            ],
        ));
    }
    statements
}

pub(super) fn note_read(read: &RecordingRead) -> Stmt {
    Stmt::new(
        "INSERT INTO recording_reads (reviewer, purpose, session, file, audited_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (reviewer, purpose, session, file) DO UPDATE SET audited_at = excluded.audited_at",
        vec![
            Box::new(read.reviewer.clone()),
            Box::new(read.purpose.clone()),
            Box::new(read.session.clone()),
            Box::new(read.file.clone()),
            Box::new(read.audited_at),
        ],
    )
}

pub(super) fn uploads_of(rows: &[tokio_postgres::Row]) -> Vec<Upload> {
    let mut uploads: Vec<Upload> = rows
        .iter()
        .map(|r| Upload {
            name: r.get(0),
            length: from_sql(r.get(1)),
        })
        .collect();
    uploads.sort_by(|a, b| channel_order(&a.name, &b.name));
    uploads
}

/// `LIKE`'s own characters in `text`, escaped, inside `%…%`.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Runs `statements` in one transaction of their own: the first conflict
/// or error rolls all of them back.
pub(super) async fn transaction(
    store: &PostgresStore,
    statements: Vec<Stmt>,
) -> Result<Vec<tokio_postgres::Row>, Error> {
    let mut client = store.writer().await?;
    let tx = client.transaction().await.map_err(|e| map_error(&e))?;
    let mut last = Vec::new();
    for stmt in &statements {
        let prepared = tx
            .prepare_cached(stmt.sql)
            .await
            .map_err(|e| map_error(&e))?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = stmt
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        last = tx
            .query(&prepared, &params)
            .await
            .map_err(|e| map_error(&e))?;
    }
    tx.commit().await.map_err(|e| map_error(&e))?;
    Ok(last)
}

/// The session must be live (`SessionNotLive`); its row is locked, so a
/// seal starting meanwhile (another replica) waits for this transaction.
fn lock_live(session: &str) -> Stmt {
    Stmt::new(
        "WITH s AS (SELECT status FROM sessions WHERE id = $1 FOR UPDATE)
         SELECT shiftkey_expect_one((SELECT count(*) FROM s WHERE status = 'live'), $2)",
        vec![
            Box::new(session.to_owned()),
            Box::new(code(Conflict::SessionNotLive)),
        ],
    )
}

/// The session's seal must not have started (`SessionSealing`).
fn not_sealing(session: &str) -> Stmt {
    Stmt::new(
        "SELECT shiftkey_expect_one(
             (SELECT count(*) FROM sessions WHERE id = $1 AND sealing_since IS NULL), $2)",
        vec![
            Box::new(session.to_owned()),
            Box::new(code(Conflict::SessionSealing)),
        ],
    )
}

/// All the session's files together stay within `limit` bytes once this
/// one is `to` long (`SessionTooLarge`). Run after [`lock_live`], so the
/// session's other uploads cannot move meanwhile.
fn within_limit(session: &str, name: &str, to: u64, limit: u64) -> Stmt {
    Stmt::new(
        "SELECT shiftkey_expect_one(
             (SELECT CASE WHEN COALESCE(SUM(length), 0) + $3::bigint <= $4::bigint THEN 1 ELSE 0 END
              FROM recording_uploads WHERE session = $1 AND name <> $2)::bigint, $5)",
        vec![
            Box::new(session.to_owned()),
            Box::new(name.to_owned()),
            Box::new(to_sql(to)),
            Box::new(to_sql(limit)),
            Box::new(code(Conflict::SessionTooLarge)),
        ],
    )
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn session(&self, id: &str) -> Result<Option<Session>, Error> {
        let row = self
            .query_opt(
                &format!("SELECT {COLUMNS} FROM {FROM} WHERE s.id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(session_row))
    }

    async fn sessions(&self, filter: SessionFilter) -> Result<Vec<Session>, Error> {
        let mut clauses = Vec::new();
        let mut values: Vec<Param> = Vec::new();
        let mut add = |clause: &str, value: Param| {
            values.push(value);
            clauses.push(clause.replace('?', &format!("${}", values.len())));
        };
        if let Some(identity) = &filter.identity {
            // ASCII case-insensitive, as SQLite's NOCASE.
            add("lower(s.identity) = lower(?)", Box::new(identity.clone()));
        }
        if let Some(host) = &filter.host {
            // `host` alone, or `host:port` exactly.
            add(
                "(s.target = ? OR left(s.target, length(?) + 1) = ? || ':')",
                Box::new(host.clone()),
            );
        }
        if let Some(incident) = &filter.incident {
            add("s.incident = ?", Box::new(incident.clone()));
        }
        if let Some(role) = &filter.role {
            add("s.role = ?", Box::new(role.clone()));
        }
        if let Some(since) = filter.since {
            add("s.started_at >= ?", Box::new(since));
        }
        if let Some(status) = filter.status {
            add("s.status = ?", Box::new(status.as_str()));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = self
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM {FROM} {where_sql} ORDER BY s.started_at DESC, s.id LIMIT {}",
                    filter.limit
                ),
                &params,
            )
            .await?;
        Ok(rows.iter().map(session_row).collect())
    }

    async fn recording_files(&self, session: &str) -> Result<Vec<RecordingFile>, Error> {
        let rows = self
            .query(
                "SELECT name, kind, command, bytes, sha256 FROM recording_files WHERE session = $1",
                &[&session],
            )
            .await?;
        let mut files: Vec<RecordingFile> = rows
            .iter()
            .map(|r| RecordingFile {
                name: r.get(0),
                kind: r.get(1),
                command: r.get(2),
                bytes: from_sql(r.get(3)),
                sha256: r.get(4),
            })
            .collect();
        files.sort_by(|a, b| channel_order(&a.name, &b.name));
        Ok(files)
    }

    async fn stored_seal(&self, session: &str) -> Result<Option<StoredSeal>, Error> {
        let row = self
            .query_opt(
                "SELECT manifest, digest, signature, problems, claims FROM recording_seals WHERE session = $1",
                &[&session],
            )
            .await?;
        Ok(row.map(|r| StoredSeal {
            manifest: r.get(0),
            digest: r.get(1),
            signature: r.get(2),
            problems: r.get(3),
            claims: r.get(4),
        }))
    }

    async fn search(&self, text: &str, limit: u32) -> Result<Vec<RecordingMatch>, Error> {
        let rows = self
            .query(
                "SELECT l.session, l.channel, l.seconds, l.line, l.source, s.identity, s.target, s.started_at
                 FROM recording_lines l JOIN sessions s ON s.id = l.session
                 WHERE l.line ILIKE $1
                 ORDER BY s.started_at DESC, l.session, l.channel, l.seconds
                 LIMIT $2",
                &[&contains_pattern(text), &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| RecordingMatch {
                session_id: r.get(0),
                channel: u32::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                offset_seconds: r.get(2),
                line: r.get(3),
                source: r.get(4),
                identity: r.get(5),
                target: r.get(6),
                started_at: r.get(7),
            })
            .collect())
    }

    async fn uploads(&self, session: &str) -> Result<Vec<Upload>, Error> {
        let rows = self
            .query(
                "SELECT name, length FROM recording_uploads WHERE session = $1",
                &[&session],
            )
            .await?;
        Ok(uploads_of(&rows))
    }

    async fn commit_upload(
        &self,
        session: &str,
        name: &str,
        from: u64,
        to: u64,
        limit: u64,
    ) -> Result<(), Error> {
        let moved: Param = Box::new(code(Conflict::UploadMoved));
        let change = if from == 0 {
            Stmt::new(
                "WITH added AS (
                     INSERT INTO recording_uploads (session, name, length) VALUES ($1, $2, $3)
                     ON CONFLICT (session, name) DO NOTHING RETURNING 1)
                 SELECT shiftkey_expect_one((SELECT count(*) FROM added), $4)",
                vec![
                    Box::new(session.to_owned()),
                    Box::new(name.to_owned()),
                    Box::new(to_sql(to)),
                    moved,
                ],
            )
        } else {
            Stmt::new(
                "WITH moved AS (
                     UPDATE recording_uploads SET length = $4
                     WHERE session = $1 AND name = $2 AND length = $3 RETURNING 1)
                 SELECT shiftkey_expect_one((SELECT count(*) FROM moved), $5)",
                vec![
                    Box::new(session.to_owned()),
                    Box::new(name.to_owned()),
                    Box::new(to_sql(from)),
                    Box::new(to_sql(to)),
                    moved,
                ],
            )
        };
        transaction(
            self,
            vec![
                lock_live(session),
                not_sealing(session),
                within_limit(session, name, to, limit),
                change,
            ],
        )
        .await?;
        Ok(())
    }

    async fn begin_seal(&self, session: &str, now: i64) -> Result<Vec<Upload>, Error> {
        let rows = transaction(
            self,
            vec![
                lock_live(session),
                Stmt::new(
                    "UPDATE sessions SET sealing_since = COALESCE(sealing_since, $2) WHERE id = $1",
                    vec![Box::new(session.to_owned()), Box::new(now)],
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

    async fn abort_seal(&self, session: &str) -> Result<(), Error> {
        self.execute(
            "UPDATE sessions SET sealing_since = NULL WHERE id = $1 AND status = 'live'",
            &[&session],
        )
        .await?;
        Ok(())
    }

    async fn read_audited_at(&self, read: &RecordingRead) -> Result<Option<i64>, Error> {
        let row = self
            .query_opt(
                "SELECT audited_at FROM recording_reads
                 WHERE reviewer = $1 AND purpose = $2 AND session = $3 AND file = $4",
                &[&read.reviewer, &read.purpose, &read.session, &read.file],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn heard_from(
        &self,
        bastion: &str,
        sessions: &[String],
        now: i64,
    ) -> Result<Vec<String>, Error> {
        lifecycle::heard_from(self, bastion, sessions, now).await
    }

    async fn silent_sessions(&self, cutoff: i64, limit: u32) -> Result<Vec<Session>, Error> {
        lifecycle::silent_sessions(self, cutoff, limit).await
    }

    async fn claim_lost(&self, session: &str, cutoff: i64, now: i64) -> Result<Vec<Upload>, Error> {
        lifecycle::claim_lost(self, session, cutoff, now).await
    }

    async fn expired_recordings(&self, cutoff: i64, limit: u32) -> Result<Vec<Session>, Error> {
        lifecycle::expired_recordings(self, cutoff, limit).await
    }

    async fn recordings_to_purge(&self, limit: u32) -> Result<Vec<String>, Error> {
        lifecycle::recordings_to_purge(self, limit).await
    }

    async fn note_bytes_deleted(&self, session: &str, now: i64) -> Result<(), Error> {
        lifecycle::note_bytes_deleted(self, session, now).await
    }
}
