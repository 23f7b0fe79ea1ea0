//! The audit log: the chain, the group commit's per-entry answers, reads,
//! the notifier.

use super::{Fresh, apply, cert, entry, row};
use crate::store::{AuditFilter, Change, Conflict, Entry, Error, GENESIS_HASH};

pub(super) async fn appends_chain_gaplessly_under_concurrency(store: Fresh) {
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let batch: Vec<Entry> = (0..5)
                .map(|j| Entry {
                    row: row(&format!("test.{i}.{j}")),
                    change: None,
                })
                .collect();
            store.append(batch).await
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        for result in task.await.unwrap() {
            seqs.push(result.unwrap());
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "unique and gapless");
    let rows = store
        .audit_rows(AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut prev = GENESIS_HASH.to_owned();
    for r in &rows {
        assert_eq!(
            r.prev_hash, prev,
            "row {} chains from the one before",
            r.seq
        );
        assert_eq!(r.compute_hash(), r.hash, "row {} hashes its fields", r.seq);
        prev = r.hash.clone();
    }
}

pub(super) async fn a_conflicting_entry_leaves_its_neighbours_and_takes_no_number(store: Fresh) {
    // The middle one issues under an incident that does not exist.
    let batch = vec![
        entry(Change::Issue(cert(1, None, 2_000))),
        entry(Change::Issue(cert(2, Some("INC-404"), 2_000))),
        entry(Change::Issue(cert(3, None, 2_000))),
    ];
    let results = store.append(batch).await;
    assert_eq!(results[0], Ok(1));
    assert_eq!(results[1], Err(Error::Conflict(Conflict::IncidentNotOpen)));
    assert_eq!(results[2], Ok(2), "the refused entry took no number");
    assert!(
        store.user_certificate(2).await.unwrap().is_none(),
        "nor a row"
    );
    assert!(store.user_certificate(3).await.unwrap().is_some());
    // A row that violates the store's own rules (a serial twice) fails alone too.
    let results = store
        .append(vec![
            entry(Change::Issue(cert(1, None, 2_000))),
            entry(Change::Issue(cert(4, None, 2_000))),
        ])
        .await;
    assert!(matches!(results[0], Err(Error::Failed(_))), "{results:?}");
    assert_eq!(results[1], Ok(3));
}

pub(super) async fn rows_are_filtered_and_paged(store: Fresh) {
    for kind in [
        "recording.viewed",
        "recording.exported",
        "recordings.x",
        "ui.signed_in",
    ] {
        store
            .append(vec![Entry {
                row: row(kind),
                change: None,
            }])
            .await;
    }
    let kinds = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit_rows(AuditFilter {
                    limit: if filter.limit == 0 { 100 } else { filter.limit },
                    ..filter
                })
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.kind)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        kinds(AuditFilter {
            kind_prefix: Some("recording".into()),
            ..AuditFilter::default()
        })
        .await,
        ["recording.viewed", "recording.exported"],
        "a prefix is a whole dotted part"
    );
    assert_eq!(
        kinds(AuditFilter {
            kinds: vec!["ui.signed_in".into(), "recordings.x".into()],
            after: Some(1),
            ..AuditFilter::default()
        })
        .await,
        ["recordings.x", "ui.signed_in"]
    );
    assert_eq!(
        kinds(AuditFilter {
            newest_first: true,
            before: Some(4),
            limit: 2,
            ..AuditFilter::default()
        })
        .await,
        ["recordings.x", "recording.exported"]
    );
    assert!(
        kinds(AuditFilter {
            actor: Some("nobody".into()),
            ..AuditFilter::default()
        })
        .await
        .is_empty()
    );
    let all = store
        .audit_rows(AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let first_ts = all[0].ts.clone();
    assert_eq!(
        kinds(AuditFilter {
            until_ts: Some(first_ts.clone()),
            ..AuditFilter::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        kinds(AuditFilter {
            from_ts: Some(first_ts),
            ..AuditFilter::default()
        })
        .await
        .len(),
        4
    );
}

pub(super) async fn the_notifier_says_when_the_log_grows(store: Fresh) {
    let mut tip = store.audit_tip();
    let before = *tip.borrow_and_update();
    let seq = apply(
        &store,
        Change::Unlock {
            identities: vec!["user:a@example.com".into()],
        },
    )
    .await
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), tip.changed())
        .await
        .expect("woken within the notice delay")
        .unwrap();
    assert_eq!(*tip.borrow(), seq);
    assert!(seq > before);
}
