//! Serials, certificates, incidents and revocations.

use std::collections::BTreeSet;

use super::{Fresh, apply, cert, incident};
use crate::store::{Change, Conflict, Error, Selector};

pub(super) async fn serials_are_never_handed_out_twice(store: Fresh) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..100 {
                got.push(store.next_serial().await.unwrap());
            }
            got
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for serial in task.await.unwrap() {
            assert!(serial > 0);
            assert!(all.insert(serial), "serial {serial} twice");
        }
    }
    assert_eq!(all.len(), 800);
}

pub(super) async fn resolving_revokes_live_certificates_and_refuses_new_ones(store: Fresh) {
    // Unknown incident: refused.
    assert_eq!(
        apply(&store, Change::Issue(cert(1, Some("INC-1"), 2_000))).await,
        Err(Error::Conflict(Conflict::IncidentNotOpen))
    );
    apply(&store, Change::OpenIncident(incident("INC-1")))
        .await
        .unwrap();
    apply(&store, Change::Issue(cert(1, Some("INC-1"), 2_000)))
        .await
        .unwrap();
    apply(&store, Change::Issue(cert(2, Some("INC-1"), 500)))
        .await
        .unwrap();
    apply(&store, Change::Issue(cert(3, None, 2_000)))
        .await
        .unwrap();
    let resolve = || Change::ResolveIncident {
        id: "INC-1".into(),
        by: "local:root".into(),
        at: "2026-11-25T01:00:00Z".into(),
        now: 1_000,
    };
    apply(&store, resolve()).await.unwrap();
    assert_eq!(
        store.revoked_under_incident("INC-1").await.unwrap(),
        vec![1],
        "only the live one"
    );
    assert_eq!(
        apply(&store, resolve()).await,
        Err(Error::Conflict(Conflict::IncidentNotOpen)),
        "a second resolution is refused"
    );
    assert_eq!(
        apply(&store, Change::Issue(cert(4, Some("INC-1"), 2_000))).await,
        Err(Error::Conflict(Conflict::IncidentNotOpen)),
        "after resolution"
    );
    let found = store.incident("INC-1").await.unwrap().unwrap();
    assert_eq!(
        (found.status.as_str(), found.resolved_by.as_deref()),
        ("resolved", Some("local:root"))
    );
    let listed = store
        .certificates_under_incident("INC-1", 10)
        .await
        .unwrap();
    let state: Vec<_> = listed.iter().map(|c| (c.serial, c.revoked)).collect();
    assert_eq!(state, [(1, true), (2, false)]);
    assert!(store.incidents(true).await.unwrap().is_empty());
    assert_eq!(store.incidents(false).await.unwrap().len(), 1);
}

pub(super) async fn an_incident_opens_once(store: Fresh) {
    apply(&store, Change::OpenIncident(incident("INC-2")))
        .await
        .unwrap();
    assert_eq!(
        apply(&store, Change::OpenIncident(incident("INC-2"))).await,
        Err(Error::Conflict(Conflict::IncidentExists))
    );
}

pub(super) async fn selectors_name_live_unrevoked_certificates(store: Fresh) {
    for (serial, before) in [(1, 2_000), (2, 500), (3, 2_000)] {
        apply(&store, Change::Issue(cert(serial, None, before)))
            .await
            .unwrap();
    }
    let live = |selector: Selector| {
        let store = store.clone();
        async move { store.live_serials(selector, 1_000).await.unwrap() }
    };
    assert_eq!(
        live(Selector::Identity("user:a@example.com".into())).await,
        [1, 3]
    );
    assert_eq!(
        live(Selector::Serial(2)).await,
        Vec::<u64>::new(),
        "expired"
    );
    assert_eq!(live(Selector::Request("r_3".into())).await, [3]);
    assert_eq!(
        live(Selector::KeyId("a role=r req=r_1 serial=1".into())).await,
        [1]
    );
    apply(
        &store,
        Change::Revoke {
            serials: vec![1],
            by: "local:root".into(),
            reason: "stolen".into(),
            at: "x".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        live(Selector::Identity("user:a@example.com".into())).await,
        [3],
        "revoked ones are not live"
    );
    let known = store.user_certificate(1).await.unwrap().unwrap();
    assert!(known.revoked);
    assert_eq!(known.key_fingerprint, "SHA256:1");
}

pub(super) async fn locking_revokes_and_unlocking_keeps_revocations(store: Fresh) {
    apply(&store, Change::Issue(cert(1, None, 2_000)))
        .await
        .unwrap();
    let mut other = cert(2, None, 2_000);
    other.identity = "local:alice".into();
    apply(&store, Change::Issue(other)).await.unwrap();
    apply(&store, Change::Issue(cert_of(3, "local:bob")))
        .await
        .unwrap();
    let identity = "user:a@example.com".to_owned();
    // One person, two identities: both locked, both revoked, in one commit.
    apply(
        &store,
        Change::Lock {
            identities: vec![identity.clone(), "local:alice".into()],
            by: "local:root".into(),
            at: "x".into(),
            reason: "left".into(),
            now: 1_000,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        store.lock_of(&identity).await.unwrap().as_deref(),
        Some("left")
    );
    assert_eq!(
        store.lock_of("local:alice").await.unwrap().as_deref(),
        Some("left")
    );
    assert!(store.user_certificate(1).await.unwrap().unwrap().revoked);
    assert!(store.user_certificate(2).await.unwrap().unwrap().revoked);
    assert!(!store.user_certificate(3).await.unwrap().unwrap().revoked);
    assert_eq!(store.lock_of("local:bob").await.unwrap(), None);
    apply(
        &store,
        Change::Unlock {
            identities: vec![identity.clone(), "local:alice".into()],
        },
    )
    .await
    .unwrap();
    assert_eq!(store.lock_of(&identity).await.unwrap(), None);
    assert_eq!(store.lock_of("local:alice").await.unwrap(), None);
    assert!(
        store.user_certificate(1).await.unwrap().unwrap().revoked,
        "revocations are permanent"
    );
}

pub(super) async fn the_krl_lists_live_revocations_and_moves_its_version(store: Fresh) {
    let now = 100_000;
    apply(&store, Change::Issue(cert(1, None, now + 10)))
        .await
        .unwrap();
    // Expired 30 minutes ago: still listed (hosts' clocks may run behind).
    apply(&store, Change::Issue(cert(2, None, now - 1_800)))
        .await
        .unwrap();
    // Expired two hours ago: no longer needed in the KRL.
    apply(&store, Change::Issue(cert(3, None, now - 7_200)))
        .await
        .unwrap();
    let before = store.revocations(now).await.unwrap();
    apply(
        &store,
        Change::Revoke {
            serials: vec![1, 2, 3],
            by: "local:root".into(),
            reason: "r".into(),
            at: "x".into(),
        },
    )
    .await
    .unwrap();
    let after = store.revocations(now).await.unwrap();
    assert_eq!(after.live_serials, [1, 2]);
    assert_ne!(after.version, before.version);
}

fn cert_of(serial: u64, identity: &str) -> crate::store::IssuedCertificate {
    let mut c = cert(serial, None, 2_000);
    c.identity = identity.into();
    c
}

pub(super) async fn an_alert_incident_is_found_by_its_firing(store: Fresh) {
    apply(
        &store,
        Change::OpenAlertIncident {
            incident: incident("AM-1"),
            alert_key: "abc@2026-11-25T00:00:00Z".into(),
        },
    )
    .await
    .unwrap();
    apply(&store, Change::OpenIncident(incident("INC-1")))
        .await
        .unwrap();
    let found = store
        .alert_incident("abc@2026-11-25T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(found.map(|i| i.id).as_deref(), Some("AM-1"));
    assert_eq!(
        store
            .alert_incident("abc@2026-11-25T01:00:00Z")
            .await
            .unwrap(),
        None,
        "another firing of the same alert"
    );
    assert_eq!(
        store.alert_key_of("AM-1").await.unwrap().as_deref(),
        Some("abc@2026-11-25T00:00:00Z")
    );
    assert_eq!(store.alert_key_of("INC-1").await.unwrap(), None);
    assert_eq!(store.alert_key_of("INC-9").await.unwrap(), None);
    assert_eq!(
        apply(
            &store,
            Change::OpenAlertIncident {
                incident: incident("AM-1"),
                alert_key: "abc@2026-11-25T02:00:00Z".into(),
            }
        )
        .await,
        Err(Error::Conflict(Conflict::IncidentExists))
    );
}
