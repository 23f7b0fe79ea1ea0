//! `shiftkey-ca store migrate`: a single-node CA's SQLite store copied,
//! row for row, into an empty PostgreSQL database, in one transaction.
//!
//! The SQLite file is read in one read transaction (a consistent snapshot);
//! the target must be empty (refused otherwise, nothing written). Audit
//! rows are copied with their sequence numbers, timestamps and hashes as
//! they are, so the chain verifies on both sides; the chain's head and the
//! serial sequence continue after the copied rows. The incident-open
//! trigger is off during the copy (certificates of resolved incidents are
//! history, not new issuances) and back on before the commit.

use std::path::Path;

use bytes::BytesMut;
use rusqlite::OpenFlags;
use rusqlite::types::Value;
use tokio_postgres::types::{ToSql, Type};

use super::OpenError;
use super::postgres::{PostgresStore, Settings};

/// Rows sent to PostgreSQL per pipelined round.
const BATCH: usize = 500;

/// Every table, in an order that satisfies the foreign keys, with the
/// columns both schemas share (PostgreSQL's own identity columns left out).
const TABLES: &[(&str, &[&str])] = &[
    (
        "audit",
        &[
            "seq",
            "ts",
            "kind",
            "actor",
            "outcome",
            "detail",
            "prev_hash",
            "hash",
        ],
    ),
    (
        "incidents",
        &[
            "id",
            "title",
            "severity",
            "status",
            "source",
            "opened_by",
            "opened_at",
            "resolved_by",
            "resolved_at",
            "alert_key",
        ],
    ),
    (
        "certificates",
        &[
            "serial",
            "key_id",
            "identity",
            "role",
            "incident",
            "request_id",
            "principals",
            "valid_after",
            "valid_before",
            "key_fingerprint",
            "issued_at",
            "certificate",
        ],
    ),
    (
        "revocations",
        &["serial", "revoked_at", "revoked_by", "reason"],
    ),
    (
        "access_requests",
        &[
            "id",
            "requester",
            "role",
            "incident",
            "reason",
            "request",
            "status",
            "approvals",
            "approvals_needed",
            "denied_by",
            "decision_reason",
            "serial",
            "created_at",
            "expires_at",
        ],
    ),
    (
        "oncall_overrides",
        &[
            "id",
            "schedule",
            "member",
            "start",
            "\"end\"",
            "reason",
            "created_by",
            "created_at",
        ],
    ),
    (
        "join_tokens",
        &[
            "id",
            "token_hash",
            "name",
            "kind",
            "principals",
            "created_by",
            "created_at",
            "expires_at",
            "used_at",
            "used_by",
        ],
    ),
    (
        "hosts",
        &[
            "name",
            "kind",
            "principals",
            "key_fingerprint",
            "enrolled_at",
            "renewed_at",
        ],
    ),
    (
        "host_certificates",
        &[
            "serial",
            "name",
            "key_fingerprint",
            "valid_after",
            "valid_before",
            "issued_at",
            "certificate",
        ],
    ),
    (
        "ca_keys",
        &[
            "fingerprint",
            "kind",
            "state",
            "public_line",
            "location",
            "created_at",
            "activated_at",
            "retired_at",
            "revoked",
        ],
    ),
    ("host_ca_reports", &["name", "fingerprints", "reported_at"]),
    (
        "sessions",
        &[
            "id",
            "identity",
            "user_serial",
            "session_serial",
            "role",
            "incident",
            "principal",
            "target",
            "client_address",
            "bastion",
            "started_at",
            "ended_at",
            "exit_status",
            "end_reason",
            "status",
            "sealing_since",
            "last_seen",
            "recording_deleted_at",
            "bytes_deleted_at",
        ],
    ),
    (
        "recording_holds",
        &["session", "reason", "held_by", "held_at"],
    ),
    (
        "recording_seals",
        &[
            "session",
            "manifest",
            "digest",
            "signature",
            "problems",
            "claims",
            "sealed_at",
        ],
    ),
    (
        "recording_files",
        &["session", "name", "kind", "command", "bytes", "sha256"],
    ),
    (
        "recording_lines",
        &["line", "session", "channel", "seconds", "source"],
    ),
    (
        "identity_locks",
        &["identity", "locked_by", "locked_at", "reason"],
    ),
    ("recording_uploads", &["session", "name", "length"]),
    (
        "recording_reads",
        &["reviewer", "purpose", "session", "file", "audited_at"],
    ),
    (
        "ui_sessions",
        &[
            "id_hash",
            "email",
            "groups",
            "csrf",
            "created_at",
            "expires_at",
            "last_seen",
            "local_uid",
        ],
    ),
    (
        "ui_links",
        &[
            "token_hash",
            "local_user",
            "local_uid",
            "created_at",
            "expires_at",
            "used_at",
        ],
    ),
    ("webhook_events", &["source", "id", "seen_at"]),
    ("notification_claims", &["seq", "claimed_by", "claimed_at"]),
];

/// Why a copy did not happen. Nothing was written to the target.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{path}: {message}")]
    Source { path: String, message: String },
    #[error(
        "{database} already holds a Shiftkey store ({rows} rows in {table})\nhint: migrate into an empty database; nothing was written"
    )]
    NotEmpty {
        database: String,
        table: String,
        rows: i64,
    },
    #[error(
        "{database}: copying {table} failed: {message}\nhint: nothing was written; fix the cause and run the migration again"
    )]
    Target {
        database: String,
        table: String,
        message: String,
    },
}

/// How far the copy is, for the status line.
#[derive(Debug, Clone)]
pub(crate) struct Progress<'a> {
    pub(crate) table: &'a str,
    pub(crate) copied: u64,
    pub(crate) total: u64,
}

/// What was copied, table by table.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Copied {
    pub(crate) tables: Vec<(String, u64)>,
}

fn source_err(path: &Path, e: impl std::fmt::Display) -> CopyError {
    CopyError::Source {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A SQLite value as a PostgreSQL parameter of type `ty`. Lists, JSON text
/// in SQLite, become `text[]`.
fn param(value: Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    let int = *ty == Type::INT8;
    let float = *ty == Type::FLOAT8;
    let list = *ty == Type::TEXT_ARRAY;
    let text = *ty == Type::TEXT;
    Ok(match value {
        Value::Null if int => Box::new(None::<i64>),
        Value::Null if float => Box::new(None::<f64>),
        Value::Null if list => Box::new(None::<Vec<String>>),
        Value::Null if text => Box::new(None::<String>),
        Value::Integer(i) if int => Box::new(i),
        // Seconds into a recording are REAL, unless they were whole.
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(i) if float => Box::new(i as f64),
        Value::Real(f) if float => Box::new(f),
        Value::Text(t) if list => Box::new(
            serde_json::from_str::<Vec<String>>(&t)
                .map_err(|e| format!("{t:?} is not a JSON list: {e}"))?,
        ),
        Value::Text(t) if text => Box::new(t),
        value => return Err(format!("cannot copy {value:?} into a {ty} column")),
    })
}

/// Copies the SQLite store at `source` into the empty database `target`
/// names (creating its schema first).
pub(crate) async fn sqlite_to_postgres(
    source: &Path,
    target: &Settings,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<Copied, CopyError> {
    // The source, as a store: checks its schema is known, migrates nothing.
    drop(super::open_sqlite(source, super::Access::ReadOnly)?);
    let conn = rusqlite::Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| source_err(source, e))?;
    // Every table read from one snapshot.
    conn.execute_batch("BEGIN")
        .map_err(|e| source_err(source, e))?;
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| source_err(source, e))?;
    if version < super::sqlite::schema_version_known() {
        return Err(source_err(
            source,
            format!(
                "the store is at schema version {version}; start this shiftkey-ca on it once (it upgrades the file), then migrate"
            ),
        ));
    }

    let store = PostgresStore::open(target, super::Access::ReadWrite).await?;
    let database = target.display().to_owned();
    let target_err = |table: &str, message: String| CopyError::Target {
        database: database.clone(),
        table: table.to_owned(),
        message,
    };
    let mut client = store
        .dedicated()
        .await
        .map_err(|e| target_err("(connect)", e.to_string()))?;
    for (table, _) in TABLES {
        let rows: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .map_err(|e| target_err(table, e.to_string()))?
            .get(0);
        if rows > 0 {
            return Err(CopyError::NotEmpty {
                database,
                table: (*table).to_owned(),
                rows,
            });
        }
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| target_err("(begin)", e.to_string()))?;
    tx.batch_execute("ALTER TABLE certificates DISABLE TRIGGER certificates_incident_open")
        .await
        .map_err(|e| target_err("certificates", e.to_string()))?;
    let mut copied = Vec::new();
    for (table, columns) in TABLES {
        let list = columns.join(", ");
        let total: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(|e| source_err(source, format!("{table}: {e}")))?;
        let total = u64::try_from(total).unwrap_or(0);
        let marks: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
        let insert = tx
            .prepare(&format!(
                "INSERT INTO {table} ({list}) VALUES ({})",
                marks.join(", ")
            ))
            .await
            .map_err(|e| target_err(table, e.to_string()))?;
        let mut statement = conn
            .prepare(&format!("SELECT {list} FROM {table}"))
            .map_err(|e| source_err(source, format!("{table}: {e}")))?;
        let mut rows = statement
            .query([])
            .map_err(|e| source_err(source, format!("{table}: {e}")))?;
        let mut done = 0u64;
        progress(Progress {
            table,
            copied: 0,
            total,
        });
        loop {
            let mut batch: Vec<Vec<Box<dyn ToSql + Sync + Send>>> = Vec::with_capacity(BATCH);
            while batch.len() < BATCH {
                let Some(row) = rows
                    .next()
                    .map_err(|e| source_err(source, format!("{table}: {e}")))?
                else {
                    break;
                };
                let mut values = Vec::with_capacity(columns.len());
                for (i, ty) in insert.params().iter().enumerate() {
                    let value: Value = row
                        .get(i)
                        .map_err(|e| source_err(source, format!("{table}: {e}")))?;
                    values.push(param(value, ty).map_err(|e| target_err(table, e))?);
                }
                batch.push(values);
            }
            if batch.is_empty() {
                break;
            }
            // Every value encodes before any is sent (see audit.rs).
            let mut buf = BytesMut::new();
            for values in &batch {
                for (value, ty) in values.iter().zip(insert.params()) {
                    value
                        .to_sql_checked(ty, &mut buf)
                        .map_err(|e| target_err(table, e.to_string()))?;
                    buf.clear();
                }
            }
            let sent = futures_util::future::try_join_all(batch.iter().map(|values| {
                let refs: Vec<&(dyn ToSql + Sync)> = values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                let insert = &insert;
                let tx = &tx;
                async move { tx.execute(insert, &refs).await }
            }))
            .await;
            sent.map_err(|e| target_err(table, describe(&e)))?;
            done += u64::try_from(batch.len()).unwrap_or(0);
            progress(Progress {
                table,
                copied: done,
                total,
            });
        }
        copied.push(((*table).to_owned(), done));
    }
    // What continues after the copied rows.
    let serial_last: i64 = conn
        .query_row(
            "SELECT MAX(COALESCE((SELECT last FROM serial_sequence WHERE id = 1), 0),
                        COALESCE((SELECT MAX(serial) FROM certificates), 0),
                        COALESCE((SELECT MAX(serial) FROM host_certificates), 0))",
            [],
            |r| r.get(0),
        )
        .map_err(|e| source_err(source, e))?;
    tx.batch_execute(&format!(
        "ALTER TABLE certificates ENABLE TRIGGER certificates_incident_open;
         UPDATE audit_head SET (seq, hash) =
             (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) WHERE EXISTS (SELECT 1 FROM audit);
         SELECT setval('serial_blocks', {serial_last}, true) WHERE {serial_last} > 0;"
    ))
    .await
    .map_err(|e| target_err("(sequences)", describe(&e)))?;
    tx.commit()
        .await
        .map_err(|e| target_err("(commit)", describe(&e)))?;
    Ok(Copied { tables: copied })
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}

/// Rows in each table of the target, for the comparison after a copy.
pub(crate) async fn count_rows(target: &Settings) -> Result<Vec<(String, u64)>, CopyError> {
    let store = PostgresStore::open(target, super::Access::ReadOnly).await?;
    let client = store.dedicated().await.map_err(|e| CopyError::Target {
        database: target.display().to_owned(),
        table: "(connect)".into(),
        message: e.to_string(),
    })?;
    let mut counts = Vec::new();
    for (table, _) in TABLES {
        let rows: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .await
            .map_err(|e| CopyError::Target {
                database: target.display().to_owned(),
                table: (*table).to_owned(),
                message: describe(&e),
            })?
            .get(0);
        counts.push(((*table).to_owned(), u64::try_from(rows).unwrap_or(0)));
    }
    Ok(counts)
}
