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
    assert_eq!(version, 10);
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    for access in [Access::ReadWrite, Access::ReadOnly] {
        assert!(matches!(
            SqliteStore::open(&db(dir.path()), access),
            Err(OpenError::TooNew { found: 99, .. })
        ));
    }
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
    assert_eq!(store.current_overrides(0).await.unwrap().len(), 1);
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
        .commit_upload("s_00000000000000aa", "0.cast.gz", 0, 10)
        .await
        .unwrap();
    assert_eq!(
        store.uploads("s_00000000000000aa").await.unwrap()[0].length,
        10
    );
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
