use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use serde_json::json;

use super::*;
use crate::store::{Access, Settings};

fn event(n: u64) -> Event {
    Event::new("test.event", "system", Outcome::Info, json!({ "n": n }))
}

fn open(path: &Path) -> Arc<dyn Store> {
    crate::store::open(
        &Settings::Sqlite {
            path: path.to_owned(),
        },
        Access::ReadWrite,
    )
    .unwrap()
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

fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
}

async fn check(path: &Path, anchor: Option<(u64, &str)>) -> Verification {
    let store = crate::store::open(
        &Settings::Sqlite {
            path: path.to_owned(),
        },
        Access::ReadOnly,
    )
    .unwrap();
    verify(store.as_ref(), anchor).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_chain_verifies() {
    let (_dir, path) = log_with(50).await;
    let v = check(&path, None).await;
    assert_eq!((v.rows, v.head_seq), (50, 50));
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[tokio::test]
async fn edited_row_is_named() {
    let (_dir, path) = log_with(5).await;
    tamper(&path, "UPDATE audit SET actor = 'mallory' WHERE seq = 3");
    assert_eq!(
        check(&path, None).await.problems,
        vec!["row 3: contents do not match its hash (edited)".to_owned()]
    );
}

#[tokio::test]
async fn deleted_row_is_named() {
    let (_dir, path) = log_with(5).await;
    tamper(&path, "DELETE FROM audit WHERE seq = 2");
    let v = check(&path, None).await;
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
    let v = check(&path, None).await;
    assert!(
        v.problems.iter().any(|p| p.starts_with("row 2:")),
        "{:?}",
        v.problems
    );
}

#[tokio::test]
async fn truncation_is_caught_against_an_anchor() {
    let (_dir, path) = log_with(5).await;
    let head = check(&path, None).await;
    assert!(
        check(&path, Some((head.head_seq, &head.head_hash)))
            .await
            .problems
            .is_empty()
    );
    tamper(&path, "DELETE FROM audit WHERE seq >= 4");
    assert!(
        check(&path, None).await.problems.is_empty(),
        "the chain alone cannot tell"
    );
    let v = check(&path, Some((head.head_seq, &head.head_hash))).await;
    assert_eq!(
        v.problems,
        vec!["row 5: the anchored head is missing (the log was truncated)".to_owned()]
    );
    tamper(&path, "DELETE FROM audit");
    assert!(check(&path, None).await.problems[0].contains("empty"));
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
    // When the row cannot be written, the caller hears that instead.
    let blocker = Connection::open(dir.path().join("shiftkey.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        audit.refuse(
            "thing.refused",
            "user:a@example.com".into(),
            Outcome::Deny,
            Refusal::NotAllowed,
            json!({}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(locked_out, Refusal::Audit);
    blocker.execute_batch("COMMIT").unwrap();
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
