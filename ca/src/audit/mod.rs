//! The audit log: every decision, one row, hash-chained, durable before the
//! answer leaves the CA.
//!
//! Callers hand an [`Event`] (and, for a state change, the [`Change`] it
//! records) to the group-committing writer (`writer.rs`) and wait for the
//! commit; the writer hands whatever queued up meanwhile to the store's
//! `append` as one batch, so durability costs one commit per batch rather
//! than per request. [`Audit::refuse`] is the one way a refusal or failure
//! is recorded before it is answered. `verify.rs` walks the chain.
//!
//! Never: answer a caller before its row is committed; keep going after a
//! failed commit as if it had succeeded.

mod verify;
mod writer;

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::store::{self, Change, Conflict, Entry, NewAuditRow, Store};
pub(crate) use crate::store::{AuditFilter, AuditRow};

pub(crate) use verify::{Verification, export, verify};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// The change met a state that forbids it; nothing was recorded.
    #[error(transparent)]
    Conflict(Conflict),
    #[error("the audit log cannot be written: {0}")]
    Store(store::Error),
    #[error("the audit writer has stopped")]
    WriterGone,
    #[error("the audit writer is overloaded")]
    Overloaded,
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::Conflict(c) => Error::Conflict(c),
            other => Error::Store(other),
        }
    }
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

impl Event {
    pub(crate) fn new(
        kind: &'static str,
        actor: impl Into<String>,
        outcome: Outcome,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            kind,
            actor: actor.into(),
            outcome,
            detail,
        }
    }

    fn into_row(self) -> NewAuditRow {
        NewAuditRow {
            kind: self.kind.to_owned(),
            actor: self.actor,
            outcome: self.outcome.as_str().to_owned(),
            detail: self.detail.to_string(),
        }
    }
}

/// What a refusal says about itself in its audit row: a stable code (the
/// one the API answers with) and a sentence (its `Display`, unless said
/// otherwise).
pub(crate) trait Explain: std::fmt::Display {
    fn code(&self) -> &'static str;

    fn message(&self) -> String {
        self.to_string()
    }
}

/// The audit log's writing end. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    writer: writer::Writer,
    store: Arc<dyn Store>,
}

impl Audit {
    /// Starts the group-committing writer on `store`. Needs a tokio runtime.
    pub(crate) fn start(store: Arc<dyn Store>) -> Self {
        Self {
            writer: writer::Writer::start(Arc::clone(&store)),
            store,
        }
    }

    /// The store the log is written to.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Rows matching `filter` (the review UI's audit page and export).
    pub(crate) async fn rows(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, Error> {
        Ok(self.store.audit_rows(filter).await?)
    }

    /// Walks the whole chain (see [`verify()`]).
    pub(crate) async fn verify(&self, anchor: Option<(u64, &str)>) -> Result<Verification, Error> {
        Ok(verify(self.store.as_ref(), anchor).await?)
    }

    /// Records `event`; returns its sequence number once it is durable.
    pub(crate) async fn record(&self, event: Event) -> Result<u64, Error> {
        self.writer
            .submit(Entry {
                row: event.into_row(),
                change: None,
            })
            .await
    }

    /// Records a change to the store and the audit row that says why: both
    /// commit together or neither does (a [`Conflict`] then says why).
    pub(crate) async fn record_change(&self, event: Event, change: Change) -> Result<u64, Error> {
        self.writer
            .submit(Entry {
                row: event.into_row(),
                change: Some(change),
            })
            .await
    }

    /// Records a refusal (or a failure) before it is answered: `error`'s code
    /// and message join `detail`. Hands the error back, or, when the row
    /// cannot be written, the audit failure in its place.
    pub(crate) async fn refuse<E>(
        &self,
        kind: &'static str,
        actor: String,
        outcome: Outcome,
        error: E,
        detail: serde_json::Value,
    ) -> E
    where
        E: Explain + From<Error>,
    {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("error".into(), json!(error.code()));
            map.insert("message".into(), json!(error.message()));
        }
        match self.record(Event::new(kind, actor, outcome, detail)).await {
            Ok(_) => error,
            Err(e) => E::from(e),
        }
    }
}

#[cfg(test)]
mod tests;
