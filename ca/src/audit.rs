//! The audit log: every decision, one row, hash-chained, durable before the
//! answer leaves the CA.
//!
//! One writer thread owns the database connection. Callers hand it an event
//! (and, for an issuance or a revocation, the store change it records) and
//! wait for the commit. The
//! writer takes whatever has queued up while the previous commit was being
//! fsynced and commits it as one transaction (group commit), so durability
//! costs one fsync per batch rather than per request.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and every field
//! of the row, length-prefixed. `verify` walks the chain and names the first
//! row where it breaks (edited, deleted, reordered or inserted rows).
//!
//! Never: answer a caller before its row is committed; keep going after a
//! failed commit as if it had succeeded.

use std::sync::mpsc;
use std::thread;

use chrono::{SecondsFormat, Utc};
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::store::Change;

/// The hash the first row chains from.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";
/// Upper bound on rows in one group commit; keeps a transaction short.
const MAX_BATCH: usize = 1024;
/// Requests that may wait for the writer before callers are turned away.
const QUEUE_DEPTH: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("the audit log cannot be written: {0}")]
    Write(String),
    #[error("the audit writer has stopped")]
    WriterGone,
    #[error("the audit writer is overloaded")]
    Overloaded,
    #[error("cannot read the audit log: {0}")]
    Read(#[from] rusqlite::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Allow,
    Deny,
    Info,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Info => "info",
            Outcome::Error => "error",
        }
    }
}

/// One decision or event to record.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// e.g. `certificate.issued`, `certificate.denied`, `policy.reloaded`.
    pub(crate) kind: &'static str,
    /// Who asked: `user:alice@example.com`, `local:root`, `anonymous`, `system`.
    pub(crate) actor: String,
    pub(crate) outcome: Outcome,
    /// Structured detail; must never hold a secret (tokens, keys).
    pub(crate) detail: serde_json::Value,
}

struct Job {
    event: Event,
    change: Option<Change>,
    reply: oneshot::Sender<Result<u64, Error>>,
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    tx: mpsc::SyncSender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("kind", &self.event.kind)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer thread on `conn` (already migrated).
    pub(crate) fn start(conn: Connection) -> Result<Self, Error> {
        // Fail at start, not at the first request, if the table is unreadable.
        Head::read(&conn)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|_| Error::WriterGone)?;
        Ok(Self { tx })
    }

    /// Records `event`; returns its sequence number once it is durable.
    pub(crate) async fn record(&self, event: Event) -> Result<u64, Error> {
        self.submit(event, None).await
    }

    /// Records a change to the store and the audit row that says why: both
    /// commit together or neither does.
    pub(crate) async fn record_change(&self, event: Event, change: Change) -> Result<u64, Error> {
        self.submit(event, Some(change)).await
    }

    async fn submit(&self, event: Event, change: Option<Change>) -> Result<u64, Error> {
        let (reply, done) = oneshot::channel();
        self.tx
            .try_send(Job {
                event,
                change,
                reply,
            })
            .map_err(|e| match e {
                mpsc::TrySendError::Full(_) => Error::Overloaded,
                mpsc::TrySendError::Disconnected(_) => Error::WriterGone,
            })?;
        done.await.map_err(|_| Error::WriterGone)?
    }
}

/// The chain's tip as the writer knows it.
#[derive(Debug, Clone)]
struct Head {
    seq: u64,
    hash: String,
}

impl Head {
    fn read(conn: &Connection) -> rusqlite::Result<Self> {
        let row: Option<(i64, String)> = conn
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        Ok(match row {
            Some((seq, hash)) => Head {
                seq: u64::try_from(seq).unwrap_or(0),
                hash,
            },
            None => Head {
                seq: 0,
                hash: GENESIS_HASH.to_owned(),
            },
        })
    }
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match write_batch(&mut conn, &batch) {
            Ok(seqs) => {
                for (job, seq) in batch.into_iter().zip(seqs) {
                    let _ = job.reply.send(Ok(seq));
                }
            }
            Err(batch_error) if batch.len() == 1 || is_lock_error(&batch_error) => {
                // The database itself refused (locked, full, read-only):
                // every row in the batch fails; none is retried.
                tracing::error!(error = %batch_error, size = batch.len(), "audit commit failed; the requests are refused");
                let message = batch_error.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(Error::Write(message.clone())));
                }
            }
            Err(batch_error) => {
                // One bad row must not fail its neighbours: retry each alone.
                tracing::error!(error = %batch_error, size = batch.len(), "audit batch commit failed; retrying rows one by one");
                for job in batch {
                    let reply = match write_batch(&mut conn, std::slice::from_ref(&job)) {
                        Ok(seqs) => seqs.first().copied().ok_or(Error::WriterGone),
                        Err(e) => {
                            tracing::error!(error = %e, kind = job.event.kind, "audit row could not be committed; the request is refused");
                            Err(Error::Write(e.to_string()))
                        }
                    };
                    let _ = job.reply.send(reply);
                }
            }
        }
    }
}

fn is_lock_error(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        )
    )
}

/// Appends `batch` in one transaction. The chain's tip is read inside the
/// same write transaction, so the chain stays right whatever happened before
/// (a failed batch, another process that wrote to the file).
fn write_batch(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<u64>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut tip = Head::read(&tx)?;
    let mut seqs = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO audit (seq, ts, kind, actor, outcome, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for job in batch {
            if let Some(change) = &job.change {
                change.apply(&tx)?;
            }
            let row = Row {
                seq: tip.seq + 1,
                ts: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
                kind: job.event.kind.to_owned(),
                actor: job.event.actor.clone(),
                outcome: job.event.outcome.as_str().to_owned(),
                detail: job.event.detail.to_string(),
                prev_hash: tip.hash.clone(),
                hash: String::new(),
            };
            let hash = row.compute_hash();
            insert.execute(rusqlite::params![
                i64::try_from(row.seq).unwrap_or(i64::MAX),
                row.ts,
                row.kind,
                row.actor,
                row.outcome,
                row.detail,
                row.prev_hash,
                hash
            ])?;
            seqs.push(row.seq);
            tip = Head { seq: row.seq, hash };
        }
    }
    tx.commit()?;
    Ok(seqs)
}

/// One audit row as stored and exported.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) seq: u64,
    pub(crate) ts: String,
    pub(crate) kind: String,
    pub(crate) actor: String,
    pub(crate) outcome: String,
    /// JSON text exactly as stored (the hash covers these bytes).
    pub(crate) detail: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

impl Row {
    fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        for field in [
            self.prev_hash.as_bytes(),
            self.seq.to_string().as_bytes(),
            self.ts.as_bytes(),
            self.kind.as_bytes(),
            self.actor.as_bytes(),
            self.outcome.as_bytes(),
            self.detail.as_bytes(),
        ] {
            // Length prefixes keep field boundaries unambiguous.
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        hex::encode(h.finalize())
    }
}

/// Reads rows in `seq` order, `since` exclusive.
pub(crate) fn read_rows(
    conn: &Connection,
    since: u64,
    mut each: impl FnMut(Row) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM audit WHERE seq > ?1 ORDER BY seq"
    ))?;
    let mut rows = stmt.query([i64::try_from(since).unwrap_or(i64::MAX)])?;
    while let Some(r) = rows.next()? {
        each(Row::from_sql(r)?)?;
    }
    Ok(())
}

/// The columns `Row::from_sql` reads, in its order.
pub(crate) const ROW_COLUMNS: &str = "seq, ts, kind, actor, outcome, detail, prev_hash, hash";

impl Row {
    /// A row selected with [`ROW_COLUMNS`].
    pub(crate) fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let seq: i64 = r.get(0)?;
        Ok(Row {
            seq: u64::try_from(seq).unwrap_or(0),
            ts: r.get(1)?,
            kind: r.get(2)?,
            actor: r.get(3)?,
            outcome: r.get(4)?,
            detail: r.get(5)?,
            prev_hash: r.get(6)?,
            hash: r.get(7)?,
        })
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verification {
    pub(crate) rows: u64,
    pub(crate) head_seq: u64,
    pub(crate) head_hash: String,
    /// Each break in the chain, naming the row.
    pub(crate) problems: Vec<String>,
}

/// Walks the whole chain. A truncated tail cannot be told from a shorter log
/// by the log alone: compare `head_seq`/`head_hash` with a copy kept elsewhere
/// (docs/security.md).
///
/// `anchor` is a `(seq, hash)` pair recorded earlier (from a previous
/// verify's head): the chain must still hold that row with that hash.
pub(crate) fn verify(
    conn: &Connection,
    anchor: Option<(u64, &str)>,
) -> Result<Verification, Error> {
    let mut expected_seq = 1u64;
    let mut anchor_seen = false;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut problems = Vec::new();
    let mut count = 0u64;
    read_rows(conn, 0, |row| {
        count += 1;
        if row.seq != expected_seq {
            if row.seq > expected_seq {
                problems.push(format!(
                    "row {}: rows {}..={} are missing (deleted?)",
                    row.seq,
                    expected_seq,
                    row.seq - 1
                ));
            } else {
                problems.push(format!("row {}: sequence number out of order", row.seq));
            }
        }
        if row.prev_hash != prev_hash {
            problems.push(format!(
                "row {}: prev_hash does not match the hash of the row before it (a row before it was edited, deleted or reordered)",
                row.seq
            ));
        }
        if row.compute_hash() != row.hash {
            problems.push(format!(
                "row {}: contents do not match its hash (edited)",
                row.seq
            ));
        }
        if let Some((seq, hash)) = anchor
            && row.seq == seq
        {
            anchor_seen = true;
            if row.hash != hash {
                problems.push(format!(
                    "row {seq}: hash differs from the anchored head {hash} (rewritten)"
                ));
            }
        }
        expected_seq = row.seq + 1;
        prev_hash = row.hash;
        Ok(())
    })?;
    if count == 0 {
        problems.push(
            "the audit log is empty (a CA's log starts with keys.created at init)".to_owned(),
        );
    }
    if let Some((seq, _)) = anchor
        && !anchor_seen
    {
        problems.push(format!(
            "row {seq}: the anchored head is missing (the log was truncated)"
        ));
    }
    Ok(Verification {
        rows: count,
        head_seq: expected_seq - 1,
        head_hash: prev_hash,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            kind: "test.event",
            actor: "system".into(),
            outcome: Outcome::Info,
            detail: serde_json::json!({ "n": n }),
        }
    }

    async fn log_with(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::store::db_path(dir.path());
        let log = AuditLog::start(crate::store::open(&path).unwrap()).unwrap();
        let mut handles = Vec::new();
        for i in 0..n {
            let log = log.clone();
            handles.push(tokio::spawn(
                async move { log.record(event(i)).await.unwrap() },
            ));
        }
        let mut seqs = Vec::new();
        for h in handles {
            seqs.push(h.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=n).collect::<Vec<_>>(),
            "concurrent records get unique, gapless sequence numbers"
        );
        (dir, path)
    }

    fn tamper(path: &std::path::Path, sql: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clean_chain_verifies() {
        let (_dir, path) = log_with(50).await;
        let v = verify(&crate::store::open_read_only(&path).unwrap(), None).unwrap();
        assert_eq!((v.rows, v.head_seq), (50, 50));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }

    #[tokio::test]
    async fn edited_row_is_named() {
        let (_dir, path) = log_with(5).await;
        tamper(&path, "UPDATE audit SET actor = 'mallory' WHERE seq = 3");
        let v = verify(&crate::store::open_read_only(&path).unwrap(), None).unwrap();
        assert_eq!(
            v.problems,
            vec!["row 3: contents do not match its hash (edited)".to_owned()]
        );
    }

    #[tokio::test]
    async fn deleted_row_is_named() {
        let (_dir, path) = log_with(5).await;
        tamper(&path, "DELETE FROM audit WHERE seq = 2");
        let v = verify(&crate::store::open_read_only(&path).unwrap(), None).unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("row 3: rows 2..=2 are missing")),
            "{:?}",
            v.problems
        );
    }

    #[tokio::test]
    async fn reordered_rows_are_named() {
        let (_dir, path) = log_with(5).await;
        // Swap rows 2 and 3 wholesale, hashes and all, renumbering them.
        tamper(
            &path,
            "UPDATE audit SET seq = -2 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -2;",
        );
        let v = verify(&crate::store::open_read_only(&path).unwrap(), None).unwrap();
        assert!(
            v.problems.iter().any(|p| p.starts_with("row 2:")),
            "{:?}",
            v.problems
        );
    }

    #[tokio::test]
    async fn truncation_is_caught_against_an_anchor() {
        let (_dir, path) = log_with(5).await;
        let conn = crate::store::open_read_only(&path).unwrap();
        let head = verify(&conn, None).unwrap();
        assert!(
            verify(&conn, Some((head.head_seq, &head.head_hash)))
                .unwrap()
                .problems
                .is_empty()
        );
        drop(conn);
        tamper(&path, "DELETE FROM audit WHERE seq >= 4");
        let conn = crate::store::open_read_only(&path).unwrap();
        assert!(
            verify(&conn, None).unwrap().problems.is_empty(),
            "the chain alone cannot tell"
        );
        let v = verify(&conn, Some((head.head_seq, &head.head_hash))).unwrap();
        assert_eq!(
            v.problems,
            vec!["row 5: the anchored head is missing (the log was truncated)".to_owned()]
        );
        drop(conn);
        tamper(&path, "DELETE FROM audit");
        let v = verify(&crate::store::open_read_only(&path).unwrap(), None).unwrap();
        assert!(v.problems[0].contains("empty"));
    }

    #[tokio::test]
    async fn triggers_refuse_casual_edits() {
        let (_dir, path) = log_with(2).await;
        let conn = Connection::open(&path).unwrap();
        let err = conn
            .execute("DELETE FROM audit WHERE seq = 1", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"));
    }

    #[tokio::test]
    async fn a_locked_database_fails_the_record_instead_of_losing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::store::db_path(dir.path());
        let conn = crate::store::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_millis(100))
            .unwrap();
        let log = AuditLog::start(conn).unwrap();
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert!(matches!(log.record(event(1)).await, Err(Error::Write(_))));
        blocker.execute_batch("COMMIT").unwrap();
        assert_eq!(
            log.record(event(2)).await.unwrap(),
            1,
            "the failed row took no sequence number"
        );
    }
}
