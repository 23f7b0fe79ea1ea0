//! A certificate from the running CA, checked by `ssh-keygen -L` and used
//! against a real `sshd` that trusts only the CA.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{ensure_login_user, run_ok, ssh_keygen};

use crate::fixtures::{LOGIN_USER, policy};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[test]
fn sshd_accepts_the_certificate_until_it_expires() -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id_ed25519", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;

    let ttl = 12;
    let (status, body) = ca.request_local(&json!({
        "public_key": public.trim(), "role": "shell", "reason": "e2e test", "ttl": format!("{ttl}s"),
    }))?;
    assert_eq!(status, 200, "{body}\n{}", ca.log());
    let cert_path = work.path().join("id_ed25519-cert.pub");
    std::fs::write(
        &cert_path,
        format!("{}\n", body["certificate"].as_str().unwrap_or_default()),
    )?;

    // The API's answer matches the certificate.
    let serial = body["serial"].as_u64().unwrap_or(0);
    assert!(serial >= 1);
    // The login, scoped to the role: only hosts whose principals file lists
    // `sktest@shell` (the role's hosts) take it.
    let principal = format!("{LOGIN_USER}@shell");
    assert_eq!(body["principals"], json!([principal]));
    let key_id = body["key_id"].as_str().unwrap_or_default().to_owned();
    assert!(
        key_id.starts_with("local:root role=shell req=r_"),
        "{key_id}"
    );
    assert!(key_id.ends_with(&format!(" serial={serial}")), "{key_id}");
    let (after, before) = (
        body["valid_after"].as_u64().unwrap_or(0),
        body["valid_before"].as_u64().unwrap_or(0),
    );
    let now = unix_now();
    assert!(
        after < now && now - after <= 70,
        "backdated by a small skew: {after} vs {now}"
    );
    assert!(
        before > now && before <= now + ttl,
        "ends at the requested ttl: {before} vs {now}"
    );

    // ssh-keygen decodes it as we said.
    let listing = run_ok(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&cert_path),
    )?;
    assert!(
        listing.contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("Key ID: \"{key_id}\"")),
        "{listing}"
    );
    assert!(listing.contains(&format!("Serial: {serial}")), "{listing}");
    assert!(
        listing.contains(&format!("Principals: \n                {principal}\n")),
        "{listing}"
    );
    assert!(
        listing.contains("permit-pty") && !listing.contains("permit-port-forwarding"),
        "{listing}"
    );

    // sshd trusts the user CA key as served by the CA, and nothing else.
    let user_ca = ca.client().get(ca.url("/v1/ca/user.pub")).send()?.text()?;
    assert_eq!(user_ca.lines().count(), 1);
    // A host of the role lists the scoped principal for the login, as
    // `shiftkey host enroll` writes it; a host that lists nothing refuses.
    let plain = Sshd::start(&work.path().join("plain"), &user_ca)?;
    let refused = plain.ssh(&key, &cert_path, LOGIN_USER, "true")?;
    assert!(
        !refused.status.success(),
        "the bare login is not in the certificate: {}",
        plain.log()
    );
    drop(plain);
    let sshd_dir = work.path().join("sshd");
    let sshd = Sshd::start_with_extra(
        &sshd_dir,
        &user_ca,
        &principals_config(&sshd_dir, LOGIN_USER, &[&principal])?,
    )?;

    let ok = sshd.ssh(&key, &cert_path, LOGIN_USER, "echo hello from $(id -un)")?;
    assert!(
        ok.status.success(),
        "ssh failed: {}\nsshd: {}",
        String::from_utf8_lossy(&ok.stderr),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        format!("hello from {LOGIN_USER}")
    );

    let wrong = sshd.ssh(&key, &cert_path, "root", "true")?;
    assert!(
        !wrong.status.success(),
        "a principal not in the certificate must be refused"
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Permission denied"));

    // The key alone, without the certificate, is no way in.
    let bare = sshd.ssh(&key, &work.path().join("missing-cert"), LOGIN_USER, "true")?;
    assert!(!bare.status.success());

    // After valid_before, the same certificate is refused.
    let wait = before.saturating_sub(unix_now()) + 2;
    std::thread::sleep(Duration::from_secs(wait));
    let expired = sshd.ssh(&key, &cert_path, LOGIN_USER, "true")?;
    assert!(
        !expired.status.success(),
        "an expired certificate must be refused"
    );
    assert!(
        sshd.log().contains("expired")
            || sshd.log().contains("not yet valid")
            || sshd.log().contains("Certificate invalid"),
        "{}",
        sshd.log()
    );

    // The issuance is in the audit log with what sshd saw.
    let row = ca.last_audit("certificate.issued")?;
    assert_eq!(row["actor"], "local:root");
    assert_eq!(row["outcome"], "allow");
    assert_eq!(row["detail"]["serial"], serial);
    assert_eq!(row["detail"]["key_id"], key_id.as_str());
    Ok(())
}

#[test]
fn serials_are_unique_and_increase_under_concurrency() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let body = json!({ "public_key": public.trim(), "role": "shell" });
    let serials: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    (0..5)
                        .map(|_| {
                            ca.request_local(&body)
                                .map(|(_, b)| b["serial"].as_u64().unwrap_or(0))
                        })
                        .collect::<anyhow::Result<Vec<u64>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| Ok(vec![])).unwrap_or_default())
            .collect()
    });
    let mut sorted = serials.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 40, "40 distinct serials: {serials:?}");
    assert!(sorted.iter().all(|s| *s >= 1));
    Ok(())
}

#[test]
fn ecdsa_and_large_rsa_keys_are_accepted() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    for (name, args) in [
        ("ecdsa", vec!["-t", "ecdsa", "-b", "256"]),
        ("rsa3072", vec!["-t", "rsa", "-b", "3072"]),
    ] {
        let key = ssh_keygen(work.path(), name, &args)?;
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        let (status, body) =
            ca.request_local(&json!({ "public_key": public.trim(), "role": "shell" }))?;
        assert_eq!(status, 200, "{name}: {body}");
    }
    Ok(())
}

#[test]
fn the_audit_commit_failing_means_nothing_is_issued() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    // Another process holds SQLite's write lock for longer than the CA waits.
    let db = ca.data_dir().join("shiftkey.db");
    let mut blocker = Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    {
        use std::io::Write;
        let stdin = blocker
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("sqlite3 stdin"))?;
        writeln!(
            stdin,
            "BEGIN EXCLUSIVE; INSERT INTO certificates SELECT * FROM certificates WHERE 0;"
        )?;
        stdin.flush()?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) =
        ca.request_local(&json!({ "public_key": public.trim(), "role": "shell" }))?;
    drop(blocker.stdin.take());
    let _ = blocker.wait();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "audit-unavailable");
    assert!(body.get("certificate").is_none());
    // The lock is gone: the CA issues again and never handed out the failed serial.
    let (status, body) =
        ca.request_local(&json!({ "public_key": public.trim(), "role": "shell" }))?;
    assert_eq!(status, 200, "{body}");
    let issued = ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["kind"] == "certificate.issued")
        .count();
    assert_eq!(issued, 1, "only the second request was issued");
    Ok(())
}
