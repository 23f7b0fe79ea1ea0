//! CA keys under rotation, and hosts' CA key reports.

use super::{Fresh, apply};
use crate::store::{
    Change, Conflict, Error, HostCaReport, KeyPhase, KeyState, StoredCaKey, StoredHost,
};

fn key(fingerprint: &str, state: KeyState) -> StoredCaKey {
    StoredCaKey {
        fingerprint: fingerprint.into(),
        kind: "user".into(),
        state,
        public_line: format!("ssh-ed25519 {fingerprint}"),
        location: "file".into(),
        created_at: 100,
        activated_at: None,
        retired_at: None,
        revoked: false,
    }
}

fn changed<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Conflict(Conflict::KeyStateChanged)))
}

pub(super) async fn phases_move_keys_once_and_the_generation_grows(store: Fresh) {
    assert!(store.ca_keys().await.unwrap().is_empty());
    let g0 = store.ca_key_generation().await.unwrap();
    let rotate = |current: &str, next: &str| {
        Change::KeyPhase(KeyPhase::Rotate {
            current: Box::new(key(current, KeyState::Active)),
            next: Box::new(key(next, KeyState::Next)),
        })
    };
    apply(&store, rotate("SHA256:a", "SHA256:b")).await.unwrap();
    let g1 = store.ca_key_generation().await.unwrap();
    assert!(g1 > g0);
    let states: Vec<(String, KeyState)> = store
        .ca_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.fingerprint, k.state))
        .collect();
    assert_eq!(
        states,
        [
            ("SHA256:a".to_owned(), KeyState::Active),
            ("SHA256:b".to_owned(), KeyState::Next)
        ]
    );
    // A second rotation while one is under way, or naming another active
    // key, is refused and changes nothing.
    assert!(changed(apply(&store, rotate("SHA256:a", "SHA256:c")).await));
    assert!(changed(apply(&store, rotate("SHA256:x", "SHA256:c")).await));
    // Retiring the active key is refused: only a previous key retires.
    let retire = |fp: &str, revoked| {
        Change::KeyPhase(KeyPhase::Retire {
            fingerprint: fp.into(),
            at: 300,
            revoked,
        })
    };
    assert!(changed(apply(&store, retire("SHA256:a", false)).await));
    let activate = Change::KeyPhase(KeyPhase::Activate {
        kind: "user".into(),
        active: "SHA256:a".into(),
        next: "SHA256:b".into(),
        at: 200,
    });
    apply(&store, activate.clone()).await.unwrap();
    // Two operators activating at once: the second finds it done.
    assert!(changed(apply(&store, activate).await));
    let g2 = store.ca_key_generation().await.unwrap();
    assert!(g2 > g1);
    apply(&store, retire("SHA256:a", true)).await.unwrap();
    assert!(changed(apply(&store, retire("SHA256:a", true)).await));
    assert!(store.ca_key_generation().await.unwrap() > g2);
    let keys = store.ca_keys().await.unwrap();
    let a = keys.iter().find(|k| k.fingerprint == "SHA256:a").unwrap();
    assert_eq!(
        (a.state, a.retired_at, a.revoked),
        (KeyState::Retired, Some(300), true)
    );
    let b = keys.iter().find(|k| k.fingerprint == "SHA256:b").unwrap();
    assert_eq!((b.state, b.activated_at), (KeyState::Active, Some(200)));
    // The next rotation starts from the new active key.
    apply(&store, rotate("SHA256:b", "SHA256:c")).await.unwrap();
}

pub(super) async fn a_hosts_report_replaces_its_last_and_unknown_hosts_are_ignored(store: Fresh) {
    let report = |name: &str, fps: &[&str], at| HostCaReport {
        name: name.into(),
        fingerprints: fps.iter().map(|f| (*f).to_owned()).collect(),
        reported_at: at,
    };
    store
        .report_ca_keys(report("ghost", &["SHA256:a"], 1))
        .await
        .unwrap();
    assert!(store.host_ca_reports().await.unwrap().is_empty());
    let token = crate::store::StoredToken {
        id: "jt_1".into(),
        token_hash: "h".into(),
        name: "db-1".into(),
        kind: "host".into(),
        principals: vec!["db-1".into()],
        created_by: "local:root".into(),
        created_at: "x".into(),
        expires_at: 9_999_999_999,
        used_at: None,
    };
    apply(&store, Change::CreateJoinToken(token)).await.unwrap();
    apply(
        &store,
        Change::Enroll {
            token_hash: "h".into(),
            now: 1,
            host: StoredHost {
                name: "db-1".into(),
                kind: "host".into(),
                principals: vec!["db-1".into()],
                key_fingerprint: "SHA256:h".into(),
                enrolled_at: "x".into(),
                renewed_at: None,
            },
            certificate: crate::store::HostCertificate {
                serial: 1,
                name: "db-1".into(),
                key_fingerprint: "SHA256:h".into(),
                valid_after: 0,
                valid_before: 9_999_999_999,
                issued_at: "x".into(),
                certificate: "host-cert-line".into(),
            },
        },
    )
    .await
    .unwrap();
    store
        .report_ca_keys(report("db-1", &["SHA256:a"], 5))
        .await
        .unwrap();
    store
        .report_ca_keys(report("db-1", &["SHA256:a", "SHA256:b"], 6))
        .await
        .unwrap();
    assert_eq!(
        store.host_ca_reports().await.unwrap(),
        [report("db-1", &["SHA256:a", "SHA256:b"], 6)]
    );
    assert_eq!(
        store.certificates_valid_at(10).await.unwrap(),
        ["host-cert-line"]
    );
    assert!(
        store
            .certificates_valid_at(9_999_999_999)
            .await
            .unwrap()
            .is_empty()
    );
}
