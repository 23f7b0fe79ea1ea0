use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::store::Access;

fn event(n: u64) -> Event {
    Event::new("test.event", "system", Outcome::Info, json!({ "n": n }))
}

fn open(path: &Path) -> Arc<dyn Store> {
    crate::store::open_sqlite(path, Access::ReadWrite).unwrap()
}

/// A log of `n` rows, written concurrently through one writer.
async fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shiftkey.db");
    let log = Audit::start(open(&path));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_pages_through_every_row() {
    let (_dir, path) = log_with(25).await;
    let store = open(&path);
    let mut seen = Vec::new();
    export(store.as_ref(), 20, |row| -> Result<(), store::Error> {
        seen.push(row.seq);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(seen, [21, 22, 23, 24, 25]);
}

/// A refusal as the domain answers it.
#[derive(Debug, PartialEq)]
enum Refusal {
    NotAllowed,
    Audit,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("you may not")
    }
}

impl Explain for Refusal {
    fn code(&self) -> &'static str {
        "not-allowed"
    }
}

impl From<Error> for Refusal {
    fn from(_: Error) -> Self {
        Refusal::Audit
    }
}

#[tokio::test]
async fn a_refusal_is_recorded_with_its_code_before_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("shiftkey.db"));
    let audit = Audit::start(Arc::clone(&store));
    let answer = audit
        .refuse(
            "thing.refused",
            "user:a@example.com".into(),
            Outcome::Deny,
            Refusal::NotAllowed,
            json!({ "thing": 1 }),
        )
        .await;
    assert_eq!(answer, Refusal::NotAllowed);
    let rows = store
        .audit_rows(AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let detail: serde_json::Value = serde_json::from_str(&rows[0].detail).unwrap();
    assert_eq!(
        (rows[0].kind.as_str(), rows[0].outcome.as_str()),
        ("thing.refused", "deny")
    );
    assert_eq!(
        detail,
        json!({ "thing": 1, "error": "not-allowed", "message": "you may not" })
    );
}

#[tokio::test]
async fn a_change_that_conflicts_records_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("shiftkey.db"));
    let audit = Audit::start(Arc::clone(&store));
    let refused = audit
        .record_change(
            event(1),
            Change::ResolveIncident {
                id: "INC-404".into(),
                by: "local:root".into(),
                at: "x".into(),
                now: 0,
            },
        )
        .await;
    assert_eq!(refused, Err(Error::Conflict(Conflict::IncidentNotOpen)));
    assert_eq!(audit.record(event(2)).await, Ok(1));
}
