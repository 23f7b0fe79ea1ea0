//! The audit log in SQLite: the group-commit transaction (each entry in a
//! savepoint, so a conflicting entry leaves its neighbours alone), reads,
//! and the tip follower that notices rows other processes committed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;

use super::{SqliteStore, WriteError, change, from_sql, map_error, to_sql};
use crate::store::{AuditFilter, AuditRow, AuditStore, ChainHead, Entry, Error};

/// How often the tip follower looks for rows committed by other processes
/// (`shiftkey-ca revoke` on the CA host).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

const COLUMNS: &str = "seq, ts, kind, actor, outcome, detail, prev_hash, hash";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: from_sql(r.get(0)?),
        ts: r.get(1)?,
        kind: r.get(2)?,
        actor: r.get(3)?,
        outcome: r.get(4)?,
        detail: r.get(5)?,
        prev_hash: r.get(6)?,
        hash: r.get(7)?,
    })
}

pub(super) fn max_seq(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn.query_row("SELECT MAX(seq) FROM audit", [], |r| r.get(0))?;
    Ok(seq.map_or(0, from_sql))
}

fn head(conn: &Connection) -> rusqlite::Result<ChainHead> {
    let found = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| {
                Ok(ChainHead {
                    seq: from_sql(r.get(0)?),
                    hash: r.get(1)?,
                })
            },
        )
        .optional()?;
    Ok(found.unwrap_or_else(ChainHead::genesis))
}

/// Appends the batch in one IMMEDIATE transaction: the head is read inside
/// it, so the chain stays right whatever was committed before (a failed
/// batch, another process).
fn append_batch(conn: &mut Connection, entries: &[Entry]) -> Vec<Result<u64, Error>> {
    let all = |e: &Error| vec![Err(e.clone()); entries.len()];
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return all(&map_error(e)),
    };
    let mut tip = match head(&tx) {
        Ok(tip) => tip,
        Err(e) => return all(&map_error(e)),
    };
    let mut results = Vec::with_capacity(entries.len());
    for entry in entries {
        match append_one(&mut tx, &tip, entry) {
            Ok(next) => {
                results.push(Ok(next.seq));
                tip = next;
            }
            Err(WriteError::Conflict(c)) => results.push(Err(Error::Conflict(c))),
            // SQLite ends the whole transaction on some errors (I/O, full,
            // busy): then nothing of the batch may be taken as written, and
            // nothing more may run outside a transaction.
            Err(WriteError::Sql(e)) if tx.is_autocommit() => return all(&map_error(e)),
            Err(WriteError::Sql(e)) => {
                tracing::error!(error = %e, kind = %entry.row.kind, "audit entry refused by the store");
                results.push(Err(map_error(e)));
            }
        }
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => all(&map_error(e)),
    }
}

/// One entry in its own savepoint: its change, then its row after `tip`.
/// On any error the savepoint rolls back, leaving the batch as it was.
fn append_one(
    tx: &mut rusqlite::Transaction<'_>,
    tip: &ChainHead,
    entry: &Entry,
) -> Result<ChainHead, WriteError> {
    let sp = tx.savepoint()?;
    if let Some(c) = &entry.change {
        change::apply(&sp, c)?;
    }
    let row = tip.next(
        &entry.row,
        Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
    );
    sp.prepare_cached(
        "INSERT INTO audit (seq, ts, kind, actor, outcome, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(rusqlite::params![
        to_sql(row.seq),
        row.ts,
        row.kind,
        row.actor,
        row.outcome,
        row.detail,
        row.prev_hash,
        row.hash
    ])?;
    sp.commit()?;
    Ok(ChainHead {
        seq: row.seq,
        hash: row.hash,
    })
}

fn rows(conn: &Connection, f: &AuditFilter) -> rusqlite::Result<Vec<AuditRow>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut add = |clause: &str, value: rusqlite::types::Value| {
        values.push(value);
        clauses.push(clause.replace('?', &format!("?{}", values.len())));
    };
    use rusqlite::types::Value;
    if let Some(after) = f.after {
        add("seq > ?", Value::Integer(to_sql(after)));
    }
    if let Some(before) = f.before {
        add("seq < ?", Value::Integer(to_sql(before)));
    }
    if let Some(prefix) = &f.kind_prefix {
        add(
            "(kind = ? OR substr(kind, 1, length(?) + 1) = ? || '.')",
            Value::Text(prefix.clone()),
        );
    }
    if let Some(actor) = &f.actor {
        add("actor = ?", Value::Text(actor.clone()));
    }
    if let Some(from) = &f.from_ts {
        add("ts >= ?", Value::Text(from.clone()));
    }
    if let Some(until) = &f.until_ts {
        add("ts < ?", Value::Text(until.clone()));
    }
    if !f.kinds.is_empty() {
        let first = values.len() + 1;
        let marks: Vec<String> = (first..first + f.kinds.len())
            .map(|n| format!("?{n}"))
            .collect();
        values.extend(f.kinds.iter().cloned().map(Value::Text));
        clauses.push(format!("kind IN ({})", marks.join(", ")));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let order = if f.newest_first { "DESC" } else { "ASC" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit {filter} ORDER BY seq {order} LIMIT {}",
        f.limit
    ))?;
    let rows = stmt.query_map(rusqlite::params_from_iter(values), row)?;
    rows.collect()
}

/// Raises the tip to `seq` (never lowers it).
fn raise(tip: &watch::Sender<u64>, seq: u64) {
    tip.send_if_modified(|current| {
        if seq > *current {
            *current = seq;
            true
        } else {
            false
        }
    });
}

/// Follows the file for rows other processes commit, until the store is
/// dropped. A thread of its own with its own connection: it must keep
/// going while the async workers are busy.
fn follow(path: std::path::PathBuf, tip: Weak<watch::Sender<u64>>) {
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    );
    let conn = match conn {
        Ok(conn) => conn,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow the audit log; events from other processes will not be noticed");
            return;
        }
    };
    let _ = conn.busy_timeout(super::BUSY_TIMEOUT);
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        let Some(tip) = tip.upgrade() else { return };
        match max_seq(&conn) {
            Ok(seq) => raise(&tip, seq),
            Err(e) => tracing::warn!(error = %e, "reading the audit log's tip failed"),
        }
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, entries: Vec<Entry>) -> Vec<Result<u64, Error>> {
        let n = entries.len();
        let writer = match self.writer() {
            Ok(w) => w,
            Err(e) => return vec![Err(e); n],
        };
        let done =
            tokio::task::spawn_blocking(move || append_batch(&mut super::lock(&writer), &entries))
                .await;
        let results = match done {
            Ok(results) => results,
            Err(e) => {
                let e = Error::Unavailable(format!("the store writer stopped: {e}"));
                return vec![Err(e); n];
            }
        };
        if let Some(last) = results.iter().filter_map(|r| r.as_ref().ok()).max() {
            raise(&self.tip, *last);
        }
        results
    }

    async fn audit_rows(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, Error> {
        self.read(move |conn| rows(conn, &filter)).await
    }

    fn audit_tip(&self) -> watch::Receiver<u64> {
        self.tip_follower.get_or_init(|| {
            let path = self.path.clone();
            let tip = Arc::downgrade(&self.tip);
            let started = std::thread::Builder::new()
                .name("audit-follower".into())
                .spawn(move || follow(path, tip));
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start the audit follower");
            }
        });
        self.tip.subscribe()
    }
}
