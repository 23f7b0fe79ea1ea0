//! The audit log in PostgreSQL: the group commit, reads, and the tip.
//!
//! One append is one transaction in two round trips. The first begins it
//! and locks the chain's head row (`audit_head`, `FOR UPDATE`): appends from
//! every replica queue there, so the chain stays one. The second carries,
//! pipelined, every entry's change, every row (chained after the head), the
//! head's new value, the NOTIFY that wakes the other replicas, and COMMIT.
//! A change that meets a conflict raises it (`conflict.rs`); the
//! transaction is then void (its COMMIT rolls back), that entry is answered
//! with its conflict and the rest go again without it. Entries are answered
//! only after COMMIT returned: durable (`synchronous_commit = on`).

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::BytesMut;
use chrono::{SecondsFormat, Utc};
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::change::{self, Param, Stmt};
use super::{PostgresStore, conflict, from_sql, listen, to_sql};
use crate::store::{AuditFilter, AuditRow, AuditStore, ChainHead, Entry, Error};

const COLUMNS: &str = "seq, ts, kind, actor, outcome, detail, prev_hash, hash";
const LOCK_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
/// Every row of the batch in one statement.
const INSERT_ROWS: &str = "INSERT INTO audit (seq, ts, kind, actor, outcome, detail, prev_hash, hash)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])";
const MOVE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
const NOTIFY: &str = "SELECT pg_notify('shiftkey_audit', $1)";

pub(super) async fn max_seq(client: &Client) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT seq FROM audit_head WHERE id = 1", &[])
        .await?;
    Ok(from_sql(row.get(0)))
}

fn row(r: &tokio_postgres::Row) -> AuditRow {
    AuditRow {
        seq: from_sql(r.get(0)),
        ts: r.get(1),
        kind: r.get(2),
        actor: r.get(3),
        outcome: r.get(4),
        detail: r.get(5),
        prev_hash: r.get(6),
        hash: r.get(7),
    }
}

/// How one try of a batch ended.
enum Attempt {
    /// Committed: the sequence number of each live entry, in order.
    Committed(Vec<u64>),
    /// This entry's change was refused (a conflict, or a statement the
    /// database would not take); nothing was committed.
    Refused { entry: usize, error: Error },
    /// The transaction could not be run or committed; nothing may be taken
    /// as written.
    Failed(Error),
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;

/// Encodes every parameter as the statement's types want it, so that no
/// statement of the pipeline can fail in the driver (which would leave it
/// out and still send the next ones and the COMMIT).
fn encodable(statement: &tokio_postgres::Statement, params: &[Param]) -> Result<(), Error> {
    if statement.params().len() != params.len() {
        return Err(Error::Failed(format!(
            "a statement takes {} parameters, {} were given",
            statement.params().len(),
            params.len()
        )));
    }
    let mut buf = BytesMut::new();
    for (ty, param) in statement.params().iter().zip(params) {
        param
            .to_sql_checked(ty, &mut buf)
            .map_err(|e| Error::Failed(format!("a value does not fit its column: {e}")))?;
        buf.clear();
    }
    Ok(())
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// One try at committing the entries `live` names.
async fn attempt(
    client: &deadpool_postgres::Object,
    entries: &[Entry],
    plans: &[Vec<Stmt>],
    live: &[usize],
) -> Attempt {
    let failed = |e: &tokio_postgres::Error| Attempt::Failed(conflict::map_error(e));
    let lock_head = match client.prepare_cached(LOCK_HEAD).await {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    // Round trip 1: begin, and wait for the head.
    let (begun, head) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&lock_head, &[])
    );
    let head = match (begun, head) {
        (Ok(()), Ok(head)) => ChainHead {
            seq: from_sql(head.get(0)),
            hash: head.get(1),
        },
        (Err(e), _) | (_, Err(e)) => return failed(&e),
    };

    // The rows, chained after the head.
    let mut tip = head;
    let mut rows = Vec::with_capacity(live.len());
    for &i in live {
        let next = tip.next(
            &entries[i].row,
            Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        tip = ChainHead {
            seq: next.seq,
            hash: next.hash.clone(),
        };
        rows.push(next);
    }
    let column = |f: fn(&AuditRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let tail: Vec<(Option<usize>, Stmt)> = vec![
        (
            None,
            Stmt::new(
                INSERT_ROWS,
                vec![
                    Box::new(rows.iter().map(|r| to_sql(r.seq)).collect::<Vec<i64>>()),
                    Box::new(column(|r| r.ts.clone())),
                    Box::new(column(|r| r.kind.clone())),
                    Box::new(column(|r| r.actor.clone())),
                    Box::new(column(|r| r.outcome.clone())),
                    Box::new(column(|r| r.detail.clone())),
                    Box::new(column(|r| r.prev_hash.clone())),
                    Box::new(column(|r| r.hash.clone())),
                ],
            ),
        ),
        (
            None,
            Stmt::new(
                MOVE_HEAD,
                vec![Box::new(to_sql(tip.seq)), Box::new(tip.hash.clone())],
            ),
        ),
        (None, Stmt::new(NOTIFY, vec![Box::new(tip.seq.to_string())])),
    ];

    // Everything prepared and checked before anything of round trip 2 is sent.
    let mut prepared = Vec::new();
    let mut owned: Vec<(Option<usize>, &Stmt)> = Vec::new();
    for &i in live {
        for stmt in &plans[i] {
            owned.push((Some(i), stmt));
        }
    }
    for (owner, stmt) in &tail {
        owned.push((*owner, stmt));
    }
    for (owner, stmt) in owned {
        let statement = match client.prepare_cached(stmt.sql).await {
            Ok(s) => s,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return match owner {
                    Some(entry) if !conflict::ends_the_batch(&e) => Attempt::Refused {
                        entry,
                        error: conflict::map_error(&e),
                    },
                    _ => failed(&e),
                };
            }
        };
        if let Err(error) = encodable(&statement, &stmt.params) {
            let _ = client.batch_execute("ROLLBACK").await;
            return match owner {
                Some(entry) => Attempt::Refused { entry, error },
                None => Attempt::Failed(error),
            };
        }
        prepared.push((owner, statement, stmt));
    }

    // Round trip 2: the changes, the rows, the head, the notice, COMMIT.
    // Futures are polled in order, so the statements run in this order.
    let mut pipeline: Vec<Pending<'_>> = Vec::with_capacity(prepared.len() + 1);
    for (_, statement, stmt) in &prepared {
        let params = refs(&stmt.params);
        pipeline.push(Box::pin(
            async move { client.execute(statement, &params).await },
        ));
    }
    pipeline.push(Box::pin(async move {
        client.batch_execute("COMMIT").await.map(|()| 0)
    }));
    let answers = futures_util::future::join_all(pipeline).await;

    // The first error decides: the ones after it only say the transaction
    // was already aborted (and COMMIT then rolled back).
    for (index, answer) in answers.iter().enumerate() {
        let Err(e) = answer else { continue };
        // An entry's statement failed: the transaction is aborted and its
        // COMMIT answered ROLLBACK, so the connection is idle again.
        let owner = prepared.get(index).and_then(|(owner, _, _)| *owner);
        return match owner {
            Some(entry) if !conflict::ends_the_batch(e) => Attempt::Refused {
                entry,
                error: conflict::map_error(e),
            },
            _ => {
                let _ = client.batch_execute("ROLLBACK").await;
                failed(e)
            }
        };
    }
    Attempt::Committed(rows.iter().map(|r| r.seq).collect())
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append(&self, entries: Vec<Entry>) -> Vec<Result<u64, Error>> {
        let n = entries.len();
        let client = match self.writer().await {
            Ok(c) => c,
            Err(e) => return vec![Err(e); n],
        };
        let plans: Vec<Vec<Stmt>> = entries
            .iter()
            .map(|e| {
                e.change
                    .as_ref()
                    .map(change::statements)
                    .unwrap_or_default()
            })
            .collect();
        let mut answers: Vec<Option<Result<u64, Error>>> = vec![None; n];
        loop {
            let live: Vec<usize> = (0..n).filter(|&i| answers[i].is_none()).collect();
            if live.is_empty() {
                break;
            }
            match attempt(&client, &entries, &plans, &live).await {
                Attempt::Committed(seqs) => {
                    if let Some(last) = seqs.last() {
                        listen::raise(&self.tip, *last);
                    }
                    for (i, seq) in live.into_iter().zip(seqs) {
                        answers[i] = Some(Ok(seq));
                    }
                }
                Attempt::Refused { entry, error } => {
                    if !matches!(error, Error::Conflict(_)) {
                        tracing::error!(error = %error, kind = %entries[entry].row.kind, "audit entry refused by the store");
                    }
                    answers[entry] = Some(Err(error));
                }
                Attempt::Failed(error) => {
                    for i in live {
                        answers[i] = Some(Err(error.clone()));
                    }
                    if !client.is_closed() {
                        // It may still be inside the transaction that failed.
                        if client.batch_execute("ROLLBACK").await.is_err() {
                            drop(deadpool_postgres::Object::take(client));
                            break;
                        }
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(Error::Failed("the entry was not answered".into()))))
            .collect()
    }

    async fn audit_rows(&self, f: AuditFilter) -> Result<Vec<AuditRow>, Error> {
        let mut clauses: Vec<String> = Vec::new();
        let mut values: Vec<Param> = Vec::new();
        let mut add = |clause: &str, value: Param| {
            values.push(value);
            clauses.push(clause.replace('?', &format!("${}", values.len())));
        };
        if let Some(after) = f.after {
            add("seq > ?", Box::new(to_sql(after)));
        }
        if let Some(before) = f.before {
            add("seq < ?", Box::new(to_sql(before)));
        }
        if let Some(prefix) = &f.kind_prefix {
            add(
                "(kind = ? OR left(kind, length(?) + 1) = ? || '.')",
                Box::new(prefix.clone()),
            );
        }
        if let Some(actor) = &f.actor {
            add("actor = ?", Box::new(actor.clone()));
        }
        if let Some(from) = &f.from_ts {
            add("ts >= ?", Box::new(from.clone()));
        }
        if let Some(until) = &f.until_ts {
            add("ts < ?", Box::new(until.clone()));
        }
        if !f.kinds.is_empty() {
            add("kind = ANY(?)", Box::new(f.kinds.clone()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let order = if f.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit {filter} ORDER BY seq {order} LIMIT {}",
            f.limit
        );
        let rows = self.query(&sql, &refs(&values)).await?;
        Ok(rows.iter().map(row).collect())
    }

    fn audit_tip(&self) -> watch::Receiver<u64> {
        self.listener.get_or_init(|| {
            listen::start(
                std::sync::Arc::clone(&self.connect),
                std::sync::Arc::downgrade(&self.tip),
            );
        });
        self.tip.subscribe()
    }
}
