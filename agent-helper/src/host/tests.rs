use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::files::Changes;
use super::install::{check_certificate, principals_files};
use super::refresh::renewal_due;
use super::sshd::{Sshd, includes};
use super::state::{State, normalize_fingerprint};
use super::{Layout, krl};

/// A KRL as the CA writes one: header, then `sections` (type, body).
fn krl_bytes(version: u64, generated_at: u64, sections: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = b"SSHKRL\n\0".to_vec();
    b.extend(1u32.to_be_bytes());
    b.extend(version.to_be_bytes());
    b.extend(generated_at.to_be_bytes());
    b.extend(0u64.to_be_bytes());
    b.extend(0u32.to_be_bytes());
    b.extend(8u32.to_be_bytes());
    b.extend(b"shiftkey");
    for (kind, body) in sections {
        b.push(*kind);
        b.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
        b.extend(*body);
    }
    b
}

/// A certificates section for any CA (empty key) revoking serial 5.
const SERIAL_5: &[u8] = &[
    0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5,
];

#[test]
fn a_krl_parses_only_when_whole() {
    let good = krl_bytes(3, 1000, &[(1, SERIAL_5)]);
    let info = krl::parse(&good).unwrap();
    assert_eq!(
        (info.version, info.generated_at, info.sections),
        (3, 1000, 1)
    );
    assert_eq!(krl::parse(&krl_bytes(0, 0, &[])).unwrap().sections, 0);

    assert_eq!(
        krl::parse(b"<html>502 Bad Gateway</html>"),
        Err(krl::Error::Magic)
    );
    assert_eq!(krl::parse(b""), Err(krl::Error::Magic));
    let mut v2 = good.clone();
    v2[11] = 2;
    assert_eq!(krl::parse(&v2), Err(krl::Error::Version(2)));
    for cut in [9, 20, 40, good.len() - 1] {
        assert!(
            matches!(krl::parse(&good[..cut]), Err(krl::Error::Truncated(_))),
            "cut at {cut}"
        );
    }
    assert_eq!(
        krl::parse(&krl_bytes(1, 0, &[(4, b"sig")])),
        Err(krl::Error::UnknownSection(4))
    );
}

#[test]
fn a_krl_whose_sections_frame_but_openssh_cannot_read_is_refused() {
    // Each of these frames as sections and used to be installed; `ssh-keygen
    // -Q` refuses them ("incomplete message", "invalid format"), and sshd
    // would then refuse every key.
    let serial_zero = [&SERIAL_5[..SERIAL_5.len() - 1], &[0]].concat();
    let trailing = [&SERIAL_5[..12], &[9], &SERIAL_5[13..], &[7]].concat();
    for (body, what) in [
        (&b"\xff\xff"[..], "a body that is not a CA key"),
        (&b"certificates"[..], "text"),
        (&serial_zero[..], "serial 0"),
        (&trailing[..], "a list with a partial serial"),
        (
            &[0, 0, 0, 0, 0, 0, 0, 0, 0x24, 0, 0, 0, 0][..],
            "an unknown subsection",
        ),
    ] {
        assert!(
            krl::parse(&krl_bytes(1, 0, &[(1, body)])).is_err(),
            "{what}"
        );
    }
    assert!(krl::parse(&krl_bytes(1, 0, &[(5, &[0, 0, 0, 1, 0xaa])])).is_err());
}

#[test]
fn krls_that_differ_only_in_their_date_revoke_the_same() {
    let a = krl_bytes(3, 1000, &[(1, b"x")]);
    assert!(krl::same_revocations(&a, &krl_bytes(3, 2000, &[(1, b"x")])));
    assert!(!krl::same_revocations(
        &a,
        &krl_bytes(4, 1000, &[(1, b"x")])
    ));
    assert!(!krl::same_revocations(
        &a,
        &krl_bytes(3, 1000, &[(1, b"y")])
    ));
    assert!(!krl::same_revocations(&a, &krl_bytes(3, 1000, &[])));
    assert!(!krl::same_revocations(b"short", b"short"));
}

#[test]
fn renewal_is_due_with_a_third_left() {
    let (after, before) = (1000, 1000 + 3000);
    assert!(!renewal_due(after, before, 1000));
    assert!(!renewal_due(after, before, 2999));
    assert!(renewal_due(after, before, 3001));
    assert!(renewal_due(after, before, 5000), "expired");
}

#[test]
fn include_lines_are_matched_like_sshd() {
    let drop_in = Path::new("/etc/ssh/sshd_config.d/50-shiftkey.conf");
    for yes in [
        "Include /etc/ssh/sshd_config.d/*.conf\n",
        "# comment\ninclude sshd_config.d/*.conf\n",
        "  Include /etc/other.conf /etc/ssh/sshd_config.d/50-*.conf\n",
        "Include \"/etc/ssh/sshd_config.d/*\"\n",
    ] {
        assert!(includes(yes, drop_in), "{yes}");
    }
    for no in [
        "",
        "#Include /etc/ssh/sshd_config.d/*.conf\n",
        "Include /etc/ssh/*.conf\n",
        "Include /etc/ssh/sshd_config.d/*.cfg\n",
        "Include /etc/ssh/sshd_config.d/other.conf\n",
        "Port 22\n",
    ] {
        assert!(!includes(no, drop_in), "{no}");
    }
}

#[test]
fn ssh_dirs_sshd_cannot_name_are_refused() {
    assert!(Layout::new(Path::new("/etc/ssh")).is_ok());
    for bad in [
        "etc/ssh",
        "/tmp/with space",
        "/tmp/%u",
        "/tmp/a#b",
        "/tmp/\"q",
    ] {
        assert!(Layout::new(Path::new(bad)).is_err(), "{bad}");
    }
}

#[test]
fn principals_files_hold_plain_names_only() {
    let mut map = BTreeMap::new();
    map.insert("sktest".to_owned(), vec!["sktest".to_owned()]);
    map.insert(
        "postgres".to_owned(),
        vec!["postgres".to_owned(), "command=\"sh\" root".to_owned()],
    );
    map.insert("../root".to_owned(), vec!["root".to_owned()]);
    map.insert("empty".to_owned(), vec!["bad name".to_owned()]);
    let (files, warnings) = principals_files(&map);
    assert_eq!(files.get("sktest").map(String::as_str), Some("sktest\n"));
    assert_eq!(
        files.get("postgres").map(String::as_str),
        Some("postgres\n")
    );
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(warnings.len(), 3, "{warnings:?}");

    let (files, warnings) = principals_files(&BTreeMap::new());
    assert!(files.is_empty());
    assert!(warnings[0].contains("no role"), "{warnings:?}");
}

#[test]
fn fingerprints_are_accepted_as_people_copy_them() {
    assert_eq!(normalize_fingerprint("SHA256:AB:cd"), "AB:cd");
    assert_eq!(normalize_fingerprint("sha256 Fingerprint=AB:CD"), "AB:CD");
    assert_eq!(normalize_fingerprint(" abcd "), "abcd");
}

#[test]
fn the_state_file_round_trips() {
    let state = State {
        ca: "https://ca.example.com:8443".into(),
        ca_bundle: None,
        ca_fingerprint: Some("ab".repeat(32)),
        name: "db-1".into(),
        kind: "host".into(),
        host_ca_keys: vec!["ssh-ed25519 AAAA host-ca".into()],
        sshd: "/usr/sbin/sshd".into(),
        sshd_config: "/etc/ssh/sshd_config".into(),
        reload_pid_file: None,
        enrolled_at: 1000,
        krl_fetched_at: Some(1200),
        renewed_at: None,
    };
    let text = state.to_toml().unwrap();
    assert_eq!(toml::from_str::<State>(&text).unwrap(), state);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn rollback_puts_every_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    let replaced = dir.path().join("replaced");
    let removed = dir.path().join("removed");
    let linked = dir.path().join("linked");
    std::fs::write(&kept, "same").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&replaced, "old").unwrap();
    std::fs::set_permissions(&replaced, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&removed, "gone?").unwrap();
    std::os::unix::fs::symlink("kept", &linked).unwrap();
    let new_dir = dir.path().join("new/deeper");

    let mut changes = Changes::default();
    assert!(!changes.write(&kept, b"same", 0o644).unwrap(), "unchanged");
    assert!(changes.write(&replaced, b"new", 0o644).unwrap());
    assert!(changes.write(&replaced, b"newer", 0o644).unwrap());
    assert!(changes.remove(&removed).unwrap());
    assert!(changes.write(&linked, b"not a link", 0o644).unwrap());
    changes.ensure_dir(&new_dir).unwrap();
    assert!(changes.write(&new_dir.join("f"), b"x", 0o644).unwrap());
    assert_eq!(std::fs::read(&replaced).unwrap(), b"newer");
    assert_eq!(mode(&replaced), 0o644);
    assert_eq!(changes.changed().len(), 5);

    assert!(changes.rollback().is_empty());
    assert_eq!(std::fs::read(&replaced).unwrap(), b"old");
    assert_eq!(mode(&replaced), 0o600);
    assert_eq!(std::fs::read(&removed).unwrap(), b"gone?");
    assert_eq!(
        std::fs::read_link(&linked).unwrap(),
        Path::new("kept"),
        "the symlink is a symlink again"
    );
    assert!(!dir.path().join("new").exists(), "created directories go");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "no temporary file is left: {names:?}");
}

#[test]
fn a_config_sshd_rejects_is_rolled_back() {
    // A stand-in for sshd that rejects every configuration, as `sshd -t`
    // does with a broken one: apply must restore the files it was given.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("sshd");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"line 4: Bad configuration option: Nonsense\" >&2\nexit 255\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = Layout::new(dir.path()).unwrap();
    let cert = layout.host_certificate();
    std::fs::write(&cert, "old certificate\n").unwrap();
    let sshd = Sshd {
        binary: fake,
        main_config: dir.path().join("sshd_config"),
    };
    let mut changes = Changes::default();
    changes.ensure_dir(&layout.drop_in_dir()).unwrap();
    changes
        .write(&cert, b"new certificate\n", super::PUBLIC_FILE_MODE)
        .unwrap();
    changes
        .write(&layout.drop_in(), b"Nonsense\n", super::PUBLIC_FILE_MODE)
        .unwrap();
    let error = super::install::apply(changes, &sshd, &layout, true).unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("Bad configuration option: Nonsense"),
        "{text}"
    );
    assert!(text.contains("put back"), "{text}");
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), "old certificate\n");
    assert!(!layout.drop_in_dir().exists());
}

/// A host certificate for `host_key`, signed by `ca`, with `extensions`.
fn host_certificate(
    ca: &ssh_key::PrivateKey,
    host_key: &ssh_key::PublicKey,
    extensions: &[&str],
) -> shiftkey_wire::HostCertificateResponse {
    let now = 2_000_000_000;
    let mut b = ssh_key::certificate::Builder::new_with_random_nonce(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        host_key.key_data().clone(),
        now - 60,
        now + 3600,
    )
    .unwrap();
    b.serial(5)
        .unwrap()
        .cert_type(ssh_key::certificate::CertType::Host)
        .unwrap()
        .key_id("bastion:bastion-1 for=db-1 serial=5")
        .unwrap()
        .valid_principal("db-1")
        .unwrap();
    for e in extensions {
        b.extension(*e, "").unwrap();
    }
    let certificate = b.sign(ca).unwrap();
    shiftkey_wire::HostCertificateResponse {
        certificate: certificate.to_openssh().unwrap(),
        serial: 5,
        name: "db-1".into(),
        kind: "host".into(),
        principals: vec!["db-1".into()],
        valid_after: now - 60,
        valid_before: now + 3600,
        user_ca_keys: vec![],
        host_ca_keys: vec![ca.public_key().to_openssh().unwrap()],
        authorized_principals: BTreeMap::new(),
    }
}

#[test]
fn a_certificate_minted_for_a_bastion_to_present_is_never_installed() {
    let random = || {
        ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap()
    };
    let (ca, host) = (random(), random());
    let now = 2_000_000_000;
    // The host's own certificate: taken.
    check_certificate(
        host_certificate(&ca, host.public_key(), &[]),
        host.public_key(),
        now,
    )
    .unwrap();
    // The same, marked as presented by a bastion (a bastion's key would be
    // in it; here even this host's key): refused, and said why.
    let marked = host_certificate(
        &ca,
        host.public_key(),
        &[shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION],
    );
    let error = check_certificate(marked, host.public_key(), now).unwrap_err();
    assert!(
        error.to_string().contains("presented-by-bastion@shiftkey"),
        "{error}"
    );
}
