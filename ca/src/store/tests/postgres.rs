//! The PostgreSQL backend: every behaviour test, each on a database of its
//! own in the cluster `scripts/services` started, and what only a shared
//! database has — several replicas writing one chain, handing out serials
//! and racing over incidents; notices between them; migrations run by one
//! replica at a time; the triggers; TLS to the server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shiftkey_tests::services::{TestDatabase, postgres_ca};

use super::{Fresh, apply, cert, entry, incident, row};
use crate::store::postgres::{PostgresStore, Settings};
use crate::store::{Access, AuditFilter, Change, Conflict, Entry, Error, OpenError, Selector};

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
    assert_eq!(versions, "1,2", "each migration once");
    db.psql("INSERT INTO schema_migrations (version) VALUES (99)")
        .unwrap();
    for access in [Access::ReadWrite, Access::ReadOnly] {
        assert!(matches!(
            PostgresStore::open(&settings(&url), access).await,
            Err(OpenError::TooNew { found: 99, .. })
        ));
    }
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
    drop(crate::store::open_sqlite(&path, Access::ReadWrite).unwrap());
    let db = TestDatabase::create().unwrap();
    let target = settings(&db.url());
    let mut seen = Vec::new();
    let copied = crate::store::sqlite_to_postgres(&path, &target, |p| {
        seen.push((p.table.to_owned(), p.copied));
    })
    .await
    .unwrap();
    assert!(
        seen.iter().any(|(t, n)| t == "audit" && *n == 12),
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
    let serial = copy.next_serial().await.unwrap();
    assert!(serial > 3, "{serial}");
    let seq = apply(&copy, Change::Issue(cert(serial, None, 9_999_999_999)))
        .await
        .unwrap();
    assert_eq!(seq, before.rows + 1, "the chain continues");
    apply(
        &copy,
        Change::AddOverride(crate::store::StoredOverride {
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
