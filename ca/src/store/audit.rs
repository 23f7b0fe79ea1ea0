//! The audit log as stored: hash-chained rows, the one write primitive
//! every state change goes through ([`AuditStore::append`]), and the
//! notifier that wakes readers of new rows.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and every field
//! of the row, length-prefixed ([`AuditRow::compute_hash`]); backends chain
//! new rows inside the transaction that holds the chain's head.

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{Change, Error};

/// The hash the first row chains from.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit row to append: the store numbers, timestamps and chains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewAuditRow {
    /// e.g. `certificate.issued`, `certificate.denied`, `policy.reloaded`.
    pub(crate) kind: String,
    /// Who asked: `user:alice@example.com`, `local:root`, `anonymous`, `system`.
    pub(crate) actor: String,
    /// `allow`, `deny`, `info` or `error`.
    pub(crate) outcome: String,
    /// A JSON object, as text; never a secret.
    pub(crate) detail: String,
}

/// One entry of an append: an audit row and the change it records. Both
/// commit together or neither does.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) row: NewAuditRow,
    pub(crate) change: Option<Change>,
}

/// One audit row as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct AuditRow {
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

impl AuditRow {
    /// SHA-256 over the previous hash and every field, each length-prefixed
    /// so that field boundaries are unambiguous.
    pub(crate) fn compute_hash(&self) -> String {
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
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        hex::encode(h.finalize())
    }
}

/// The chain's last row (or the genesis before the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub(crate) seq: u64,
    pub(crate) hash: String,
}

impl ChainHead {
    pub(crate) fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }

    /// The row that follows this head, numbered and hashed. Backends call
    /// it inside the transaction that holds the head.
    pub(crate) fn next(&self, row: &NewAuditRow, ts: String) -> AuditRow {
        let mut next = AuditRow {
            seq: self.seq + 1,
            ts,
            kind: row.kind.clone(),
            actor: row.actor.clone(),
            outcome: row.outcome.clone(),
            detail: row.detail.clone(),
            prev_hash: self.hash.clone(),
            hash: String::new(),
        };
        next.hash = next.compute_hash();
        next
    }
}

/// Which audit rows to read. Every field given must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFilter {
    /// Rows after this sequence number.
    pub(crate) after: Option<u64>,
    /// Rows before this sequence number.
    pub(crate) before: Option<u64>,
    /// Any of these kinds exactly (empty: every kind).
    pub(crate) kinds: Vec<String>,
    /// This kind, or the kinds under it (`recording` matches `recording.viewed`).
    pub(crate) kind_prefix: Option<String>,
    pub(crate) actor: Option<String>,
    /// RFC 3339 bounds on `ts`: from (inclusive), until (exclusive).
    pub(crate) from_ts: Option<String>,
    pub(crate) until_ts: Option<String>,
    /// Newest first instead of in `seq` order.
    pub(crate) newest_first: bool,
    pub(crate) limit: u32,
}

/// The audit log.
#[async_trait]
pub(crate) trait AuditStore {
    /// Appends `entries` in order, in one transaction that holds the chain's
    /// head: each entry's change is applied and its row chained after the
    /// previous entry's. An entry whose change fails (a [`super::Conflict`])
    /// is left out, its neighbours still commit; when the transaction fails,
    /// every entry gets that error. Returns, per entry, its sequence number
    /// once the commit is durable.
    async fn append(&self, entries: Vec<Entry>) -> Vec<Result<u64, Error>>;

    /// Rows matching `filter`, at most `filter.limit`.
    async fn audit_rows(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, Error>;

    /// The notifier: the highest sequence number committed to this store,
    /// as this process knows it. Appends through this process show at once;
    /// appends by other processes within the backend's notice delay.
    fn audit_tip(&self) -> watch::Receiver<u64>;
}
