use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::local::read_all;
use super::*;

fn store() -> (tempfile::TempDir, LocalDirectory) {
    let root = tempfile::tempdir().unwrap();
    let store = LocalDirectory::new(root.path().join("recordings"));
    (root, store)
}

const S: &str = "s_0123456789abcdef";

#[tokio::test]
async fn writes_land_after_what_is_held_and_never_change_it() {
    let (root, store) = store();
    assert_eq!(
        store
            .write(S, "0.cast.gz", 0, b"hello ".to_vec())
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        store
            .write(S, "0.cast.gz", 6, b"world".to_vec())
            .await
            .unwrap(),
        11
    );
    // The same chunk again (the answer was lost): nothing changes.
    assert_eq!(
        store
            .write(S, "0.cast.gz", 6, b"world".to_vec())
            .await
            .unwrap(),
        11
    );
    // A chunk that overlaps the end: only its tail is added.
    assert_eq!(
        store
            .write(S, "0.cast.gz", 9, b"ld!".to_vec())
            .await
            .unwrap(),
        12
    );
    assert!(matches!(
        store.write(S, "0.cast.gz", 20, b"x".to_vec()).await,
        Err(Error::Gap {
            offset: 20,
            held: 12
        })
    ));
    assert!(matches!(
        store.write(S, "0.cast.gz", 0, b"HELLO".to_vec()).await,
        Err(Error::Mismatch {
            offset: 0,
            held: 12
        })
    ));
    let read = |range: std::ops::Range<u64>| {
        let store = &store;
        async move {
            read_all(store.read(S, "0.cast.gz", range).await.unwrap())
                .await
                .unwrap()
        }
    };
    assert_eq!(read(6..12).await, b"world!");
    assert_eq!(read(0..12).await, b"hello world!");
    assert!(read(12..12).await.is_empty());
    assert!(matches!(
        store.read(S, "0.cast.gz", 0..13).await,
        Err(Error::Short {
            held: 12,
            wanted: 13,
            ..
        })
    ));
    assert!(
        read_all(store.read(S, "1.cast.gz", 0..0).await.unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.held(S, "0.cast.gz").await.unwrap(), Some(12));
    assert_eq!(store.held(S, "1.cast.gz").await.unwrap(), Some(0));

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = root.path().join("recordings").join(S);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.join("0.cast.gz")), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_file_see_each_other_without_a_lock_of_ours() {
    let (_root, store) = store();
    let store = std::sync::Arc::new(store);
    // Many writers of the same chunk at once (retries racing): one copy.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = std::sync::Arc::clone(&store);
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
        let store = std::sync::Arc::clone(&store);
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
    let held = read_all(store.read(S, "0.cast.gz", 0..106).await.unwrap())
        .await
        .unwrap();
    assert_eq!(&held[..6], b"abcdef");
    assert_eq!(held[6..], vec![winners[0]; 100][..]);
}

#[tokio::test]
async fn a_symlink_is_never_followed_and_names_stay_inside() {
    let (root, store) = store();
    let dir = root.path().join("recordings").join(S);
    std::fs::create_dir_all(&dir).unwrap();
    let outside = root.path().join("outside");
    std::fs::write(&outside, b"").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("0.cast.gz")).unwrap();
    assert!(matches!(
        store.write(S, "0.cast.gz", 0, b"x".to_vec()).await,
        Err(Error::Io(_))
    ));
    assert!(store.read(S, "0.cast.gz", 0..0).await.is_err());
    assert_eq!(std::fs::read(&outside).unwrap(), b"");
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

#[tokio::test]
async fn delete_removes_a_session_and_nothing_else() {
    let (root, store) = store();
    store.write(S, "0.cast.gz", 0, b"a".to_vec()).await.unwrap();
    store
        .write("s_fedcba9876543210", "0.cast.gz", 0, b"b".to_vec())
        .await
        .unwrap();
    store.delete(S).await.unwrap();
    store.delete(S).await.unwrap();
    assert!(!root.path().join("recordings").join(S).exists());
    assert_eq!(
        store.held("s_fedcba9876543210", "0.cast.gz").await.unwrap(),
        Some(1)
    );
}
