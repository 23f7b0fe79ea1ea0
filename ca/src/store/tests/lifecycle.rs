//! Heartbeats, lost sessions, the size limit, retention and legal holds.

use std::sync::Arc;

use super::sessions::a_seal;
use super::{Fresh, apply, session, start_session};
use crate::store::{Change, Conflict, Error, Hold, SessionStatus};

pub(super) const NO_LIMIT: u64 = u64::MAX;

fn sealed_as(session: &str, status: SessionStatus, lines: &[&str]) -> Change {
    let mut seal = a_seal(session, lines);
    seal.status = status;
    Change::SealRecording(Box::new(seal))
}

fn hold(session: &str) -> Change {
    Change::HoldRecording(Hold {
        session: session.into(),
        reason: "case 12".into(),
        held_by: "local:root".into(),
        held_at: 1,
    })
}

pub(super) async fn uploads_stop_at_the_session_size_limit(store: Fresh) {
    start_session(&store, session("s_1", "db-1:22", 1000)).await;
    store
        .commit_upload("s_1", "1.cast.gz", 0, 60, 100)
        .await
        .unwrap();
    store
        .commit_upload("s_1", "2.cast.gz", 0, 30, 100)
        .await
        .unwrap();
    // All files count: 60 + 30 + 11 > 100.
    assert_eq!(
        store.commit_upload("s_1", "2.cast.gz", 30, 41, 100).await,
        Err(Error::Conflict(Conflict::SessionTooLarge))
    );
    assert_eq!(
        store.commit_upload("s_1", "3.cast.gz", 0, 11, 100).await,
        Err(Error::Conflict(Conflict::SessionTooLarge))
    );
    // Up to the limit exactly.
    store
        .commit_upload("s_1", "2.cast.gz", 30, 40, 100)
        .await
        .unwrap();
    let total: u64 = store
        .uploads("s_1")
        .await
        .unwrap()
        .iter()
        .map(|u| u.length)
        .sum();
    assert_eq!(total, 100);
}

pub(super) async fn heartbeats_keep_sessions_and_name_the_ones_that_are_not_live(store: Fresh) {
    start_session(&store, session("s_1", "db-1:22", 1000)).await;
    let mut other = session("s_2", "db-1:22", 1000);
    other.bastion = "bastion-2".into();
    start_session(&store, other).await;
    start_session(&store, session("s_3", "db-1:22", 1000)).await;
    apply(&store, sealed_as("s_3", SessionStatus::Sealed, &[]))
        .await
        .unwrap();
    let named: Vec<String> = ["s_1", "s_2", "s_3", "s_404", "s_1"]
        .into_iter()
        .map(String::from)
        .collect();
    let not_live = store.heard_from("bastion-1", &named, 1500).await.unwrap();
    assert_eq!(not_live, ["s_2", "s_3", "s_404"]);
    assert_eq!(
        store.session("s_1").await.unwrap().unwrap().last_seen,
        Some(1500)
    );
    assert_eq!(
        store.session("s_2").await.unwrap().unwrap().last_seen,
        None,
        "another bastion's session is not kept alive by this one"
    );
    // A late heartbeat never moves it back.
    store
        .heard_from("bastion-1", &["s_1".into()], 1400)
        .await
        .unwrap();
    assert_eq!(
        store.session("s_1").await.unwrap().unwrap().last_heard(),
        1500
    );
}

pub(super) async fn a_silent_session_is_claimed_once_and_sealed_as_lost(store: Fresh) {
    start_session(&store, session("s_1", "db-1:22", 1000)).await;
    start_session(&store, session("s_2", "db-1:22", 1000)).await;
    start_session(&store, session("s_3", "db-1:22", 1400)).await;
    store
        .commit_upload("s_2", "1.cast.gz", 0, 7, NO_LIMIT)
        .await
        .unwrap();
    store
        .heard_from("bastion-1", &["s_1".into()], 1600)
        .await
        .unwrap();
    let silent: Vec<String> = store
        .silent_sessions(1500, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(silent, ["s_2", "s_3"], "s_1 was heard after the cutoff");
    assert_eq!(
        store.claim_lost("s_1", 1500, 1700).await,
        Err(Error::Conflict(Conflict::SessionHeard))
    );
    // Two CA processes claim the same session at once: one wins.
    let (a, b) = tokio::join!(
        store.claim_lost("s_2", 1500, 1700),
        store.claim_lost("s_2", 1500, 1700)
    );
    let won: Vec<_> = [a, b].into_iter().filter_map(Result::ok).collect();
    assert_eq!(won.len(), 1, "exactly one claim wins");
    assert_eq!(
        won[0][0].length, 7,
        "the claim hands over the committed files"
    );
    // Claimed: no upload lands, and it is no longer silent for anyone.
    assert_eq!(
        store
            .commit_upload("s_2", "1.cast.gz", 7, 9, NO_LIMIT)
            .await,
        Err(Error::Conflict(Conflict::SessionSealing))
    );
    let silent: Vec<String> = store
        .silent_sessions(1500, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(silent, ["s_3"]);
    apply(&store, sealed_as("s_2", SessionStatus::Lost, &["echo hi"]))
        .await
        .unwrap();
    let row = store.session("s_2").await.unwrap().unwrap();
    assert_eq!(row.status, SessionStatus::Lost);
    assert_eq!(store.search("echo hi", 10).await.unwrap().len(), 1);
    // A claim that was never finished (the process died) is taken over once
    // the silence has passed again.
    store.claim_lost("s_3", 1500, 1700).await.unwrap();
    assert_eq!(
        store.claim_lost("s_3", 1600, 1800).await,
        Err(Error::Conflict(Conflict::SessionHeard))
    );
    store.claim_lost("s_3", 1700, 2000).await.unwrap();
}

pub(super) async fn retention_deletes_only_old_unheld_recordings_outside_open_incidents(
    store: Fresh,
) {
    // s_1 under INC-1 (open), s_2 and s_3 under none; a_seal seals at 2001.
    start_session(&store, session("s_1", "db-1:22", 1000)).await;
    for id in ["s_2", "s_3", "s_4"] {
        let mut s = session(id, "db-1:22", 1000);
        s.incident = None;
        start_session(&store, s).await;
    }
    apply(&store, sealed_as("s_1", SessionStatus::Sealed, &["one"]))
        .await
        .unwrap();
    apply(&store, sealed_as("s_2", SessionStatus::Lost, &["two"]))
        .await
        .unwrap();
    apply(&store, sealed_as("s_3", SessionStatus::Sealed, &["three"]))
        .await
        .unwrap();
    apply(&store, hold("s_3")).await.unwrap();
    assert_eq!(
        store.session("s_3").await.unwrap().unwrap().held.as_deref(),
        Some("case 12")
    );
    let expired = |cutoff| {
        let store = Arc::clone(&store);
        async move {
            store
                .expired_recordings(cutoff, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(expired(2000).await.is_empty(), "sealed after the cutoff");
    assert_eq!(
        expired(3000).await,
        ["s_2"],
        "s_1: open incident, s_3: held, s_4: live"
    );
    let delete = |session: &str, cutoff| Change::DeleteRecording {
        session: session.into(),
        cutoff,
        at: 3000,
    };
    assert_eq!(
        apply(&store, delete("s_3", 3000)).await,
        Err(Error::Conflict(Conflict::RecordingKept))
    );
    assert_eq!(
        apply(&store, delete("s_1", 3000)).await,
        Err(Error::Conflict(Conflict::RecordingKept))
    );
    assert_eq!(
        apply(&store, delete("s_2", 2000)).await,
        Err(Error::Conflict(Conflict::RecordingKept)),
        "too young for that cutoff"
    );
    store
        .commit_upload("s_4", "1.cast.gz", 0, 1, NO_LIMIT)
        .await
        .unwrap();
    apply(&store, delete("s_2", 3000)).await.unwrap();
    let row = store.session("s_2").await.unwrap().unwrap();
    assert_eq!(row.recording_deleted_at, Some(3000));
    assert_eq!(row.status, SessionStatus::Lost, "the row stays");
    assert!(
        store.stored_seal("s_2").await.unwrap().is_some(),
        "the seal stays"
    );
    assert_eq!(store.recording_files("s_2").await.unwrap().len(), 1);
    assert!(store.search("two", 10).await.unwrap().is_empty());
    assert_eq!(store.search("three", 10).await.unwrap().len(), 1);
    assert_eq!(
        apply(&store, delete("s_2", 3000)).await,
        Err(Error::Conflict(Conflict::RecordingKept)),
        "deleted once"
    );
    // The bytes go after the commit, and may be retried.
    assert_eq!(store.recordings_to_purge(10).await.unwrap(), ["s_2"]);
    store.note_bytes_deleted("s_2", 3001).await.unwrap();
    assert!(store.recordings_to_purge(10).await.unwrap().is_empty());
    // Holds: not on what is gone, nor on what does not exist; released once.
    assert_eq!(
        apply(&store, hold("s_2")).await,
        Err(Error::Conflict(Conflict::RecordingDeleted))
    );
    assert_eq!(
        apply(&store, hold("s_404")).await,
        Err(Error::Conflict(Conflict::NoSuchSession))
    );
    let release = |s: &str| Change::ReleaseHold { session: s.into() };
    apply(&store, release("s_3")).await.unwrap();
    assert_eq!(
        apply(&store, release("s_3")).await,
        Err(Error::Conflict(Conflict::NotHeld))
    );
    assert_eq!(expired(3000).await, ["s_3"]);
    // Resolving the incident lets retention have s_1 too.
    apply(
        &store,
        Change::ResolveIncident {
            id: "INC-1".into(),
            by: "local:root".into(),
            at: "2026-11-25T01:00:00Z".into(),
            now: 3000,
        },
    )
    .await
    .unwrap();
    assert_eq!(expired(3000).await, ["s_1", "s_3"]);
}
