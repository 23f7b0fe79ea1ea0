//! The recording store's behaviour, written once against
//! `dyn RecordingStore` and run for every backend (`local.rs`, `s3.rs`).

mod local;
mod s3;

use std::sync::Arc;

use super::{Error, Reader, RecordingStore};

const S: &str = "s_0123456789abcdef";

type Fresh = Arc<dyn RecordingStore>;

/// Reads a whole reader (small files only).
pub(super) async fn read_all(mut reader: Reader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut out).await?;
    Ok(out)
}

async fn read(store: &Fresh, session: &str, name: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    read_all(store.read(session, name, range).await.unwrap())
        .await
        .unwrap()
}

async fn writes_land_after_what_is_held_and_never_change_it(store: Fresh) {
    let write = |offset: u64, bytes: &'static [u8]| {
        let store = Arc::clone(&store);
        async move { store.write(S, "0.cast.gz", offset, bytes.to_vec()).await }
    };
    assert_eq!(write(0, b"hello ").await.unwrap(), 6);
    assert_eq!(write(6, b"world").await.unwrap(), 11);
    // The same chunk again (the answer was lost): nothing changes.
    assert_eq!(write(6, b"world").await.unwrap(), 11);
    // A chunk that overlaps the end: only its tail is added.
    assert_eq!(write(9, b"ld!").await.unwrap(), 12);
    assert!(matches!(
        write(20, b"x").await,
        Err(Error::Gap {
            offset: 20,
            held: 12
        })
    ));
    assert!(matches!(
        write(0, b"HELLO").await,
        Err(Error::Mismatch {
            offset: 0,
            held: 12
        })
    ));
    assert_eq!(read(&store, S, "0.cast.gz", 6..12).await, b"world!");
    assert_eq!(read(&store, S, "0.cast.gz", 0..12).await, b"hello world!");
    assert!(read(&store, S, "0.cast.gz", 12..12).await.is_empty());
    assert!(matches!(
        store.read(S, "0.cast.gz", 0..13).await,
        Err(Error::Short {
            held: 12,
            wanted: 13,
            ..
        })
    ));
    assert!(read(&store, S, "1.cast.gz", 0..0).await.is_empty());
}

async fn concurrent_writers_of_one_file_see_each_other(store: Fresh) {
    // Many writers of the same chunk at once (retries racing): one copy.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.write(S, "0.cast.gz", 0, b"abcdef".to_vec()).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 6);
    }
    // Writers of different bytes at one offset: the first wins, the others
    // are refused, and the bytes held are the winner's, whole.
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            (i, store.write(S, "0.cast.gz", 6, vec![i; 100]).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(106)) => winners.push(i),
            (_, Err(Error::Mismatch { offset: 6, .. })) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let held = read(&store, S, "0.cast.gz", 0..106).await;
    assert_eq!(&held[..6], b"abcdef");
    assert_eq!(held[6..], vec![winners[0]; 100][..]);
}

async fn names_stay_inside(store: Fresh) {
    for (session, name) in [
        ("..", "x"),
        (S, "../x"),
        (S, ".sealing"),
        ("a/b", "x"),
        (S, ""),
    ] {
        assert!(
            store.write(session, name, 0, b"x".to_vec()).await.is_err(),
            "{session}/{name}"
        );
    }
}

async fn delete_removes_a_session_and_nothing_else(store: Fresh) {
    const OTHER: &str = "s_fedcba9876543210";
    store.write(S, "0.cast.gz", 0, b"a".to_vec()).await.unwrap();
    store
        .write(OTHER, "0.cast.gz", 0, b"b".to_vec())
        .await
        .unwrap();
    store.delete(S).await.unwrap();
    store.delete(S).await.unwrap();
    assert!(matches!(
        store.read(S, "0.cast.gz", 0..1).await,
        Err(Error::Short { held: 0, .. })
    ));
    assert_eq!(read(&store, OTHER, "0.cast.gz", 0..1).await, b"b");
    // A session deleted starts again from nothing.
    assert_eq!(
        store.write(S, "0.cast.gz", 0, b"c".to_vec()).await.unwrap(),
        1
    );
}

async fn reads_stream_across_many_chunks(store: Fresh) {
    let mut whole = Vec::new();
    for i in 0..40u32 {
        let chunk: Vec<u8> = (0..1000u32).map(|j| ((i * 7 + j) % 251) as u8).collect();
        let at = whole.len() as u64;
        whole.extend_from_slice(&chunk);
        store.write(S, "1.sftp.jsonl.gz", at, chunk).await.unwrap();
    }
    assert_eq!(read(&store, S, "1.sftp.jsonl.gz", 0..40_000).await, whole);
    assert_eq!(
        read(&store, S, "1.sftp.jsonl.gz", 999..20_001).await,
        whole[999..20_001]
    );
    // A retry spanning many chunks is compared across all of them.
    let mut altered = whole[500..3500].to_vec();
    altered[2000] ^= 1;
    assert!(matches!(
        store.write(S, "1.sftp.jsonl.gz", 500, altered).await,
        Err(Error::Mismatch { offset: 500, .. })
    ));
}

/// Declares a `#[tokio::test]` per behaviour test on stores from `$fresh`
/// (an async fn returning `(guard, Fresh)`).
macro_rules! every_behaviour_test {
    ($fresh:path) => {
        super::behaviour_tests! { $fresh =>
            writes_land_after_what_is_held_and_never_change_it,
            concurrent_writers_of_one_file_see_each_other,
            names_stay_inside,
            delete_removes_a_session_and_nothing_else,
            reads_stream_across_many_chunks,
        }
    };
}
use every_behaviour_test;

macro_rules! behaviour_tests {
    ($fresh:path => $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let (_guard, store) = $fresh().await;
                super::$test(store).await;
            }
        )*
    };
}
use behaviour_tests;
