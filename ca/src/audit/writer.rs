//! The group-committing writer: one task takes whatever entries queued up
//! while the previous batch was being committed and appends them as one
//! batch. Backend-independent: it needs only [`AuditStore::append`].

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Error;
use crate::store::{Entry, Store};

/// Upper bound on entries in one group commit; keeps a transaction short.
const MAX_BATCH: usize = 1024;
/// Entries that may wait for the writer before callers are turned away.
const QUEUE_DEPTH: usize = 16 * 1024;

struct Job {
    entry: Entry,
    reply: oneshot::Sender<Result<u64, Error>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("kind", &self.entry.row.kind)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(super) fn start(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    pub(super) async fn submit(&self, entry: Entry) -> Result<u64, Error> {
        let (reply, done) = oneshot::channel();
        self.tx
            .try_send(Job { entry, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Overloaded,
                mpsc::error::TrySendError::Closed(_) => Error::WriterGone,
            })?;
        done.await.map_err(|_| Error::WriterGone)?
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (entries, replies): (Vec<Entry>, Vec<_>) =
            batch.into_iter().map(|job| (job.entry, job.reply)).unzip();
        let size = entries.len();
        let results = store.append(entries).await;
        if results.len() != size {
            // INVARIANT: a backend answers every entry; if one did not, no
            // entry may be taken as committed.
            tracing::error!(
                size,
                answers = results.len(),
                "the store answered a batch wrongly"
            );
            for reply in replies {
                let _ = reply.send(Err(Error::WriterGone));
            }
            continue;
        }
        for (reply, result) in replies.into_iter().zip(results) {
            if let Err(e) = &result
                && !matches!(e, crate::store::Error::Conflict(_))
            {
                tracing::error!(error = %e, size, "audit commit failed; the request is refused");
            }
            let _ = reply.send(result.map_err(Error::from));
        }
    }
}
