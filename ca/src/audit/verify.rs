//! Walking the chain: `verify` names the first row where it breaks
//! (edited, deleted, reordered or inserted rows), `export` writes the rows
//! out. Both read the store page by page, never the whole log at once.

use serde::Serialize;

use crate::store::{self, AuditFilter, AuditRow, GENESIS_HASH, Store};

/// Rows read per page.
const PAGE: u32 = 10_000;

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verification {
    pub(crate) rows: u64,
    pub(crate) head_seq: u64,
    pub(crate) head_hash: String,
    /// Each break in the chain, naming the row.
    pub(crate) problems: Vec<String>,
}

/// Calls `each` with every row after `since`, in `seq` order.
pub(crate) async fn export<E>(
    store: &dyn Store,
    since: u64,
    mut each: impl FnMut(AuditRow) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<store::Error>,
{
    let mut after = since;
    loop {
        let rows = store
            .audit_rows(AuditFilter {
                after: Some(after),
                limit: PAGE,
                ..AuditFilter::default()
            })
            .await?;
        let done = rows.len() < PAGE as usize;
        for row in rows {
            after = row.seq;
            each(row)?;
        }
        if done {
            return Ok(());
        }
    }
}

/// Walks the whole chain. A truncated tail cannot be told from a shorter log
/// by the log alone: compare `head_seq`/`head_hash` with a copy kept elsewhere
/// (docs/security.md).
///
/// `anchor` is a `(seq, hash)` pair recorded earlier (from a previous
/// verify's head): the chain must still hold that row with that hash.
pub(crate) async fn verify(
    store: &dyn Store,
    anchor: Option<(u64, &str)>,
) -> Result<Verification, store::Error> {
    let mut expected_seq = 1u64;
    let mut anchor_seen = false;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut problems = Vec::new();
    let mut count = 0u64;
    export(store, 0, |row| -> Result<(), store::Error> {
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
    })
    .await?;
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
