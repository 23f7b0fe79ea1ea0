//! The PostgreSQL backend: every behaviour test, each on a database of its
//! own in the cluster `scripts/services` started, and what only a shared
//! database has — several replicas writing one chain, handing out serials
//! and racing over incidents; notices between them; migrations run by one
//! replica at a time; the triggers; TLS to the server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shiftkey_tests::services::{TestDatabase, postgres_ca};

use super::{Fresh, apply, cert, entry, incident, row, session, start_session};
use crate::store::postgres::{PostgresStore, Settings};
use crate::store::{
    Access, AuditFilter, Change, Conflict, Entry, Error, Hold, OpenError, Redeemed, Selector,
    SessionStatus, UiLink, UiSession,
};

fn settings(url: &str) -> Settings {
    Settings::parse(url, None, Some(8), Path::new("/")).unwrap()
}

async fn replica(db: &TestDatabase) -> Arc<PostgresStore> {
    Arc::new(
        PostgresStore::open(&settings(&db.url()), Access::ReadWrite)
            .await
            .unwrap(),
    )
}

/// A fresh database (dropped with the guard) and a store on it.
pub(super) async fn fresh() -> (TestDatabase, Fresh) {
    let db = TestDatabase::create().unwrap();
    let store: Fresh = replica(&db).await;
    (db, store)
}

super::every_behaviour_test!(fresh);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let db = TestDatabase::create().unwrap();
    let url = db.url();
    let opened = futures_util::future::join_all((0..3).map(|_| {
        let settings = settings(&url);
        async move { PostgresStore::open(&settings, Access::ReadWrite).await }
    }))
    .await;
    for store in opened {
        store.unwrap();
    }
    let versions = db
        .psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
        .unwrap();
    assert_eq!(versions, "1,2,3,4,5,6", "each migration once");
    db.psql("INSERT INTO schema_migrations (version) VALUES (99)")
        .unwrap();
    for access in [Access::ReadWrite, Access::ReadOnly] {
        assert!(matches!(
            PostgresStore::open(&settings(&url), access).await,
            Err(OpenError::TooNew { found: 99, .. })
        ));
    }
}

/// A database at version 2 (this branch's first release on PostgreSQL)
/// with mixed spellings: version 3 leaves one canonical spelling wherever a
/// row names who did or owns something, as SQLite's version 11 does, keeps
/// `local:` names, gives overrides their `ov_` IDs, and version 4 keeps
/// every session row with what refers to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_3_and_4_upgrade_a_version_2_database_as_sqlite_11_and_12_do() {
    let db = TestDatabase::create().unwrap();
    db.psql(&format!(
        "BEGIN;
         CREATE TABLE schema_migrations (version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now());
         {}
         {}
         INSERT INTO schema_migrations (version) VALUES (1), (2);
         COMMIT;",
        include_str!("../../../migrations/postgres/0001_init.sql"),
        include_str!("../../../migrations/postgres/0002_webhook_state.sql"),
    ))
    .unwrap();
    db.psql(
        r#"
        INSERT INTO certificates VALUES (1, 'Alice@Example.COM role=r', 'user:Alice@Example.COM', 'r', NULL,
            'r_1', '{p@r}', 0, 9999999999, 'SHA256:1', 'x', 'cert');
        INSERT INTO certificates VALUES (2, 'local:Bob role=r', 'local:Bob', 'r', NULL,
            'r_2', '{p@r}', 0, 9999999999, 'SHA256:2', 'x', 'cert');
        INSERT INTO revocations VALUES (2, 'x', 'user:Root@Example.COM', 'gone');
        INSERT INTO identity_locks VALUES ('user:ALICE@example.com', 'user:Root@Example.com', 'x', 'first');
        INSERT INTO identity_locks VALUES ('user:alice@example.com', 'local:root', 'y', 'second');
        INSERT INTO oncall_overrides (id, schedule, member, start, "end", reason, created_by, created_at)
            VALUES (7, 'primary', 'user:Alice@Example.COM', 0, 9999999999, 'cover', 'user:Carol@Example.com', 'x');
        INSERT INTO access_requests (id, requester, role, request, status, approvals, approvals_needed,
            denied_by, created_at, expires_at)
            VALUES ('r_9', 'user:Alice@Example.COM', 'r', '{}', 'denied', '{user:Carol@Example.com,local:Bob}',
                2, 'user:Dan@Example.com', 0, 1);
        INSERT INTO incidents (id, title, severity, status, source, opened_by, opened_at)
            VALUES ('INC-1', 't', 1, 'open', 'manual', 'user:Alice@Example.COM', 'x');
        INSERT INTO sessions (id, identity, user_serial, session_serial, role, principal, target,
            client_address, bastion, started_at, status)
            VALUES ('s_00000000000000aa', 'user:Alice@Example.COM', 1, 3, 'r', 'p', 'db:22', '127.0.0.1',
                'b1', 100, 'live');
        INSERT INTO recording_uploads VALUES ('s_00000000000000aa', '0.cast.gz', 10);
        "#,
    )
    .unwrap();
    let store: Fresh = replica(&db).await;
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
    assert_eq!(db.psql("SELECT count(*) FROM identity_locks").unwrap(), "1");
    assert_eq!(
        db.psql("SELECT revoked_by FROM revocations WHERE serial = 2")
            .unwrap(),
        "user:root@example.com"
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
    assert_eq!(store.alert_key_of("INC-1").await.unwrap(), None);
    // The old session, live, with its upload, heard and swept as before.
    let live = store.session("s_00000000000000aa").await.unwrap().unwrap();
    assert_eq!(
        (live.identity.as_str(), live.status, live.last_seen),
        ("user:alice@example.com", SessionStatus::Live, None)
    );
    assert_eq!(
        store.uploads(&live.id).await.unwrap()[0].length,
        10,
        "what refers to the session stays"
    );
    assert!(
        store
            .heard_from("b1", std::slice::from_ref(&live.id), 105)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.silent_sessions(105, 10).await.unwrap()[0].id, live.id);
    // The new status and the `expired` request pass their CHECKs; the
    // triggers are back on after the rewrite.
    db.psql("UPDATE sessions SET status = 'lost' WHERE id = 's_00000000000000aa'")
        .unwrap();
    db.psql("UPDATE access_requests SET status = 'expired' WHERE id = 'r_9'")
        .unwrap();
    assert!(
        db.psql("UPDATE sessions SET status = 'gone' WHERE id = 's_00000000000000aa'")
            .is_err()
    );
    assert!(db.psql("UPDATE certificates SET role = 'x'").is_err());
    assert!(db.psql("UPDATE revocations SET reason = 'x'").is_err());
}

#[tokio::test]
async fn read_only_needs_the_schema_and_refuses_writes() {
    let db = TestDatabase::create().unwrap();
    let refused = PostgresStore::open(&settings(&db.url()), Access::ReadOnly).await;
    assert!(
        matches!(refused, Err(OpenError::NoSchema { .. })),
        "{refused:?}"
    );
    drop(replica(&db).await);
    let store: Fresh = Arc::new(
        PostgresStore::open(&settings(&db.url()), Access::ReadOnly)
            .await
            .unwrap(),
    );
    let results = store
        .append(vec![entry(Change::OpenIncident(incident("I")))])
        .await;
    assert!(
        matches!(results[0], Err(Error::Unavailable(_))),
        "{results:?}"
    );
    assert!(store.incident("I").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_append_one_unbroken_chain_and_share_no_serial() {
    let db = TestDatabase::create().unwrap();
    let replicas: Vec<Fresh> = vec![replica(&db).await, replica(&db).await, replica(&db).await];
    let mut tasks = Vec::new();
    for (r, store) in replicas.iter().enumerate() {
        for t in 0..4 {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let mut serials = Vec::new();
                for i in 0..25 {
                    let serial = store.next_serial().await.unwrap();
                    serials.push(serial);
                    let batch = vec![
                        entry(Change::Issue(cert(serial, None, 4_000_000_000))),
                        Entry {
                            row: row(&format!("test.{r}.{t}.{i}")),
                            change: None,
                        },
                    ];
                    for result in store.append(batch).await {
                        result.unwrap();
                    }
                }
                serials
            }));
        }
    }
    let mut serials = Vec::new();
    for task in tasks {
        serials.extend(task.await.unwrap());
    }
    let issued = serials.len();
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), issued, "no serial twice across replicas");
    let verified = crate::audit::verify(replicas[0].as_ref(), None)
        .await
        .unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
    assert_eq!(verified.rows, 3 * 4 * 25 * 2, "one chain, no gap");
    for serial in serials {
        assert!(
            replicas[2]
                .user_certificate(serial)
                .await
                .unwrap()
                .is_some()
        );
    }
}

/// Three replicas sweep the same silent sessions and apply retention to the
/// same recordings at once, while holds are placed from another: every
/// session is claimed by exactly one, every recording deleted once, and a
/// hold racing a deletion either keeps the recording or is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sweeping_at_once_claim_each_lost_session_and_delete_each_recording_once() {
    let db = TestDatabase::create().unwrap();
    let replicas: Vec<Fresh> = vec![replica(&db).await, replica(&db).await, replica(&db).await];
    let ids: Vec<String> = (0..12).map(|n| format!("s_{n:016x}")).collect();
    for id in &ids {
        let mut s = session(id, "db-1:22", 1000);
        s.incident = None;
        start_session(&replicas[0], s).await;
    }
    // The lost sweep, on every replica at once.
    let claims = futures_util::future::join_all(replicas.iter().flat_map(|store| {
        ids.iter()
            .map(move |id| async move { (id.clone(), store.claim_lost(id, 1500, 1700).await) })
    }))
    .await;
    for id in &ids {
        let won = claims
            .iter()
            .filter(|(claimed, result)| claimed == id && result.is_ok())
            .count();
        assert_eq!(won, 1, "{id}: exactly one replica claims it");
        assert!(claims.iter().all(|(claimed, result)| claimed != id
            || matches!(result, Ok(_) | Err(Error::Conflict(Conflict::SessionHeard)))));
    }
    for id in &ids {
        let mut seal = super::sessions::a_seal(id, &["line"]);
        seal.status = SessionStatus::Lost;
        apply(&replicas[0], Change::SealRecording(Box::new(seal)))
            .await
            .unwrap();
    }
    // Retention on every replica, holds placed on the even sessions from
    // the first, all at once.
    let deletions = futures_util::future::join_all(replicas.iter().flat_map(|store| {
        ids.iter().map(move |id| async move {
            let change = Change::DeleteRecording {
                session: id.clone(),
                cutoff: 3000,
                at: 3000,
            };
            (id.clone(), apply(store, change).await)
        })
    }));
    let holds = futures_util::future::join_all(ids.iter().step_by(2).map(|id| {
        let store = &replicas[0];
        async move {
            let change = Change::HoldRecording(Hold {
                session: id.clone(),
                reason: "case 12".into(),
                held_by: "local:root".into(),
                held_at: 3000,
            });
            (id.clone(), apply(store, change).await)
        }
    }));
    let (deletions, holds) = tokio::join!(deletions, holds);
    for id in &ids {
        let deleted = deletions
            .iter()
            .filter(|(d, result)| d == id && result.is_ok())
            .count();
        assert!(deletions.iter().all(|(d, result)| d != id
            || matches!(
                result,
                Ok(_) | Err(Error::Conflict(Conflict::RecordingKept))
            )));
        let held = holds.iter().find(|(h, _)| h == id).map(|(_, r)| r);
        let row = replicas[2].session(id).await.unwrap().unwrap();
        match held {
            Some(Ok(_)) => {
                assert_eq!(deleted, 0, "{id}: held, and deleted");
                assert_eq!(row.held.as_deref(), Some("case 12"));
                assert_eq!(row.recording_deleted_at, None);
            }
            Some(Err(e)) => {
                assert_eq!(*e, Error::Conflict(Conflict::RecordingDeleted), "{id}");
                assert_eq!(deleted, 1, "{id}");
            }
            None => assert_eq!(deleted, 1, "{id}: deleted once"),
        }
        if deleted == 1 {
            assert_eq!(row.recording_deleted_at, Some(3000));
            assert!(
                replicas[1]
                    .search("line", 100)
                    .await
                    .unwrap()
                    .iter()
                    .all(|m| m.session_id != *id)
            );
        }
    }
    // Every replica purging at once: each recording's bytes are noted gone
    // once, and none is listed again.
    let to_purge = replicas[1].recordings_to_purge(100).await.unwrap();
    futures_util::future::join_all(replicas.iter().flat_map(|store| {
        to_purge
            .iter()
            .map(move |id| async move { store.note_bytes_deleted(id, 4000).await.unwrap() })
    }))
    .await;
    assert!(
        replicas[0]
            .recordings_to_purge(100)
            .await
            .unwrap()
            .is_empty()
    );
    let verified = crate::audit::verify(replicas[0].as_ref(), None)
        .await
        .unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_hears_another_replicas_rows_at_once() {
    let db = TestDatabase::create().unwrap();
    let (one, two): (Fresh, Fresh) = (replica(&db).await, replica(&db).await);
    let mut tip = one.audit_tip();
    tip.borrow_and_update();
    // Let the listener connect before the change it must hear.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seq = apply(&two, Change::OpenIncident(incident("INC-9")))
        .await
        .unwrap();
    // NOTIFY arrives with the commit; the periodic read is 5 s away.
    tokio::time::timeout(Duration::from_secs(2), tip.wait_for(|t| *t >= seq))
        .await
        .expect("heard within 2 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_certificate_slips_past_a_resolution_made_on_another_replica() {
    let db = TestDatabase::create().unwrap();
    let (issuer, resolver): (Fresh, Fresh) = (replica(&db).await, replica(&db).await);
    for round in 0..10u64 {
        let id = format!("INC-{round}");
        apply(&resolver, Change::OpenIncident(incident(&id)))
            .await
            .unwrap();
        let issuing = {
            let (issuer, id) = (Arc::clone(&issuer), id.clone());
            tokio::spawn(async move {
                let mut issued = Vec::new();
                for _ in 0..20 {
                    let serial = issuer.next_serial().await.unwrap();
                    match apply(
                        &issuer,
                        Change::Issue(cert(serial, Some(&id), 4_000_000_000)),
                    )
                    .await
                    {
                        Ok(_) => issued.push(serial),
                        Err(Error::Conflict(Conflict::IncidentNotOpen)) => break,
                        Err(e) => panic!("{e}"),
                    }
                }
                issued
            })
        };
        tokio::time::sleep(Duration::from_millis(round * 3)).await;
        apply(
            &resolver,
            Change::ResolveIncident {
                id: id.clone(),
                by: "local:root".into(),
                at: "now".into(),
                now: 1,
            },
        )
        .await
        .unwrap();
        let issued = issuing.await.unwrap();
        let live = resolver
            .live_serials(Selector::Incident(id.clone()), 1)
            .await
            .unwrap();
        assert!(
            live.is_empty(),
            "round {round}: {live:?} of {issued:?} escaped the resolution"
        );
    }
}

#[tokio::test]
async fn casual_edits_are_refused_by_the_triggers() {
    let (db, store) = fresh().await;
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
    for (sql, why) in [
        ("DELETE FROM audit WHERE seq = 1", "append-only"),
        ("UPDATE audit SET actor = 'x'", "append-only"),
        ("TRUNCATE audit", "append-only"),
        ("DELETE FROM revocations", "cannot be undone"),
        ("UPDATE certificates SET identity = 'x'", "immutable"),
        ("DELETE FROM certificates", "kept"),
        ("UPDATE audit_head SET seq = 0", "only moves forward"),
        (
            "INSERT INTO certificates SELECT 9999, key_id, identity, role, 'INC-404', request_id, principals, valid_after, valid_before, key_fingerprint, issued_at, certificate FROM certificates",
            "is not open",
        ),
    ] {
        let err = db.psql(sql).unwrap_err().to_string();
        assert!(err.contains(why), "{sql}: {err}");
    }
}

#[tokio::test]
async fn the_connection_is_tls_verified_against_the_servers_authority() {
    let db = TestDatabase::create().unwrap();
    let ca = postgres_ca().unwrap();
    let ca = ca.display();
    // verify-full: the chain and the name (the certificate names 127.0.0.1).
    let store = PostgresStore::open(
        &settings(&db.url_with(&format!("sslmode=verify-full&sslrootcert={ca}"))),
        Access::ReadWrite,
    )
    .await
    .unwrap();
    assert!(store.connection_uses_tls().await.unwrap());
    // A name the certificate does not hold: refused by verify-full,
    // accepted by verify-ca (the chain alone).
    let elsewhere = db
        .url_with(&format!("sslrootcert={ca}"))
        .replace("@127.0.0.1:", "@db.invalid:")
        + "&hostaddr=127.0.0.1";
    let refused = PostgresStore::open(
        &settings(&format!("{elsewhere}&sslmode=verify-full")),
        Access::ReadWrite,
    )
    .await;
    assert!(refused.is_err(), "the name must match");
    let chain_only = PostgresStore::open(
        &settings(&format!("{elsewhere}&sslmode=verify-ca")),
        Access::ReadWrite,
    )
    .await
    .unwrap();
    assert!(chain_only.connection_uses_tls().await.unwrap());
    // Another authority: refused.
    let other = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let stranger = params.self_signed(&key).unwrap();
    std::fs::write(other.path().join("ca.pem"), stranger.pem()).unwrap();
    let refused = PostgresStore::open(
        &settings(&db.url_with(&format!(
            "sslmode=verify-full&sslrootcert={}",
            other.path().join("ca.pem").display()
        ))),
        Access::ReadWrite,
    )
    .await;
    assert!(refused.is_err(), "an unknown authority must be refused");
}

#[tokio::test]
async fn rows_read_back_through_the_filters_as_on_sqlite() {
    let (_db, store) = fresh().await;
    store
        .append(vec![Entry {
            row: row("recording.viewed"),
            change: None,
        }])
        .await;
    let rows = store
        .audit_rows(AuditFilter {
            kind_prefix: Some("recording".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_copies_into_postgresql_with_its_chain_and_only_into_an_empty_one() {
    // The previous release's store, upgraded by opening it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shiftkey.db");
    std::fs::write(&path, include_bytes!("fixtures/schema-7.db")).unwrap();
    // What the later versions added: an Alertmanager incident, a legal
    // hold, a heartbeat, an expired request.
    let single = crate::store::open_sqlite(&path, Access::ReadWrite).unwrap();
    apply(
        &single,
        Change::OpenAlertIncident {
            incident: incident("INC-AM"),
            alert_key: "f00d@2026-01-01T00:00:00Z".into(),
        },
    )
    .await
    .unwrap();
    apply(
        &single,
        Change::HoldRecording(Hold {
            session: "s_00000000000000bb".into(),
            reason: "case 12".into(),
            held_by: "local:root".into(),
            held_at: 1_700_000_000,
        }),
    )
    .await
    .unwrap();
    let live = single.session("s_00000000000000aa").await.unwrap().unwrap();
    single
        .heard_from(
            &live.bastion,
            std::slice::from_ref(&live.id),
            live.started_at + 7,
        )
        .await
        .unwrap();
    let overrides = single.current_overrides(0).await.unwrap();
    assert_eq!(overrides.len(), 1);
    // A local user's UI session (by its uid, not an email), one sign-in
    // link used and one not.
    let local = UiSession {
        id_hash: "local-session".into(),
        email: "root".into(),
        local_uid: Some(0),
        groups: vec![],
        csrf: "c".into(),
        created_at: 1_700_000_000,
        expires_at: 4_000_000_000,
        last_seen: 1_700_000_000,
    };
    single.create_ui_session(local.clone()).await.unwrap();
    let link = |hash: &str| UiLink {
        token_hash: hash.into(),
        local_user: "root".into(),
        local_uid: 0,
        created_at: 1_700_000_000,
        expires_at: 4_000_000_000,
    };
    single.create_ui_link(link("used")).await.unwrap();
    single.create_ui_link(link("unused")).await.unwrap();
    assert_eq!(
        single.redeem_ui_link("used", 1_700_000_010).await.unwrap(),
        Redeemed::Now(link("used"))
    );
    drop(single);
    let db = TestDatabase::create().unwrap();
    let target = settings(&db.url());
    let mut seen = Vec::new();
    let copied = crate::store::sqlite_to_postgres(&path, &target, |p| {
        seen.push((p.table.to_owned(), p.copied));
    })
    .await
    .unwrap();
    assert!(
        // The fixture's 12 rows and the two changes above.
        seen.iter().any(|(t, n)| t == "audit" && *n == 14),
        "{seen:?}"
    );
    let counted = crate::store::count_rows(&target).await.unwrap();
    for ((table, copied), (_, there)) in copied.tables.iter().zip(&counted) {
        assert_eq!(copied, there, "{table}");
    }
    let source = crate::store::open_sqlite(&path, Access::ReadOnly).unwrap();
    let copy: Fresh = replica(&db).await;
    let before = crate::audit::verify(source.as_ref(), None).await.unwrap();
    let after = crate::audit::verify(copy.as_ref(), None).await.unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!(
        (before.rows, &before.head_hash),
        (after.rows, &after.head_hash)
    );
    // What the old rows say reads the same, and the store goes on from them.
    assert_eq!(copy.revoked_under_incident("INC-7").await.unwrap(), [2]);
    assert_eq!(copy.search("restart", 10).await.unwrap().len(), 1);
    assert_eq!(copy.current_overrides(0).await.unwrap(), overrides);
    assert_eq!(
        copy.on_call_override(&overrides[0].id)
            .await
            .unwrap()
            .as_ref(),
        overrides.first()
    );
    assert_eq!(
        copy.alert_incident("f00d@2026-01-01T00:00:00Z")
            .await
            .unwrap()
            .map(|i| i.id),
        Some("INC-AM".to_owned())
    );
    let held = copy.session("s_00000000000000bb").await.unwrap().unwrap();
    assert_eq!(held.held.as_deref(), Some("case 12"));
    assert_eq!(
        copy.session(&live.id).await.unwrap().unwrap().last_seen,
        Some(live.started_at + 7)
    );
    assert_eq!(copy.ui_session("local-session").await.unwrap(), Some(local));
    assert_eq!(
        copy.redeem_ui_link("used", 1_700_000_020).await.unwrap(),
        Redeemed::AlreadyUsed {
            link: link("used"),
            used_at: 1_700_000_010
        },
        "a link used before the copy stays used"
    );
    assert_eq!(
        copy.redeem_ui_link("unused", 1_700_000_020).await.unwrap(),
        Redeemed::Now(link("unused"))
    );
    // The hold keeps the recording from retention on the copy too.
    assert!(
        copy.expired_recordings(i64::MAX, 10)
            .await
            .unwrap()
            .iter()
            .all(|s| s.id != held.id)
    );
    let serial = copy.next_serial().await.unwrap();
    assert!(serial > 3, "{serial}");
    let seq = apply(&copy, Change::Issue(cert(serial, None, 9_999_999_999)))
        .await
        .unwrap();
    assert_eq!(seq, before.rows + 1, "the chain continues");
    apply(
        &copy,
        Change::AddOverride(crate::store::StoredOverride {
            id: "ov_00000000beef".into(),
            schedule: "s".into(),
            member: "m".into(),
            start: 0,
            end: 9_999_999_999,
            reason: "r".into(),
            created_by: "c".into(),
            created_at: "t".into(),
        }),
    )
    .await
    .unwrap();
    // A second copy into the same database is refused and changes nothing.
    let again = crate::store::sqlite_to_postgres(&path, &target, |_| {}).await;
    assert!(
        matches!(again, Err(crate::store::CopyError::NotEmpty { .. })),
        "{again:?}"
    );
    assert_eq!(
        crate::audit::verify(copy.as_ref(), None)
            .await
            .unwrap()
            .rows,
        before.rows + 2
    );
}
