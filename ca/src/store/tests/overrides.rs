//! On-call overrides: listed while in force, found by ID, shortened and
//! deleted only as they were read.

use super::{Fresh, apply};
use crate::store::{Change, Conflict, Error, StoredOverride};

fn on_call(id: &str, start: i64, end: i64) -> StoredOverride {
    StoredOverride {
        id: id.into(),
        schedule: "primary".into(),
        member: "user:b@example.com".into(),
        start,
        end,
        reason: "cover".into(),
        created_by: "user:a@example.com".into(),
        created_at: "2026-11-25T00:00:00Z".into(),
    }
}

pub(super) async fn overrides_shorten_and_delete_as_they_were_read(store: Fresh) {
    apply(&store, Change::AddOverride(on_call("ov_2", 200, 400)))
        .await
        .unwrap();
    apply(&store, Change::AddOverride(on_call("ov_1", 100, 300)))
        .await
        .unwrap();
    let ids = |list: Vec<StoredOverride>| list.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.current_overrides(0).await.unwrap()),
        ["ov_1", "ov_2"]
    );
    assert_eq!(ids(store.current_overrides(300).await.unwrap()), ["ov_2"]);
    assert_eq!(
        store.on_call_override("ov_1").await.unwrap(),
        Some(on_call("ov_1", 100, 300)),
        "found by ID, ended or not"
    );
    assert_eq!(store.on_call_override("ov_9").await.unwrap(), None);

    let changed = Err(Error::Conflict(Conflict::OverrideChanged));
    let shorten = |expected_end, end| Change::ShortenOverride {
        id: "ov_2".into(),
        expected_end,
        end,
    };
    assert_eq!(
        apply(&store, shorten(999, 350)).await,
        changed,
        "read stale"
    );
    assert_eq!(
        apply(&store, shorten(400, 200)).await,
        changed,
        "not after its start"
    );
    apply(&store, shorten(400, 350)).await.unwrap();
    assert_eq!(
        store.on_call_override("ov_2").await.unwrap().unwrap().end,
        350
    );

    let delete = |expected_end| Change::DeleteOverride {
        id: "ov_2".into(),
        expected_end,
    };
    assert_eq!(apply(&store, delete(400)).await, changed, "shortened since");
    apply(&store, delete(350)).await.unwrap();
    assert_eq!(apply(&store, delete(350)).await, changed, "once");
    assert_eq!(store.on_call_override("ov_2").await.unwrap(), None);
    assert_eq!(ids(store.current_overrides(0).await.unwrap()), ["ov_1"]);
}
