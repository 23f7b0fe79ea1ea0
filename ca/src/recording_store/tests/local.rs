//! The local directory: every behaviour test, and what only files have
//! (modes, symlinks, bytes written before upload state lived in the store).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use crate::recording_store::{Error, LocalDirectory, RecordingStore, SealedManifest};

fn store() -> (tempfile::TempDir, LocalDirectory) {
    let root = tempfile::tempdir().unwrap();
    let store = LocalDirectory::new(root.path().join("recordings"));
    (root, store)
}

async fn fresh() -> (tempfile::TempDir, Arc<dyn RecordingStore>) {
    let (root, store) = store();
    (root, Arc::new(store))
}

super::every_behaviour_test!(fresh);

#[tokio::test]
async fn the_seal_puts_the_manifest_beside_the_files() {
    let (root, store) = store();
    store.write(S, "0.cast.gz", 0, b"x".to_vec()).await.unwrap();
    let sealed = SealedManifest {
        manifest: "{}".into(),
        digest: "d".into(),
        signature: "s".into(),
    };
    store.seal(S, &sealed).await.unwrap();
    store.seal(S, &sealed).await.unwrap();
    let path = root.path().join("recordings").join(S).join("manifest.json");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written["signature"], "s");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

use super::S;

#[tokio::test]
async fn files_are_private_and_held_says_their_length() {
    let (root, store) = store();
    store
        .write(S, "0.cast.gz", 0, b"hello".to_vec())
        .await
        .unwrap();
    assert_eq!(store.held(S, "0.cast.gz").await.unwrap(), Some(5));
    assert_eq!(store.held(S, "1.cast.gz").await.unwrap(), Some(0));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = root.path().join("recordings").join(S);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.join("0.cast.gz")), 0o600);
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
