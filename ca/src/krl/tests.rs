use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ssh_key::certificate::{Builder, CertType};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Certificate, PrivateKey, PublicKey};

use super::{
    CaRevocations, Error, KRL_SECTION_CERT_KEY_ID, KRL_SECTION_CERT_SERIAL_LIST,
    KRL_SECTION_CERT_SERIAL_RANGE, KRL_SECTION_CERTIFICATES, Krl,
};

// ---- keys and certificates: deterministic (fixed seeds and nonces) ----

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

fn cert(ca: &PrivateKey, serial: u64, key_id: &str) -> Certificate {
    let user = key(200);
    let mut builder = Builder::new(
        [serial as u8; 16].to_vec(),
        user.public_key().key_data().clone(),
        1_700_000_000,
        1_900_000_000,
    )
    .unwrap();
    builder
        .serial(serial)
        .unwrap()
        .key_id(key_id)
        .unwrap()
        .cert_type(CertType::User)
        .unwrap()
        .valid_principal("alice")
        .unwrap();
    builder.sign(ca).unwrap()
}

fn krl(ca_keys: Vec<CaRevocations>) -> Krl {
    Krl {
        version: 7,
        generated_at: 1_764_000_000,
        comment: "shiftkey test".into(),
        ca_keys,
        revoked_keys: Vec::new(),
    }
}

fn revoke(ca: &PrivateKey, serials: &[u64], key_ids: &[&str]) -> CaRevocations {
    CaRevocations {
        ca_key: ca.public_key().clone(),
        serials: serials.to_vec(),
        key_ids: key_ids.iter().map(|id| id.to_string()).collect(),
    }
}

// ---- files and the real ssh-keygen ----

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
    fn krl(&self, name: &str, krl: &Krl) -> PathBuf {
        self.write(name, &krl.to_bytes().unwrap())
    }
    fn cert(&self, name: &str, cert: &Certificate) -> PathBuf {
        self.write(
            &format!("{name}-cert.pub"),
            cert.to_openssh().unwrap().as_bytes(),
        )
    }
    fn public_key(&self, name: &str, key: &PublicKey) -> PathBuf {
        self.write(name, key.to_openssh().unwrap().as_bytes())
    }
}

fn ssh_keygen<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new("ssh-keygen")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ssh-keygen ({e}); install it: apt-get install -y openssh-client")
        })
}

/// `ssh-keygen -Q`: prints `FILE (COMMENT): REVOKED` and exits 1 for a
/// revoked key, `FILE (COMMENT): ok` and exits 0 otherwise, and exits
/// 255 when it cannot read the KRL.
fn is_revoked(krl: &Path, cert: &Path) -> bool {
    let out = ssh_keygen(&[
        OsStr::new("-Q"),
        OsStr::new("-f"),
        krl.as_os_str(),
        cert.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    match (out.status.code(), stdout.trim_end()) {
        (Some(0), line) if line.ends_with(": ok") => false,
        (Some(1), line) if line.ends_with(": REVOKED") => true,
        (code, _) => panic!(
            "ssh-keygen -Q exited {code:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The revocations `ssh-keygen -Q -l` lists: `# CA key ...`, `serial: ...`
/// and `id: ...` lines, without the version, date and comment.
fn listing(krl: &Path) -> Vec<String> {
    let out = ssh_keygen(&[
        OsStr::new("-Q"),
        OsStr::new("-l"),
        OsStr::new("-f"),
        krl.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "ssh-keygen -Q -l failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("# CA key") || l.starts_with("serial: ") || l.starts_with("id: "))
        .map(str::to_owned)
        .collect()
}

// ---- tests against ssh-keygen ----

/// An emergency rotation names the old CA key itself: `ssh-keygen -Q`
/// (the check sshd makes) reports every certificate it signed as revoked,
/// whatever its serial, and none signed by the new key.
#[test]
fn ssh_keygen_revokes_every_certificate_of_a_revoked_ca_key() {
    let dir = Dir::new();
    let old = key(1);
    let new = key(2);
    let old_certs: Vec<PathBuf> = [1, 77, 123_456]
        .iter()
        .map(|&s| dir.cert(&format!("old{s}"), &cert(&old, s, &format!("old{s}"))))
        .collect();
    let new_cert = dir.cert("new", &cert(&new, 5, "new"));
    let mut list = krl(vec![revoke(&new, &[9], &[])]);
    list.revoked_keys = vec![old.public_key().clone(), old.public_key().clone()];
    let path = dir.krl("krl", &list);
    for c in &old_certs {
        assert!(is_revoked(&path, c), "{} not revoked", c.display());
    }
    assert!(!is_revoked(&path, &new_cert));
    // Without the revoked key, the old certificates pass.
    let path = dir.krl("krl-none", &krl(vec![revoke(&new, &[9], &[])]));
    assert!(!is_revoked(&path, &old_certs[0]));
}

#[test]
fn ssh_keygen_revokes_exactly_the_listed_serials_and_key_ids() {
    let dir = Dir::new();
    let ca = key(1);
    let issued = [1, 2, 3, 4, 10, 42, 1000];
    let certs: Vec<(u64, PathBuf)> = issued
        .iter()
        .map(|&s| {
            (
                s,
                dir.cert(&format!("s{s}"), &cert(&ca, s, &format!("user{s}"))),
            )
        })
        .collect();
    let by_id = dir.cert("mallory", &cert(&ca, 7, "mallory@example.com role=admin"));
    let unserialed = dir.cert("zero", &cert(&ca, 0, "zero"));

    // Unsorted, repeated and with 0, as a caller might hand them over.
    let list = dir.krl(
        "krl",
        &krl(vec![revoke(
            &ca,
            &[42, 4, 0, 3, 2, 3],
            &["mallory@example.com role=admin"],
        )]),
    );

    for (serial, path) in &certs {
        let expected = [2, 3, 4, 42].contains(serial);
        assert_eq!(is_revoked(&list, path), expected, "serial {serial}");
    }
    assert!(is_revoked(&list, &by_id));
    assert!(!is_revoked(&list, &unserialed));

    let listed = listing(&list);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed[0].starts_with("# CA key ssh-ed25519 SHA256:"));
    assert_eq!(
        listed[1..],
        [
            "serial: 2-4",
            "serial: 42",
            "id: mallory@example.com role=admin"
        ]
    );
}

#[test]
fn another_cas_certificate_with_a_revoked_serial_or_key_id_is_not_revoked() {
    let dir = Dir::new();
    let (ca, other_ca) = (key(1), key(2));
    let list = dir.krl("krl", &krl(vec![revoke(&ca, &[2, 3, 4, 42], &["mallory"])]));

    assert!(is_revoked(&list, &dir.cert("ours", &cert(&ca, 42, "x"))));
    assert!(!is_revoked(
        &list,
        &dir.cert("theirs", &cert(&other_ca, 42, "x"))
    ));
    assert!(!is_revoked(
        &list,
        &dir.cert("theirs-id", &cert(&other_ca, 9, "mallory"))
    ));
}

#[test]
fn empty_krl_is_valid_and_revokes_nothing() {
    let dir = Dir::new();
    let ca = key(1);
    let target = dir.cert("c", &cert(&ca, 1, "alice"));
    for (name, ca_keys) in [
        ("none", vec![]),
        ("nothing-for-the-ca", vec![revoke(&ca, &[], &[])]),
        ("only-serial-zero", vec![revoke(&ca, &[0], &[])]),
    ] {
        let list = dir.krl(name, &krl(ca_keys));
        assert_eq!(listing(&list), Vec::<String>::new(), "{name}");
        assert!(!is_revoked(&list, &target), "{name}");
    }
}

#[test]
fn lists_the_same_revocations_as_ssh_keygens_own_krl() {
    let dir = Dir::new();
    let ca = key(1);
    let ca_pub = dir.public_key("ca.pub", ca.public_key());
    let serials = [
        2,
        3,
        4,
        42,
        1000,
        1001,
        1002,
        1003,
        5000,
        5002,
        u64::MAX - 1,
        u64::MAX,
    ];
    let key_ids = ["mallory", "alice@example.com role=db req=r_1 serial=9"];
    let spec = "serial: 2-4\nserial: 42\nserial: 1000-1003\nserial: 5000\nserial: 5002\n\
                serial: 18446744073709551614-18446744073709551615\n\
                id: mallory\nid: alice@example.com role=db req=r_1 serial=9\n";
    let spec = dir.write("spec", spec.as_bytes());
    let theirs = dir.0.path().join("theirs");
    let out = ssh_keygen(&[
        OsStr::new("-k"),
        OsStr::new("-f"),
        theirs.as_os_str(),
        OsStr::new("-s"),
        ca_pub.as_os_str(),
        spec.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Shuffled input, split over two entries for the same CA key.
    let (first, second) = serials.split_at(5);
    let mut shuffled = second.to_vec();
    shuffled.reverse();
    let ours = dir.krl(
        "ours",
        &krl(vec![
            revoke(&ca, first, &key_ids[..1]),
            revoke(&ca, &shuffled, &key_ids[1..]),
        ]),
    );

    let listed = listing(&ours);
    assert_eq!(listed, listing(&theirs));
    assert_eq!(listed.len(), 1 + 6 + 2, "{listed:?}");
    for serial in [1, 2, 5, 1003, 1004, 5001, 5002, u64::MAX] {
        let path = dir.cert(&format!("s{serial}"), &cert(&ca, serial, "someone"));
        assert_eq!(
            is_revoked(&ours, &path),
            is_revoked(&theirs, &path),
            "serial {serial}"
        );
    }
    let path = dir.cert("alice", &cert(&ca, 9, key_ids[1]));
    assert!(is_revoked(&ours, &path) && is_revoked(&theirs, &path));
}

#[test]
fn serial_zero_in_a_krl_makes_openssh_reject_the_whole_file() {
    // Why `NO_SERIAL` is dropped: patch the one listed serial to 0.
    let dir = Dir::new();
    let ca = key(1);
    let mut bytes = krl(vec![revoke(&ca, &[5], &[])]).to_bytes().unwrap();
    let last = bytes.len() - 8;
    assert_eq!(bytes[last..], 5u64.to_be_bytes());
    bytes[last..].copy_from_slice(&0u64.to_be_bytes());
    let list = dir.write("krl", &bytes);
    let out = ssh_keygen(&[
        OsStr::new("-Q"),
        OsStr::new("-f"),
        list.as_os_str(),
        dir.cert("c", &cert(&ca, 1, "alice")).as_os_str(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn ssh_keygen_reads_one_section_per_ca() {
    let dir = Dir::new();
    let (a, b) = (key(1), key(2));
    let list = dir.krl(
        "krl",
        &krl(vec![revoke(&a, &[1], &[]), revoke(&b, &[2], &["bob"])]),
    );
    assert_eq!(listing(&list).len(), 2 + 1 + 2);
    assert!(is_revoked(&list, &dir.cert("a1", &cert(&a, 1, "x"))));
    assert!(!is_revoked(&list, &dir.cert("a2", &cert(&a, 2, "bob"))));
    assert!(is_revoked(&list, &dir.cert("b2", &cert(&b, 2, "x"))));
    assert!(is_revoked(&list, &dir.cert("b3", &cert(&b, 3, "bob"))));
    assert!(!is_revoked(&list, &dir.cert("b1", &cert(&b, 1, "x"))));
}

// ---- the bytes themselves ----

/// Reads SSH wire primitives, for checking what we wrote.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> &'a [u8] {
        let len = self.u32() as usize;
        self.take(len)
    }
    /// The remaining `byte type, string data` pairs.
    fn sections(mut self) -> Vec<(u8, &'a [u8])> {
        let mut sections = Vec::new();
        while !self.0.is_empty() {
            sections.push((self.u8(), self.string()));
        }
        sections
    }
}

#[test]
fn header_matches_protocol_krl() {
    let bytes = krl(vec![]).to_bytes().unwrap();
    let mut r = Reader(&bytes);
    assert_eq!(r.take(8), b"SSHKRL\n\0");
    assert_eq!(r.u32(), 1, "format version");
    assert_eq!(r.u64(), 7, "krl_version");
    assert_eq!(r.u64(), 1_764_000_000, "generated_date");
    assert_eq!(r.u64(), 0, "flags");
    assert_eq!(r.string(), b"", "reserved");
    assert_eq!(r.string(), b"shiftkey test", "comment");
    assert!(r.0.is_empty());
}

/// The certificate subsections of a KRL with one certificate section.
fn subsections(krl: &Krl) -> Vec<(u8, Vec<u8>)> {
    let bytes = krl.to_bytes().unwrap();
    let mut r = Reader(&bytes);
    r.take(8 + 4 + 8 + 8 + 8);
    r.string();
    r.string();
    let sections = r.sections();
    assert_eq!(sections.len(), 1);
    assert_eq!(sections[0].0, KRL_SECTION_CERTIFICATES);
    let mut section = Reader(sections[0].1);
    assert_eq!(
        section.string(),
        krl.ca_keys[0].ca_key.to_bytes().unwrap(),
        "ca_key"
    );
    assert_eq!(section.string(), b"", "reserved");
    section
        .sections()
        .into_iter()
        .map(|(t, d)| (t, d.to_vec()))
        .collect()
}

fn u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[test]
fn runs_of_three_or_more_become_ranges_and_the_rest_lists_in_order() {
    let ca = key(1);
    let serials = [
        14,
        1,
        2,
        5,
        6,
        7,
        8,
        10,
        12,
        13,
        u64::MAX,
        u64::MAX - 1,
        8,
        0,
    ];
    let got = subsections(&krl(vec![revoke(&ca, &serials, &["b", "a", "b"])]));
    let ids: Vec<u8> = [&[0, 0, 0, 1, b'a'][..], &[0, 0, 0, 1, b'b']].concat();
    assert_eq!(
        got,
        [
            (KRL_SECTION_CERT_SERIAL_LIST, u64s(&[1, 2])),
            (KRL_SECTION_CERT_SERIAL_RANGE, u64s(&[5, 8])),
            (KRL_SECTION_CERT_SERIAL_LIST, u64s(&[10])),
            (KRL_SECTION_CERT_SERIAL_RANGE, u64s(&[12, 14])),
            (
                KRL_SECTION_CERT_SERIAL_LIST,
                u64s(&[u64::MAX - 1, u64::MAX])
            ),
            (KRL_SECTION_CERT_KEY_ID, ids),
        ]
    );
}

#[test]
fn a_run_reaching_u64_max_is_one_range() {
    let ca = key(1);
    let got = subsections(&krl(vec![revoke(
        &ca,
        &[u64::MAX, u64::MAX - 2, u64::MAX - 1],
        &[],
    )]));
    assert_eq!(
        got,
        [(
            KRL_SECTION_CERT_SERIAL_RANGE,
            u64s(&[u64::MAX - 2, u64::MAX])
        )]
    );
}

#[test]
fn entries_for_the_same_ca_key_merge_whatever_their_comments() {
    let ca = key(1);
    let mut renamed = revoke(&ca, &[2], &["x"]);
    renamed.ca_key.set_comment("another name");
    let merged = krl(vec![
        revoke(&ca, &[1], &[]),
        renamed,
        revoke(&ca, &[3], &["x"]),
    ]);
    assert_eq!(
        subsections(&merged),
        [
            (KRL_SECTION_CERT_SERIAL_RANGE, u64s(&[1, 3])),
            (KRL_SECTION_CERT_KEY_ID, [&[0, 0, 0, 1][..], b"x"].concat()),
        ]
    );
}

#[test]
fn rejects_key_ids_and_comments_openssh_cannot_read() {
    let ca = key(1);
    let empty = krl(vec![revoke(&ca, &[1], &[""])]).to_bytes();
    assert!(matches!(empty, Err(Error::EmptyKeyId)), "{empty:?}");
    let nul = krl(vec![revoke(&ca, &[], &["a\0b"])]).to_bytes();
    assert!(
        matches!(nul, Err(Error::KeyIdContainsNul { .. })),
        "{nul:?}"
    );
    let mut comment = krl(vec![]);
    comment.comment = "a\0b".into();
    assert!(matches!(comment.to_bytes(), Err(Error::CommentContainsNul)));
}
