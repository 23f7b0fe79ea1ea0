use std::os::unix::fs::PermissionsExt;

use super::files::{AppendError, Measured, append, measure_session, read_at, stored_files};
use super::*;

#[test]
fn names_are_channels_and_sessions_are_ours() {
    for ok in ["0.cast.gz", "12.sftp.jsonl.gz", "9999.cast.gz"] {
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

fn session_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("recordings").join("s_0123456789abcdef");
    (root, dir)
}

#[test]
fn appends_land_only_at_the_end_and_retries_are_idempotent() {
    let (_root, dir) = session_dir();
    assert_eq!(append(&dir, "0.cast.gz", 0, b"hello ").unwrap(), 6);
    assert_eq!(append(&dir, "0.cast.gz", 6, b"world").unwrap(), 11);
    // The same chunk again (the answer was lost): nothing changes.
    assert_eq!(append(&dir, "0.cast.gz", 6, b"world").unwrap(), 11);
    // A chunk that overlaps the end: only its tail is written.
    assert_eq!(append(&dir, "0.cast.gz", 9, b"ld!").unwrap(), 12);
    assert!(matches!(
        append(&dir, "0.cast.gz", 20, b"x"),
        Err(AppendError::Gap { stored: 12 })
    ));
    assert!(matches!(
        append(&dir, "0.cast.gz", 0, b"HELLO"),
        Err(AppendError::Mismatch { stored: 12 })
    ));
    let (bytes, length) = read_at(&dir.join("0.cast.gz"), 6).unwrap().unwrap();
    assert_eq!((bytes.as_slice(), length), (&b"world!"[..], 12));
    let (bytes, _) = read_at(&dir.join("0.cast.gz"), 12).unwrap().unwrap();
    assert!(bytes.is_empty());
    assert!(read_at(&dir.join("1.cast.gz"), 0).unwrap().is_none());

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    assert_eq!(mode(&dir.join("0.cast.gz")), 0o600);
}

#[test]
fn a_symlink_is_never_followed() {
    let (root, dir) = session_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let outside = root.path().join("outside");
    std::fs::write(&outside, b"").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("0.cast.gz")).unwrap();
    assert!(matches!(
        append(&dir, "0.cast.gz", 0, b"x"),
        Err(AppendError::Io(_))
    ));
    assert_eq!(std::fs::read(&outside).unwrap(), b"");
}

fn gzip(text: &str) -> Vec<u8> {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn claim(name: &str, bytes: &[u8]) -> RecordingFile {
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

#[test]
fn sealing_stops_appends_and_measures_what_is_held() {
    let (_root, dir) = session_dir();
    let cast = gzip(concat!(
        r#"{"version":2,"shiftkey":{"kind":"exec","command":"uptime"}}"#,
        "\n",
        r#"[0.5,"i","ls -l\r"]"#,
        "\n"
    ));
    append(&dir, "0.cast.gz", 0, &cast).unwrap();
    append(&dir, "3.sftp.jsonl.gz", 0, b"not gzip").unwrap();
    let mut measured = measure_session(&dir).unwrap();
    assert!(matches!(
        append(&dir, "0.cast.gz", cast.len() as u64, b"more"),
        Err(AppendError::Sealing)
    ));
    assert_eq!(
        stored_files(&dir).unwrap().len(),
        2,
        "the marker is no file"
    );

    let claims = vec![
        claim("0.cast.gz", &cast),
        claim("3.sftp.jsonl.gz", b"not gzip"),
    ];
    let (files, problems) = reconcile(&claims, &measured);
    assert!(problems.is_empty(), "{problems:?}");
    let mut expected = claims.clone();
    // The claim's kind wins; the header fills in the command it left out.
    expected[0].command = Some("uptime".into());
    assert_eq!(files, expected);
    let lines = index_lines(&files, &mut measured);
    let got: Vec<_> = lines.iter().map(|l| (l.line.as_str(), l.source)).collect();
    assert_eq!(got, [("uptime", "exec"), ("ls -l", "input")]);
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
    let row = store::SessionRow {
        id: "s_0123456789abcdef".into(),
        identity: "user:a@example.com".into(),
        user_serial: 1,
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
        status: "live".into(),
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
