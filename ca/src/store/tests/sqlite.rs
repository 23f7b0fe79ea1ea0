//! The SQLite backend: every behaviour test, and what only a file has —
//! migrations (from a store made by the previous release), the append-only
//! triggers, another process holding the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::{Fresh, apply, cert, entry, incident, row};
use crate::store::sqlite::SqliteStore;
use crate::store::{Access, AuditFilter, Change, Entry, Error, OpenError, Selector, SessionStatus};

/// A store made by `shiftkey-ca` at schema version 7 (the release before
/// the store seam): init, issuance over the socket, an incident opened and
/// resolved (one revocation), an override, a join token, a lock and an
/// unlock; plus a live and a sealed session as the bastion would leave
/// them. 12 audit rows, serials up to 3.
const SCHEMA_7: &[u8] = include_bytes!("fixtures/schema-7.db");

async fn fresh() -> (tempfile::TempDir, Fresh) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("shiftkey.db"), Access::ReadWrite).unwrap();
    (dir, Arc::new(store))
}

super::every_behaviour_test!(fresh);

fn db(dir: &Path) -> PathBuf {
    dir.join("shiftkey.db")
}

#[test]
fn migrates_once_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    drop(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    let conn = Connection::open(db(dir.path())).unwrap();
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::store::sqlite::MIGRATIONS.len());
    assert_eq!(version, 15);
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    for access in [Access::ReadWrite, Access::ReadOnly] {
        assert!(matches!(
            SqliteStore::open(&db(dir.path()), access),
            Err(OpenError::TooNew { found: 99, .. })
        ));
    }
}

/// A store at version 10 whose rows spell one identity three ways: the
/// migration to version 11 leaves one canonical spelling everywhere a row
/// names who did or owns something, and keeps `local:` names as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_11_makes_every_stored_identity_canonical() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(db(dir.path())).unwrap();
    for sql in &crate::store::sqlite::MIGRATIONS[..10] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 10).unwrap();
    conn.execute_batch(
        r#"
        INSERT INTO certificates VALUES (1, 'Alice@Example.COM role=r', 'user:Alice@Example.COM', 'r', NULL,
            'r_1', '["p@r"]', 0, 9999999999, 'SHA256:1', 'x', 'cert');
        INSERT INTO certificates VALUES (2, 'local:Bob role=r', 'local:Bob', 'r', NULL,
            'r_2', '["p@r"]', 0, 9999999999, 'SHA256:2', 'x', 'cert');
        INSERT INTO identity_locks VALUES ('user:ALICE@example.com', 'user:Root@Example.com', 'x', 'first');
        INSERT INTO identity_locks VALUES ('user:alice@example.com', 'local:root', 'y', 'second');
        INSERT INTO oncall_overrides (id, schedule, member, start, end, reason, created_by, created_at)
            VALUES (7, 'primary', 'user:Alice@Example.COM', 0, 9999999999, 'cover', 'user:Carol@Example.com', 'x');
        INSERT INTO access_requests (id, requester, role, request, status, approvals, approvals_needed,
            denied_by, created_at, expires_at)
            VALUES ('r_9', 'user:Alice@Example.COM', 'r', '{}', 'denied', '["user:Carol@Example.com","local:Bob"]',
                2, 'user:Dan@Example.com', 0, 1);
        INSERT INTO incidents (id, title, severity, status, source, opened_by, opened_at)
            VALUES ('INC-1', 't', 1, 'open', 'manual', 'user:Alice@Example.COM', 'x');
        "#,
    )
    .unwrap();
    drop(conn);
    let store: Fresh = Arc::new(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    let known = store.user_certificate(1).await.unwrap().unwrap();
    assert_eq!(known.identity, "user:alice@example.com");
    assert_eq!(
        known.key_id, "Alice@Example.COM role=r",
        "what was signed stays"
    );
    assert_eq!(
        store.user_certificate(2).await.unwrap().unwrap().identity,
        "local:Bob",
        "local user names are case-sensitive"
    );
    assert_eq!(
        store
            .lock_of("user:alice@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("first"),
        "two spellings locked: one lock, the first"
    );
    assert_eq!(
        store
            .live_serials(Selector::Identity("user:alice@example.com".into()), 0)
            .await
            .unwrap(),
        [1]
    );
    let o = store
        .on_call_override("ov_000000000007")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (o.member.as_str(), o.created_by.as_str()),
        ("user:alice@example.com", "user:carol@example.com")
    );
    let r = store.access_request("r_9").await.unwrap().unwrap();
    assert_eq!(r.requester, "user:alice@example.com");
    assert_eq!(r.approvals, ["user:carol@example.com", "local:Bob"]);
    assert_eq!(r.denied_by.as_deref(), Some("user:dan@example.com"));
    let i = store.incident("INC-1").await.unwrap().unwrap();
    assert_eq!(i.opened_by, "user:alice@example.com");
    // Certificates are immutable again after the rewrite.
    let conn = Connection::open(db(dir.path())).unwrap();
    assert!(
        conn.execute("UPDATE certificates SET role = 'x'", [])
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_the_previous_release_upgrades_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(db(dir.path()), SCHEMA_7).unwrap();
    let store: Fresh = Arc::new(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    // What was there is read through the new interface.
    let rows = store
        .audit_rows(AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0].kind, "keys.created");
    let verified = crate::audit::verify(store.as_ref(), None).await.unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    let resolved = store.incident("INC-7").await.unwrap().unwrap();
    assert_eq!(resolved.status, "resolved");
    assert_eq!(store.revoked_under_incident("INC-7").await.unwrap(), [2]);
    assert!(
        store.user_certificate(1).await.unwrap().unwrap().revoked,
        "locked"
    );
    assert!(
        store.lock_of("local:root").await.unwrap().is_none(),
        "unlocked"
    );
    let overrides = store.current_overrides(0).await.unwrap();
    assert_eq!(overrides.len(), 1);
    assert!(overrides[0].id.starts_with("ov_"), "{}", overrides[0].id);
    assert_eq!(
        store.on_call_override(&overrides[0].id).await.unwrap(),
        Some(overrides[0].clone())
    );
    assert_eq!(
        store
            .session("s_00000000000000aa")
            .await
            .unwrap()
            .unwrap()
            .status,
        SessionStatus::Live
    );
    assert_eq!(store.search("restart", 10).await.unwrap().len(), 1);
    assert_eq!(
        store.recording_files("s_00000000000000bb").await.unwrap()[0].bytes,
        10
    );
    // Serials continue above the highest issued; the chain continues.
    let serial = store.next_serial().await.unwrap();
    assert!(serial > 3, "{serial}");
    let seq = apply(&store, Change::Issue(cert(serial, None, 9_999_999_999)))
        .await
        .unwrap();
    assert_eq!(seq, 13);
    assert!(
        crate::audit::verify(store.as_ref(), None)
            .await
            .unwrap()
            .problems
            .is_empty()
    );
    // The new tables work on the old rows.
    store
        .commit_upload("s_00000000000000aa", "0.cast.gz", 0, 10, u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        store.uploads("s_00000000000000aa").await.unwrap()[0].length,
        10
    );
    // The sessions table rebuilt for `lost` (version 12) kept every row and
    // what refers to it; heartbeats and the lost sweep work on old rows.
    let sealed = store.session("s_00000000000000bb").await.unwrap().unwrap();
    assert_eq!(sealed.status, SessionStatus::Sealed);
    assert!(store.stored_seal(&sealed.id).await.unwrap().is_some());
    let live = store.session("s_00000000000000aa").await.unwrap().unwrap();
    assert_eq!(
        store
            .heard_from(
                &live.bastion,
                std::slice::from_ref(&live.id),
                live.started_at + 5
            )
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.session(&live.id).await.unwrap().unwrap().last_seen,
        Some(live.started_at + 5)
    );
    assert_eq!(
        store
            .silent_sessions(live.started_at + 5, 10)
            .await
            .unwrap()[0]
            .id,
        live.id
    );
    let dangling: i64 = Connection::open(db(dir.path()))
        .unwrap()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0);
}

#[tokio::test]
async fn casual_edits_are_refused_by_the_triggers() {
    let (dir, store) = fresh().await;
    let serial = store.next_serial().await.unwrap();
    apply(&store, Change::Issue(cert(serial, None, 2_000)))
        .await
        .unwrap();
    apply(
        &store,
        Change::Revoke {
            serials: vec![serial],
            by: "b".into(),
            reason: "r".into(),
            at: "x".into(),
        },
    )
    .await
    .unwrap();
    let conn = Connection::open(db(dir.path())).unwrap();
    for (sql, why) in [
        ("DELETE FROM audit WHERE seq = 1", "append-only"),
        ("UPDATE audit SET actor = 'x'", "append-only"),
        ("DELETE FROM revocations", "cannot be undone"),
        ("UPDATE certificates SET identity = 'x'", "immutable"),
        ("DELETE FROM certificates", "kept"),
        (
            "UPDATE serial_sequence SET last = 0",
            "never handed out twice",
        ),
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains(why), "{sql}: {err}");
    }
}

#[tokio::test]
async fn a_locked_database_fails_the_append_instead_of_losing_it() {
    let dir = tempfile::tempdir().unwrap();
    let store: Fresh = Arc::new(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    let blocker = Connection::open(db(dir.path())).unwrap();
    blocker.busy_timeout(std::time::Duration::ZERO).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let results = store
        .append(vec![Entry {
            row: row("test.locked"),
            change: None,
        }])
        .await;
    assert!(
        matches!(results[0], Err(Error::Unavailable(_))),
        "{results:?}"
    );
    blocker.execute_batch("COMMIT").unwrap();
    let results = store
        .append(vec![Entry {
            row: row("test.after"),
            change: None,
        }])
        .await;
    assert_eq!(results[0], Ok(1), "the failed row took no sequence number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_never_share_a_serial() {
    let dir = tempfile::tempdir().unwrap();
    let one: Fresh = Arc::new(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    let two: Fresh = Arc::new(SqliteStore::open(&db(dir.path()), Access::ReadWrite).unwrap());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        for store in [&one, &two] {
            let serial = store.next_serial().await.unwrap();
            assert!(seen.insert(serial), "serial {serial} twice");
        }
    }
    // And the one that wrote last does not notice the other's rows late:
    // the follower raises its tip within the notice delay.
    let mut tip = one.audit_tip();
    tip.borrow_and_update();
    apply(&two, Change::OpenIncident(incident("INC-9")))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), tip.changed())
        .await
        .expect("the other process's row is noticed")
        .unwrap();
}

#[tokio::test]
async fn read_only_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SqliteStore::open(&db(dir.path()), Access::ReadOnly),
        Err(OpenError::Missing { .. })
    ));
    let (dir, store) = fresh().await;
    apply(&store, Change::Issue(cert(1, None, 2_000)))
        .await
        .unwrap();
    drop(store);
    let read_only: Fresh = Arc::new(SqliteStore::open(&db(dir.path()), Access::ReadOnly).unwrap());
    assert_eq!(
        read_only
            .live_serials(Selector::Serial(1), 1_000)
            .await
            .unwrap(),
        [1]
    );
    let results = read_only
        .append(vec![entry(Change::Issue(cert(2, None, 2_000)))])
        .await;
    assert!(matches!(results[0], Err(Error::Unavailable(_))));
    assert!(matches!(
        read_only.next_serial().await,
        Err(Error::Unavailable(_))
    ));
}

// The audit chain against edits made behind the CA's back (the file is
// writable by whoever owns it; the triggers can be dropped).

fn tamper(path: &Path, sql: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
}

async fn check(path: &Path, anchor: Option<(u64, &str)>) -> crate::audit::Verification {
    let store = SqliteStore::open(path, Access::ReadOnly).unwrap();
    crate::audit::verify(&store, anchor).await.unwrap()
}

/// A log of `n` rows, written concurrently through one writer.
async fn log_with(n: u64) -> (tempfile::TempDir, PathBuf) {
    let (dir, store) = fresh().await;
    let log = crate::audit::Audit::start(store);
    let mut handles = Vec::new();
    for i in 0..n {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            log.record(crate::audit::Event::new(
                "test.event",
                "system",
                crate::audit::Outcome::Info,
                serde_json::json!({ "n": i }),
            ))
            .await
            .unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let path = db(dir.path());
    (dir, path)
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

#[tokio::test]
async fn a_refusal_that_cannot_be_recorded_answers_as_the_audit_failure() {
    use crate::audit::Outcome;
    use crate::oncall::Error as Refusal;
    let (dir, store) = fresh().await;
    let audit = crate::audit::Audit::start(store);
    // When the row cannot be written, the caller hears that instead.
    let blocker = Connection::open(db(dir.path())).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_out = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        audit.refuse(
            "thing.refused",
            "user:a@example.com".into(),
            Outcome::Deny,
            Refusal::NoReason,
            serde_json::json!({}),
        ),
    )
    .await
    .unwrap();
    assert!(
        matches!(locked_out, Refusal::Audit(crate::audit::Error::Store(_))),
        "{locked_out:?}"
    );
    blocker.execute_batch("COMMIT").unwrap();
}
