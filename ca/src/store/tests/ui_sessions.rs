//! Review UI sessions.

use super::Fresh;
use crate::store::{Redeemed, UiLink, UiSession};

fn ui_session(hash: &str, created_at: i64, expires_at: i64) -> UiSession {
    UiSession {
        id_hash: hash.into(),
        email: "r@example.com".into(),
        local_uid: None,
        groups: vec!["sec".into()],
        csrf: "c".into(),
        created_at,
        expires_at,
        last_seen: created_at,
    }
}

pub(super) async fn sessions_are_kept_by_hash_and_expired_ones_swept(store: Fresh) {
    store
        .create_ui_session(ui_session("a", 100, 200))
        .await
        .unwrap();
    assert_eq!(
        store.ui_session("a").await.unwrap(),
        Some(ui_session("a", 100, 200))
    );
    store.touch_ui_session("a", 150).await.unwrap();
    store.touch_ui_session("a", 120).await.unwrap();
    assert_eq!(
        store.ui_session("a").await.unwrap().unwrap().last_seen,
        150,
        "last_seen never goes back"
    );
    // Creating one after `a` expired sweeps `a` away.
    store
        .create_ui_session(ui_session("b", 300, 400))
        .await
        .unwrap();
    assert_eq!(store.ui_session("a").await.unwrap(), None);
    store.delete_ui_session("b").await.unwrap();
    assert_eq!(store.ui_session("b").await.unwrap(), None);
}

fn link(hash: &str, created_at: i64, expires_at: i64) -> UiLink {
    UiLink {
        token_hash: hash.into(),
        local_user: "root".into(),
        local_uid: 0,
        created_at,
        expires_at,
    }
}

pub(super) async fn a_sign_in_link_is_used_once_and_not_after_expiry(store: Fresh) {
    store.create_ui_link(link("l1", 100, 400)).await.unwrap();
    store.create_ui_link(link("l2", 100, 200)).await.unwrap();
    assert_eq!(
        store.redeem_ui_link("nope", 150).await.unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(
        store.redeem_ui_link("l1", 150).await.unwrap(),
        Redeemed::Now(link("l1", 100, 400))
    );
    assert_eq!(
        store.redeem_ui_link("l1", 160).await.unwrap(),
        Redeemed::AlreadyUsed {
            link: link("l1", 100, 400),
            used_at: 150
        }
    );
    assert_eq!(
        store.redeem_ui_link("l2", 200).await.unwrap(),
        Redeemed::Expired(link("l2", 100, 200))
    );
    // Two uses at once: exactly one wins.
    store.create_ui_link(link("l3", 300, 900)).await.unwrap();
    let (a, b) = tokio::join!(
        store.redeem_ui_link("l3", 310),
        store.redeem_ui_link("l3", 311)
    );
    let won = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|r| matches!(r, Redeemed::Now(_)))
        .count();
    assert_eq!(won, 1);
    // A link a day past its expiry is swept by the next one made.
    store
        .create_ui_link(link("l4", 200 + 86_400, 90_000))
        .await
        .unwrap();
    assert_eq!(
        store.redeem_ui_link("l2", 90_001).await.unwrap(),
        Redeemed::Unknown
    );
}

pub(super) async fn a_local_users_session_keeps_its_uid(store: Fresh) {
    let mut s = ui_session("loc", 100, 200);
    s.email = "root".into();
    s.local_uid = Some(0);
    s.groups = vec![];
    store.create_ui_session(s.clone()).await.unwrap();
    assert_eq!(store.ui_session("loc").await.unwrap(), Some(s));
}
