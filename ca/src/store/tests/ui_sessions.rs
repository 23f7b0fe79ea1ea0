//! Review UI sessions.

use super::Fresh;
use crate::store::UiSession;

fn ui_session(hash: &str, created_at: i64, expires_at: i64) -> UiSession {
    UiSession {
        id_hash: hash.into(),
        email: "r@example.com".into(),
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
