//! Hosts, join tokens and host certificates.

use super::{Fresh, apply};
use crate::store::{Change, Conflict, Error, HostCertificate, StoredHost, StoredToken};

fn token(hash: &str, expires_at: i64) -> StoredToken {
    StoredToken {
        id: "jt_000000000001".into(),
        token_hash: hash.into(),
        name: "db-1".into(),
        kind: "host".into(),
        principals: vec!["db-1.example.com".into()],
        created_by: "local:root".into(),
        created_at: "x".into(),
        expires_at,
        used_at: None,
    }
}

fn host(fingerprint: &str) -> StoredHost {
    StoredHost {
        name: "db-1".into(),
        kind: "host".into(),
        principals: vec!["db-1.example.com".into()],
        key_fingerprint: fingerprint.into(),
        enrolled_at: "2026-11-25T00:00:00Z".into(),
        renewed_at: None,
    }
}

fn host_cert(serial: u64, fingerprint: &str) -> HostCertificate {
    HostCertificate {
        serial,
        name: "db-1".into(),
        key_fingerprint: fingerprint.into(),
        valid_after: 0,
        valid_before: 9_999_999_999,
        issued_at: "2026-11-25T00:00:00Z".into(),
        certificate: "ssh-ed25519-cert-v01@openssh.com AAAA".into(),
    }
}

fn enroll(hash: &str, now: i64, serial: u64) -> Change {
    Change::Enroll {
        token_hash: hash.into(),
        now,
        host: host("SHA256:k1"),
        certificate: host_cert(serial, "SHA256:k1"),
    }
}

pub(super) async fn a_join_token_is_spent_once(store: Fresh) {
    apply(&store, Change::CreateJoinToken(token("h1", 1_000)))
        .await
        .unwrap();
    assert_eq!(
        apply(&store, enroll("h1", 1_000, 1)).await,
        Err(Error::Conflict(Conflict::TokenSpent)),
        "expired at its own second"
    );
    apply(&store, enroll("h1", 999, 1)).await.unwrap();
    assert_eq!(
        apply(&store, enroll("h1", 999, 2)).await,
        Err(Error::Conflict(Conflict::TokenSpent)),
        "a second host with the same token"
    );
    assert!(
        store
            .token_by_hash("h1")
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_some()
    );
    assert!(store.token_by_hash("nope").await.unwrap().is_none());
    assert_eq!(store.hosts().await.unwrap(), [host("SHA256:k1")]);
}

pub(super) async fn renewal_moves_the_host_to_its_new_key(store: Fresh) {
    apply(&store, Change::CreateJoinToken(token("h2", 5_000)))
        .await
        .unwrap();
    apply(&store, enroll("h2", 1, 1)).await.unwrap();
    assert!(
        store
            .host_for_certificate(1, "SHA256:k1")
            .await
            .unwrap()
            .is_some()
    );
    let mut renewed = host_cert(2, "SHA256:k2");
    renewed.issued_at = "2026-11-26T00:00:00Z".into();
    apply(&store, Change::RenewHost(renewed)).await.unwrap();
    assert!(
        store
            .host_for_certificate(1, "SHA256:k1")
            .await
            .unwrap()
            .is_none(),
        "the old key no longer speaks for the host"
    );
    let found = store
        .host_for_certificate(2, "SHA256:k2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.renewed_at.as_deref(), Some("2026-11-26T00:00:00Z"));
    // A certificate presented under another name changes no identity.
    apply(
        &store,
        Change::RecordHostCertificate(host_cert(3, "SHA256:k9")),
    )
    .await
    .unwrap();
    assert!(
        store
            .host_for_certificate(3, "SHA256:k9")
            .await
            .unwrap()
            .is_none()
    );
}
