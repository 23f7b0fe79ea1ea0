//! Sessions, recording upload state, seals and the search index.

use shiftkey_wire::RecordingFile;

use super::lifecycle::NO_LIMIT;
use super::{Fresh, apply, session, start_session};
use crate::store::{
    Change, Conflict, Error, IndexLine, RecordingRead, Seal, SessionFilter, SessionStatus, Upload,
};

pub(super) fn a_seal(session: &str, lines: &[&str]) -> Seal {
    Seal {
        session: session.into(),
        ended_at: 2000,
        exit_status: Some(0),
        end_reason: "client closed".into(),
        status: SessionStatus::Sealed,
        manifest: "{}".into(),
        digest: "d".into(),
        signature: "s".into(),
        problems: vec![],
        claims: "c".into(),
        sealed_at: 2001,
        files: vec![RecordingFile {
            name: "0.cast.gz".into(),
            kind: "shell".into(),
            command: None,
            bytes: 10,
            sha256: "ab".into(),
        }],
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, l)| IndexLine {
                channel: 0,
                seconds: i as f64 + 0.5,
                line: (*l).into(),
                source: "input",
            })
            .collect(),
    }
}

pub(super) async fn sealing_is_once_and_search_finds_substrings(store: Fresh) {
    start_session(&store, session("s_1", "db-1.example.com:22", 1000)).await;
    start_session(&store, session("s_2", "db-10.example.com:22", 1100)).await;
    let seal = |s: Seal| Change::SealRecording(Box::new(s));
    apply(
        &store,
        seal(a_seal("s_1", &["sudo systemctl restart postgres", "ls"])),
    )
    .await
    .unwrap();
    assert_eq!(
        apply(&store, seal(a_seal("s_1", &[]))).await,
        Err(Error::Conflict(Conflict::SessionNotLive))
    );
    let row = store.session("s_1").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.ended_at, row.exit_status),
        (SessionStatus::Sealed, Some(2000), Some(0))
    );
    assert_eq!(store.recording_files("s_1").await.unwrap().len(), 1);
    assert_eq!(store.stored_seal("s_1").await.unwrap().unwrap().digest, "d");

    let found = store.search("RESTART post", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, "sudo systemctl restart postgres");
    assert_eq!(found[0].offset_seconds, 0.5);
    assert_eq!(found[0].target, "db-1.example.com:22");
    assert_eq!(store.search("ls", 10).await.unwrap().len(), 1, "short text");
    assert!(store.search("50%", 10).await.unwrap().is_empty());
    assert!(store.search("%", 10).await.unwrap().is_empty(), "literal %");
}

pub(super) async fn filters_match_hosts_with_or_without_port(store: Fresh) {
    start_session(&store, session("s_1", "db-1.example.com:22", 1000)).await;
    start_session(&store, session("s_2", "db-10.example.com:22", 1100)).await;
    let ids = |filter: SessionFilter| {
        let store = store.clone();
        async move {
            let limit = if filter.limit == 0 { 10 } else { filter.limit };
            store
                .sessions(SessionFilter { limit, ..filter })
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(SessionFilter::default()).await, ["s_2", "s_1"]);
    let host = |h: &str| SessionFilter {
        host: Some(h.into()),
        ..SessionFilter::default()
    };
    assert_eq!(ids(host("db-1.example.com")).await, ["s_1"]);
    assert_eq!(ids(host("db-1.example.com:22")).await, ["s_1"]);
    assert!(ids(host("db-1")).await.is_empty());
    assert_eq!(
        ids(SessionFilter {
            since: Some(1050),
            ..SessionFilter::default()
        })
        .await,
        ["s_2"]
    );
    assert_eq!(
        ids(SessionFilter {
            identity: Some("USER:alice@example.com".into()),
            status: Some(SessionStatus::Live),
            incident: Some("INC-1".into()),
            role: Some("shell".into()),
            ..SessionFilter::default()
        })
        .await,
        ["s_2", "s_1"]
    );
    assert_eq!(
        ids(SessionFilter {
            limit: 1,
            ..SessionFilter::default()
        })
        .await,
        ["s_2"]
    );
}

pub(super) async fn uploads_move_only_from_the_length_they_saw(store: Fresh) {
    start_session(&store, session("s_1", "h:22", 1000)).await;
    store
        .commit_upload("s_1", "0.cast.gz", 0, 10, NO_LIMIT)
        .await
        .unwrap();
    // Another upload that read the length before the first landed.
    assert_eq!(
        store
            .commit_upload("s_1", "0.cast.gz", 0, 12, NO_LIMIT)
            .await,
        Err(Error::Conflict(Conflict::UploadMoved))
    );
    assert_eq!(
        store
            .commit_upload("s_1", "0.cast.gz", 5, 12, NO_LIMIT)
            .await,
        Err(Error::Conflict(Conflict::UploadMoved))
    );
    store
        .commit_upload("s_1", "0.cast.gz", 10, 15, NO_LIMIT)
        .await
        .unwrap();
    store
        .commit_upload("s_1", "10.cast.gz", 0, 1, NO_LIMIT)
        .await
        .unwrap();
    store
        .commit_upload("s_1", "2.sftp.jsonl.gz", 0, 3, NO_LIMIT)
        .await
        .unwrap();
    assert_eq!(
        store.uploads("s_1").await.unwrap(),
        [
            Upload {
                name: "0.cast.gz".into(),
                length: 15
            },
            Upload {
                name: "2.sftp.jsonl.gz".into(),
                length: 3
            },
            Upload {
                name: "10.cast.gz".into(),
                length: 1
            },
        ],
        "in channel order"
    );
    assert_eq!(
        store
            .commit_upload("s_404", "0.cast.gz", 0, 1, NO_LIMIT)
            .await,
        Err(Error::Conflict(Conflict::SessionNotLive))
    );
}

pub(super) async fn no_upload_lands_once_the_seal_starts(store: Fresh) {
    start_session(&store, session("s_1", "h:22", 1000)).await;
    store
        .commit_upload("s_1", "0.cast.gz", 0, 10, NO_LIMIT)
        .await
        .unwrap();
    let files = store.begin_seal("s_1", 2000).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        store
            .commit_upload("s_1", "0.cast.gz", 10, 20, NO_LIMIT)
            .await,
        Err(Error::Conflict(Conflict::SessionSealing))
    );
    assert_eq!(
        store.begin_seal("s_1", 2001).await.unwrap(),
        files,
        "a seal that did not finish may start again"
    );
    store.abort_seal("s_1").await.unwrap();
    store
        .commit_upload("s_1", "0.cast.gz", 10, 20, NO_LIMIT)
        .await
        .unwrap();
    store.begin_seal("s_1", 2002).await.unwrap();
    apply(&store, Change::SealRecording(Box::new(a_seal("s_1", &[]))))
        .await
        .unwrap();
    assert_eq!(
        store.begin_seal("s_1", 2003).await,
        Err(Error::Conflict(Conflict::SessionNotLive))
    );
    assert_eq!(
        store
            .commit_upload("s_1", "0.cast.gz", 20, 30, NO_LIMIT)
            .await,
        Err(Error::Conflict(Conflict::SessionNotLive))
    );
}

pub(super) async fn reads_are_remembered_per_reviewer_purpose_and_file(store: Fresh) {
    start_session(&store, session("s_1", "h:22", 1000)).await;
    let read = |file: &str, at: i64| RecordingRead {
        reviewer: "user:r@example.com".into(),
        purpose: "play".into(),
        session: "s_1".into(),
        file: file.into(),
        audited_at: at,
    };
    assert_eq!(
        store.read_audited_at(&read("0.cast.gz", 0)).await.unwrap(),
        None
    );
    apply(&store, Change::NoteRecordingRead(read("0.cast.gz", 100)))
        .await
        .unwrap();
    apply(&store, Change::NoteRecordingRead(read("0.cast.gz", 200)))
        .await
        .unwrap();
    assert_eq!(
        store.read_audited_at(&read("0.cast.gz", 0)).await.unwrap(),
        Some(200)
    );
    assert_eq!(store.read_audited_at(&read("", 0)).await.unwrap(), None);
}
