use std::collections::BTreeMap;
use std::sync::Arc;

use shiftkey_wire::{RecordingFile, SealRequest};
use ssh_key::{Algorithm, PrivateKey};

use super::upload::{Measured, check_seal, claims_digest, reconcile, sha256_hex};
use super::*;
use crate::hosts::{EnrolledHost, HostKind};
use crate::store::{Change, IssuedCertificate};
use crate::testkit::World;

const POLICY: &str = r#"
reviewers = ["user:reviewer@example.com"]

[settings]
max_ttl = "1h"

[[role]]
name = "shell"
principals = ["ops"]
hosts = ["db-1"]
max_ttl = "10m"

[[role]]
name = "db"
principals = ["postgres"]
hosts = ["db-1"]
max_ttl = "10m"

[[authority]]
identities = ["user:dba@example.com"]
actions = ["recording.review"]
roles = ["db"]

[[authority]]
identities = ["user:legal@example.com"]
actions = ["recording.hold"]
roles = ["shell"]
"#;

#[test]
fn names_are_channels_and_sessions_are_ours() {
    for ok in [
        "0.cast.gz",
        "12.sftp.jsonl.gz",
        "9999.cast.gz",
        "1000.cast.gz",
    ] {
        assert!(is_file_name(ok), "{ok}");
    }
    for bad in [
        "",
        ".cast.gz",
        "10000.cast.gz",
        "1.cast",
        "1.txt.gz",
        "../1.cast.gz",
        "1.cast.gz/",
        "-1.cast.gz",
        "1.sftp.gz",
        "a.cast.gz",
        ".sealing",
        // One channel, one name: no leading zeros.
        "0012.cast.gz",
        "00.cast.gz",
        "+1.cast.gz",
    ] {
        assert!(!is_file_name(bad), "{bad}");
    }
    assert_eq!(channel("12.sftp.jsonl.gz"), Some(12));
    let mut names = vec!["10.cast.gz", "2.sftp.jsonl.gz", "2.cast.gz", "1.cast.gz"];
    names.sort_by(|a, b| file_order(a, b));
    assert_eq!(
        names,
        ["1.cast.gz", "2.cast.gz", "2.sftp.jsonl.gz", "10.cast.gz"]
    );
    assert!(is_session_id("s_0123456789abcdef"));
    for bad in [
        "s_0123456789ABCDEF",
        "s_0123",
        "x_0123456789abcdef",
        "s_../../etc/pass",
    ] {
        assert!(!is_session_id(bad), "{bad}");
    }
}

pub(super) fn gzip(text: &str) -> Vec<u8> {
    super::fuzzing::gzip(text.as_bytes())
}

pub(super) fn claim(name: &str, bytes: &[u8]) -> RecordingFile {
    RecordingFile {
        name: name.into(),
        kind: if name.contains("sftp") {
            "sftp"
        } else {
            "shell"
        }
        .into(),
        command: None,
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    }
}

pub(super) fn bastion(name: &str) -> EnrolledHost {
    EnrolledHost {
        name: name.into(),
        kind: HostKind::Bastion,
        principals: vec![name.into()],
        key: PrivateKey::random(&mut crate::keys::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone(),
    }
}

pub(super) const SESSION: &str = "s_0123456789abcdef";

/// A world with one live session through `bastion-1`.
async fn world() -> (World, Recordings) {
    world_with(Limits::default()).await
}

/// A world with one live session through `bastion-1`, started ten seconds
/// ago, and these limits.
pub(super) async fn world_with(limits: Limits) -> (World, Recordings) {
    let world = World::new(POLICY);
    let serial = world.store.next_serial().await.unwrap();
    world
        .audit
        .record_change(
            crate::audit::Event::new(
                "session.authorized",
                "user:a@example.com",
                crate::audit::Outcome::Allow,
                serde_json::json!({}),
            ),
            Change::StartSession {
                certificate: IssuedCertificate {
                    serial,
                    key_id: "a".into(),
                    identity: "user:a@example.com".into(),
                    role: "shell".into(),
                    incident: None,
                    request_id: SESSION.into(),
                    principals: vec!["ops".into()],
                    valid_after: 0,
                    valid_before: 9_999_999_999,
                    key_fingerprint: "SHA256:x".into(),
                    issued_at: "x".into(),
                    certificate: "x".into(),
                },
                session: Box::new(Session {
                    id: SESSION.into(),
                    identity: "user:a@example.com".into(),
                    user_serial: 1,
                    session_serial: serial,
                    role: "shell".into(),
                    incident: None,
                    principal: "ops".into(),
                    target: "db-1:22".into(),
                    client_address: "127.0.0.1:1".into(),
                    bastion: "bastion-1".into(),
                    started_at: chrono::Utc::now().timestamp() - 10,
                    ended_at: None,
                    exit_status: None,
                    end_reason: None,
                    status: SessionStatus::Live,
                    last_seen: None,
                    recording_deleted_at: None,
                    held: None,
                }),
            },
        )
        .await
        .unwrap();
    let recordings = Recordings::new(&world.base(), Arc::clone(&world.bytes), limits);
    (world, recordings)
}

pub(super) fn seal_request(files: Vec<RecordingFile>) -> SealRequest {
    SealRequest {
        ended_at: chrono::Utc::now().timestamp(),
        exit_status: Some(0),
        end_reason: "client closed".into(),
        files,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_append_only_and_the_seal_measures_what_was_committed() {
    let (world, recordings) = world().await;
    let b = bastion("bastion-1");
    let cast = gzip(concat!(
        r#"{"version":2,"shiftkey":{"kind":"exec","command":"uptime"}}"#,
        "\n",
        r#"[0.5,"i","ls -l\r"]"#,
        "\n"
    ));
    let (head, tail) = cast.split_at(10);
    let up = |name: &'static str, offset: u64, bytes: &[u8]| {
        let (recordings, b, bytes) = (&recordings, &b, bytes.to_vec());
        async move {
            recordings
                .upload_chunk(b, SESSION, name, Some(offset), bytes)
                .await
        }
    };
    assert_eq!(up("0.cast.gz", 0, head).await.unwrap().bytes, 10);
    assert!(matches!(
        up("0.cast.gz", 20, b"x").await,
        Err(Error::Gap { held: 10, .. })
    ));
    assert!(matches!(
        up("0.cast.gz", 0, b"other").await,
        Err(Error::Mismatch { .. })
    ));
    assert_eq!(up("0.cast.gz", 0, head).await.unwrap().bytes, 10, "a retry");
    assert_eq!(
        up("0.cast.gz", 10, tail).await.unwrap().bytes,
        cast.len() as u64
    );
    up("3.sftp.jsonl.gz", 0, b"not gzip").await.unwrap();
    assert!(matches!(
        recordings
            .upload_chunk(&bastion("bastion-2"), SESSION, "0.cast.gz", Some(0), vec![])
            .await,
        Err(Error::OtherBastion(_))
    ));
    assert!(matches!(
        up("../x", 0, b"x").await,
        Err(Error::BadFileName(_))
    ));

    let claims = vec![
        claim("0.cast.gz", &cast),
        claim("3.sftp.jsonl.gz", b"not gzip"),
    ];
    let sealed = recordings
        .seal(&b, SESSION, seal_request(claims.clone()))
        .await
        .unwrap();
    assert_eq!(sealed.info.status, "sealed", "{:?}", sealed.problems);
    assert!(sealed.problems.is_empty());
    assert_eq!(sealed.info.files[0].command.as_deref(), Some("uptime"));
    assert_eq!(sealed.info.files[0].sha256, sha256_hex(&cast));
    let found = world.store.search("ls -l", 10).await.unwrap();
    assert_eq!(found.len(), 1);
    // The same claims again (a lost answer) get the same answer; others a 409.
    assert_eq!(
        recordings
            .seal(&b, SESSION, seal_request(claims))
            .await
            .unwrap()
            .info
            .digest,
        sealed.info.digest
    );
    assert!(matches!(
        recordings.seal(&b, SESSION, seal_request(vec![])).await,
        Err(Error::SealFinal { .. })
    ));
    assert!(matches!(
        up("0.cast.gz", cast.len() as u64, b"late").await,
        Err(Error::NotLive { .. })
    ));
    // The manifest's signature verifies with the user CA key.
    let manifest = sealed.manifest.unwrap();
    let signature: ssh_key::SshSig = sealed.info.signature.unwrap().parse().unwrap();
    world
        .keys
        .user()
        .public_key()
        .verify(NAMESPACE, manifest.as_bytes(), &signature)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_seal_starts_no_chunk_lands_and_a_failed_seal_lets_them_go_on() {
    let (world, recordings) = world().await;
    let b = bastion("bastion-1");
    recordings
        .upload_chunk(&b, SESSION, "0.cast.gz", Some(0), b"abc".to_vec())
        .await
        .unwrap();
    world.store.begin_seal(SESSION, 1).await.unwrap();
    assert!(matches!(
        recordings
            .upload_chunk(&b, SESSION, "0.cast.gz", Some(3), b"def".to_vec())
            .await,
        Err(Error::Sealing(_))
    ));
    world.store.abort_seal(SESSION).await.unwrap();
    recordings
        .upload_chunk(&b, SESSION, "0.cast.gz", Some(3), b"def".to_vec())
        .await
        .unwrap();
    // What the bastion claims and what the CA committed differ: sealed, and
    // the difference named.
    let sealed = recordings
        .seal(
            &b,
            SESSION,
            seal_request(vec![claim("0.cast.gz", b"abcdefg")]),
        )
        .await
        .unwrap();
    assert_eq!(sealed.info.status, "verification-failed");
    assert!(
        sealed.problems[0].contains("claims 7 bytes, the CA holds 6"),
        "{:?}",
        sealed.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_uploads_of_one_chunk_commit_it_once_without_any_lock_of_ours() {
    let (world, recordings) = world().await;
    let recordings = Arc::new(recordings);
    let b = Arc::new(bastion("bastion-1"));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (recordings, b) = (Arc::clone(&recordings), Arc::clone(&b));
        tasks.push(tokio::spawn(async move {
            recordings
                .upload_chunk(&b, SESSION, "0.cast.gz", Some(0), b"0123456789".to_vec())
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().bytes, 10);
    }
    let uploads = world.store.uploads(SESSION).await.unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].length, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_before_the_upgrade_is_adopted_not_lost() {
    let (world, recordings) = world().await;
    // The previous release wrote files without telling the store.
    let dir = world.dir.path().join("recordings").join(SESSION);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0.cast.gz"), b"legacy").unwrap();
    let b = bastion("bastion-1");
    let ack = recordings
        .upload_chunk(&b, SESSION, "0.cast.gz", Some(6), b"+new".to_vec())
        .await
        .unwrap();
    assert_eq!(ack.bytes, 10, "the bastion goes on from where it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_reads_are_audited_once_per_window_and_others_are_refused() {
    let (world, recordings) = world().await;
    let b = bastion("bastion-1");
    recordings
        .upload_chunk(&b, SESSION, "0.cast.gz", Some(0), b"abcdef".to_vec())
        .await
        .unwrap();
    let stranger = crate::identity::Caller::User {
        email: "x@example.com".into(),
        groups: vec![],
    };
    assert!(matches!(
        recordings.reviewer(&stranger, "/p").await,
        Err(Error::NotAReviewer)
    ));
    let caller = crate::identity::Caller::User {
        email: "reviewer@example.com".into(),
        groups: vec![],
    };
    let reviewer = recordings.reviewer(&caller, "/p").await.unwrap();
    for _ in 0..3 {
        let opened = recordings
            .read_file(&reviewer, SESSION, "0.cast.gz", 2, Some(3), Purpose::Watch)
            .await
            .unwrap();
        assert_eq!((opened.bytes, opened.length), (3, 6));
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut { opened.reader }, &mut bytes)
            .await
            .unwrap();
        assert_eq!(bytes, b"cde");
    }
    assert!(matches!(
        recordings
            .read_file(&reviewer, SESSION, "0.cast.gz", 7, None, Purpose::View)
            .await,
        Err(Error::PastEnd { .. })
    ));
    let rows = world
        .audit
        .rows(crate::store::AuditFilter {
            kinds: vec!["recording.viewed".into(), "recording.denied".into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<_> = rows.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["recording.denied", "recording.viewed", "recording.viewed"],
        "one watch row, and the metadata read by PastEnd's view"
    );
}
#[test]
fn claims_that_differ_are_named() {
    let stored = |entries: &[(&str, &[u8])]| Measured {
        stored: entries
            .iter()
            .map(|(n, b)| ((*n).to_owned(), (b.len() as u64, sha256_hex(b))))
            .collect(),
        indexed: BTreeMap::new(),
    };
    let measured = stored(&[
        ("0.cast.gz", b"abc"),
        ("1.cast.gz", b"x"),
        ("4.cast.gz", b"q"),
    ]);
    let mut wrong_hash = claim("1.cast.gz", b"y");
    wrong_hash.command = Some("id".into());
    let claims = vec![
        claim("0.cast.gz", b"abcd"),
        wrong_hash,
        claim("2.cast.gz", b"lost"),
        claim("3.cast.gz", b""),
    ];
    let (files, problems) = reconcile(&claims, &measured);
    assert_eq!(
        problems,
        [
            "0.cast.gz: the bastion claims 4 bytes, the CA holds 3",
            "1.cast.gz: the SHA-256 the bastion claims differs from the CA's copy",
            "2.cast.gz: the bastion claims 4 bytes, the CA received none",
            "4.cast.gz: stored by the CA but not in the seal",
        ]
    );
    let names: Vec<_> = files.iter().map(|f| (f.name.as_str(), f.bytes)).collect();
    assert_eq!(
        names,
        [
            ("0.cast.gz", 3),
            ("1.cast.gz", 1),
            ("2.cast.gz", 0),
            ("3.cast.gz", 0),
            ("4.cast.gz", 1)
        ]
    );
    assert_eq!(
        files[1].sha256,
        sha256_hex(b"x"),
        "the manifest lists our copy"
    );
    assert_eq!(files[1].command.as_deref(), Some("id"));
}

#[test]
fn the_same_claims_in_any_order_have_one_digest() {
    let a = vec![claim("0.cast.gz", b"a"), claim("1.cast.gz", b"b")];
    let b = vec![claim("1.cast.gz", b"b"), claim("0.cast.gz", b"a")];
    assert_eq!(claims_digest(&a), claims_digest(&b));
    assert_ne!(claims_digest(&a), claims_digest(&a[..1]));
}

#[test]
fn seals_are_checked_for_shape() {
    let row = Session {
        id: "s_0123456789abcdef".into(),
        identity: "user:a@example.com".into(),
        user_serial: 1,
        session_serial: 2,
        role: "r".into(),
        incident: None,
        principal: "p".into(),
        target: "h:22".into(),
        client_address: "c".into(),
        bastion: "b".into(),
        started_at: 1000,
        ended_at: None,
        exit_status: None,
        end_reason: None,
        status: SessionStatus::Live,
        last_seen: None,
        recording_deleted_at: None,
        held: None,
    };
    let request = |files: Vec<RecordingFile>, ended_at: i64| SealRequest {
        ended_at,
        exit_status: Some(0),
        end_reason: "client closed".into(),
        files,
    };
    assert!(check_seal(&request(vec![claim("0.cast.gz", b"a")], 1100), &row, 2000).is_ok());
    let mut bad_kind = claim("0.cast.gz", b"a");
    bad_kind.kind = "Shell!".into();
    let mut bad_sha = claim("0.cast.gz", b"a");
    bad_sha.sha256 = bad_sha.sha256.to_uppercase();
    for (files, ended_at, why) in [
        (vec![claim("../x", b"a")], 1100, "file name"),
        (
            vec![claim("0.cast.gz", b"a"), claim("0.cast.gz", b"a")],
            1100,
            "twice",
        ),
        (vec![bad_kind], 1100, "kind"),
        (vec![bad_sha], 1100, "sha256"),
        (vec![], 10, "ended_at"),
        (vec![], 9000, "ended_at"),
    ] {
        let error = check_seal(&request(files, ended_at), &row, 2000).unwrap_err();
        assert!(error.contains(why), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_recording_is_reviewed_as_the_authority_says_and_a_lock_ends_reviewing() {
    let (world, recordings) = world().await;
    // dba may review db sessions only: the shell session is not listed, and
    // reading it is refused with the policy's reason and an audit row.
    let dba = crate::identity::Caller::user("dba@example.com", vec![]).unwrap();
    let limited = recordings.reviewer(&dba, "/p").await.unwrap();
    let listed = recordings
        .list(
            &limited,
            SessionFilter {
                limit: 10,
                ..SessionFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    match recordings.recording(&limited, SESSION, Purpose::View).await {
        Err(Error::Authority(crate::authority::Error::Denied(d))) => {
            assert_eq!(d.code, crate::policy::DenyCode::NotAuthorized);
            assert!(d.message.contains("review"), "{}", d.message);
        }
        other => panic!("{other:?}"),
    }
    let rows = world
        .audit
        .rows(crate::store::AuditFilter {
            kinds: vec!["authority.denied".into()],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].detail.contains(SESSION), "{}", rows[0].detail);
    // The full reviewer sees it; locked, no longer.
    let full = crate::identity::Caller::user("reviewer@example.com", vec![]).unwrap();
    let reviewer = recordings.reviewer(&full, "/p").await.unwrap();
    let listed = recordings
        .list(
            &reviewer,
            SessionFilter {
                limit: 10,
                ..SessionFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    world
        .audit
        .record_change(
            crate::audit::Event::new(
                "identity.locked",
                "local:root",
                crate::audit::Outcome::Info,
                serde_json::json!({}),
            ),
            Change::Lock {
                identities: vec!["user:reviewer@example.com".into()],
                by: "local:root".into(),
                at: "x".into(),
                reason: "left".into(),
                now: 0,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        recordings.reviewer(&full, "/p").await,
        Err(Error::NotAReviewer)
    ));
    assert!(
        matches!(
            recordings
                .recording(&reviewer, SESSION, Purpose::View)
                .await,
            Err(Error::Authority(crate::authority::Error::Denied(_)))
        ),
        "a reviewer proof taken before the lock reads nothing after it"
    );
}
