//! S3-compatible storage: every behaviour test against the S3-protocol
//! server `scripts/services` started (a prefix of its own each), and the
//! objects as a reviewer with only the bucket would find them.

use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt};
use shiftkey_tests::services::TestBucket;

use super::{S, read};
use crate::recording_store::s3::S3Store;
use crate::recording_store::{RecordingStore, S3Settings, SealedManifest};

fn open(bucket: &TestBucket) -> (tempfile::TempDir, S3Store) {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("s3.toml");
    bucket.write_credentials(&credentials).unwrap();
    let store = S3Store::open(&S3Settings {
        bucket: bucket.bucket.clone(),
        prefix: bucket.prefix.clone(),
        endpoint: Some(bucket.endpoint.clone()),
        region: "us-east-1".into(),
        credentials_file: Some(credentials),
    })
    .unwrap();
    (dir, store)
}

async fn fresh() -> (tempfile::TempDir, Arc<dyn RecordingStore>) {
    let (dir, store) = open(&TestBucket::create().unwrap());
    (dir, Arc::new(store))
}

super::every_behaviour_test!(fresh);

#[tokio::test]
async fn chunks_are_objects_never_replaced_and_the_seal_adds_the_manifest() {
    let bucket = TestBucket::create().unwrap();
    let (_dir, store) = open(&bucket);
    store
        .write(S, "0.cast.gz", 0, b"hello ".to_vec())
        .await
        .unwrap();
    store
        .write(S, "0.cast.gz", 3, b"lo world".to_vec())
        .await
        .unwrap();
    store
        .seal(
            S,
            &SealedManifest {
                manifest: "{\"version\":1}".into(),
                digest: "d".into(),
                signature: "-----BEGIN SSH SIGNATURE-----".into(),
            },
        )
        .await
        .unwrap();
    // What another process with only the bucket sees.
    let (_other_dir, other) = open(&bucket);
    let raw = other.raw();
    let mut names: Vec<String> = futures_util::StreamExt::collect::<Vec<_>>(raw.list(None))
        .await
        .into_iter()
        .map(|m| m.unwrap().location.to_string())
        .filter(|l| l.starts_with(&bucket.prefix))
        .collect();
    names.sort();
    let p = &bucket.prefix;
    assert_eq!(
        names,
        [
            format!("{p}/{S}/0.cast.gz/00000000000000000000"),
            format!("{p}/{S}/0.cast.gz/00000000000000000006"),
            format!("{p}/{S}/manifest.json"),
        ]
    );
    let manifest = raw
        .get(&object_store::path::Path::from(format!(
            "{p}/{S}/manifest.json"
        )))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["manifest"], "{\"version\":1}");
    let other: Arc<dyn RecordingStore> = Arc::new(other);
    assert_eq!(read(&other, S, "0.cast.gz", 0..11).await, b"hello world");
    // A chunk object is created once: a different chunk at its offset
    // from another writer is refused, and the object keeps its bytes.
    assert!(
        other
            .write(S, "0.cast.gz", 6, b"WORLD".to_vec())
            .await
            .is_err()
    );
    assert_eq!(read(&other, S, "0.cast.gz", 6..11).await, b"world");
}

/// Retention on two replicas at once: both deletes succeed, the objects are
/// gone, and the replica that had read the recording before sees it gone
/// too (not the chunks it remembered).
#[tokio::test]
async fn a_recording_deleted_by_one_replica_is_gone_for_the_others() {
    let bucket = TestBucket::create().unwrap();
    let (_one_dir, one) = open(&bucket);
    let (_two_dir, two) = open(&bucket);
    let (one, two): (Arc<dyn RecordingStore>, Arc<dyn RecordingStore>) =
        (Arc::new(one), Arc::new(two));
    one.write(S, "0.cast.gz", 0, b"hello ".to_vec())
        .await
        .unwrap();
    one.write(S, "0.cast.gz", 6, b"world".to_vec())
        .await
        .unwrap();
    assert_eq!(read(&two, S, "0.cast.gz", 0..11).await, b"hello world");
    let (a, b) = tokio::join!(one.delete(S), two.delete(S));
    a.unwrap();
    b.unwrap();
    for store in [&one, &two] {
        assert!(matches!(
            store.read(S, "0.cast.gz", 0..1).await,
            Err(crate::recording_store::Error::Short { held: 0, .. })
        ));
    }
    let (_other_dir, other) = open(&bucket);
    let left: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(other.raw().list(Some(
        &object_store::path::Path::from(format!("{}/{S}", bucket.prefix)),
    )))
    .await;
    assert!(left.is_empty(), "{left:?}");
}
