//! Revocation end to end: the CA's KRL, checked by `ssh-keygen -Q` and
//! enforced by a real sshd with `RevokedKeys`; resolving an incident revokes
//! what was issued under it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{ensure_login_user, run, run_ok, ssh_keygen};

use crate::fixtures::{LOGIN_USER, policy};

/// A key made by ssh-keygen and a certificate for it from the CA (local socket).
fn certified(
    ca: &TestCa,
    dir: &Path,
    name: &str,
    extra: Value,
) -> anyhow::Result<(PathBuf, PathBuf, Value)> {
    let key = ssh_keygen(dir, name, &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let mut body = json!({ "public_key": public.trim(), "role": "shell" });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, answer) = ca.request_local(&body)?;
    assert_eq!(status, 200, "{answer}");
    let cert = dir.join(format!("{name}-cert.pub"));
    std::fs::write(
        &cert,
        format!("{}\n", answer["certificate"].as_str().unwrap_or_default()),
    )?;
    Ok((key, cert, answer))
}

fn fetch_krl(ca: &TestCa, path: &Path) -> anyhow::Result<()> {
    let bytes = ca.client().get(ca.url("/v1/krl")).send()?.bytes()?;
    std::fs::write(path, &bytes)?;
    Ok(())
}

/// `ssh-keygen -Q -f KRL CERT`: true when the KRL revokes it.
fn revoked(krl: &Path, cert: &Path) -> anyhow::Result<bool> {
    let out = run(Command::new("ssh-keygen")
        .arg("-Q")
        .arg("-f")
        .arg(krl)
        .arg(cert))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(!out.status.success() && text.contains("REVOKED"))
}

#[test]
fn a_revoked_serial_is_in_the_krl_and_sshd_refuses_it() -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let (key_a, cert_a, a) = certified(&ca, work.path(), "a", json!({}))?;
    let (key_b, cert_b, _) = certified(&ca, work.path(), "b", json!({}))?;
    let krl = work.path().join("revoked.krl");

    fetch_krl(&ca, &krl)?;
    assert!(
        !revoked(&krl, &cert_a)? && !revoked(&krl, &cert_b)?,
        "an empty KRL revokes nothing"
    );

    let serial = a["serial"].as_u64().unwrap_or(0).to_string();
    let dir = ca.data_dir().to_string_lossy().into_owned();
    let out = run_ok(
        Command::new(shiftkey_tests::util::binary("shiftkey-ca")?).args([
            "revoke",
            "--data-dir",
            &dir,
            "--serial",
            &serial,
            "--reason",
            "laptop stolen",
        ]),
    )?;
    assert!(
        out.contains(&format!("revoked serial(s) {serial}")),
        "{out}"
    );

    fetch_krl(&ca, &krl)?;
    assert!(
        revoked(&krl, &cert_a)?,
        "ssh-keygen -Q reports the revoked certificate"
    );
    assert!(!revoked(&krl, &cert_b)?, "and only that one");
    let row = ca.last_audit("certificate.revoked")?;
    assert_eq!(row["detail"]["serials"], json!([a["serial"]]));
    assert_eq!(row["detail"]["reason"], "laptop stolen");

    // A real sshd with RevokedKeys pointing at the served KRL, taking the
    // role's scoped principal for the login as an enrolled host does.
    let user_ca = ca.client().get(ca.url("/v1/ca/user.pub")).send()?.text()?;
    let sshd_dir = work.path().join("sshd");
    std::fs::create_dir_all(&sshd_dir)?;
    std::fs::copy(&krl, sshd_dir.join("revoked.krl"))?;
    let principals = principals_config(&sshd_dir, LOGIN_USER, &[&format!("{LOGIN_USER}@shell")])?;
    let sshd = Sshd::start_with_extra(
        &sshd_dir,
        &user_ca,
        &format!(
            "RevokedKeys {}\n{principals}",
            sshd_dir.join("revoked.krl").display()
        ),
    )?;
    let refused = sshd.ssh(&key_a, &cert_a, LOGIN_USER, "true")?;
    assert!(
        !refused.status.success(),
        "the revoked certificate is refused"
    );
    let accepted = sshd.ssh(&key_b, &cert_b, LOGIN_USER, "echo ok")?;
    assert!(
        accepted.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&accepted.stderr),
        sshd.log()
    );
    Ok(())
}

#[test]
fn resolving_an_incident_revokes_its_certificates() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;

    // Naming an incident the CA does not know is refused.
    let key = ssh_keygen(work.path(), "probe", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, answer) = ca.request_local(
        &json!({ "public_key": public.trim(), "role": "shell", "incident": "INC-7" }),
    )?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("incident-unknown")),
        "{answer}"
    );

    let (status, opened) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-7", "title": "disk full", "severity": "sev2" }),
    )?;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["status"], "open");
    let (status, again) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-7", "title": "again", "severity": "sev2" }),
    )?;
    assert_eq!(status, 409, "{again}");

    let (_, cert_in, under) = certified(&ca, work.path(), "in", json!({ "incident": "INC-7" }))?;
    assert!(
        under["key_id"]
            .as_str()
            .unwrap_or_default()
            .contains(" incident=INC-7 "),
        "{under}"
    );
    let (_, cert_out, _) = certified(&ca, work.path(), "out", json!({}))?;

    let (status, listed) = ca.local("GET", "/v1/incidents?status=open", &json!(null))?;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let (status, resolved) = ca.local("POST", "/v1/incidents/INC-7/resolve", &json!(null))?;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["incident"]["status"], "resolved");
    assert_eq!(resolved["revoked_serials"], json!([under["serial"]]));

    let krl = work.path().join("krl");
    fetch_krl(&ca, &krl)?;
    assert!(
        revoked(&krl, &cert_in)?,
        "the certificate issued under the incident is revoked"
    );
    assert!(!revoked(&krl, &cert_out)?, "others are not");

    // No new access under a resolved incident.
    let (status, answer) = ca.request_local(
        &json!({ "public_key": public.trim(), "role": "shell", "incident": "INC-7" }),
    )?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("incident-resolved")),
        "{answer}"
    );
    let (status, _) = ca.local("POST", "/v1/incidents/INC-7/resolve", &json!(null))?;
    assert_eq!(status, 409, "resolving twice is a conflict");
    for kind in [
        "incident.opened",
        "incident.resolved",
        "certificate.revoked",
    ] {
        ca.last_audit(kind)?;
    }
    Ok(())
}

#[test]
fn revocations_reach_event_subscribers_within_two_seconds() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let (_, _, issued) = certified(&ca, work.path(), "k", json!({}))?;
    let serial = issued["serial"].as_u64().unwrap_or(0);
    let socket = ca.socket();
    let needle = format!("\"serials\":[{serial}]");
    let watcher = {
        let needle = needle.clone();
        std::thread::spawn(move || {
            shiftkey_tests::ca::stream_over_socket(
                &socket,
                "/v1/events",
                std::time::Duration::from_secs(10),
                |t| t.contains(&needle),
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dir = ca.data_dir().to_string_lossy().into_owned();
    let started = std::time::Instant::now();
    run_ok(
        Command::new(shiftkey_tests::util::binary("shiftkey-ca")?).args([
            "revoke",
            "--data-dir",
            &dir,
            "--serial",
            &serial.to_string(),
            "--reason",
            "test the stream",
        ]),
    )?;
    let seen = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))??;
    let took = started.elapsed();
    assert!(seen.contains("event: certificate.revoked"), "{seen}");
    assert!(seen.contains(&needle), "{seen}");
    // Figures are not asserted in tests (a slow machine must not fail them),
    // but the design target of under 2 s is printed for the record.
    eprintln!("revocation reached the subscriber after {took:?}");

    // A subscriber that was away replays what it missed from the log.
    let replay = shiftkey_tests::ca::stream_over_socket(
        &ca.socket(),
        "/v1/events?since=0",
        std::time::Duration::from_secs(5),
        |t| t.contains(&needle),
    )?;
    assert!(replay.contains(&needle), "{replay}");
    Ok(())
}

/// `[store] path` in ca.toml moves the rows; the CA and every command given
/// the data directory follow it (revoke, audit export and verify, hosts),
/// and nothing is created at the default place.
#[test]
fn every_command_uses_the_store_that_ca_toml_names() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?;
    let dir = ca.data_dir().to_owned();
    std::fs::rename(dir.join("shiftkey.db"), dir.join("rows.db"))?;
    let config = std::fs::read_to_string(dir.join("ca.toml"))?;
    std::fs::write(
        dir.join("ca.toml"),
        format!("{config}\n[store]\npath = \"rows.db\"\n"),
    )?;
    let ca = ca.start()?;
    let work = tempfile::tempdir()?;
    let (_, cert, answer) = certified(&ca, work.path(), "a", json!({}))?;
    let serial = answer["serial"].as_u64().unwrap_or(0).to_string();
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = run_ok(
        Command::new(shiftkey_tests::util::binary("shiftkey-ca")?).args([
            "revoke",
            "--data-dir",
            &dir_arg,
            "--serial",
            &serial,
            "--reason",
            "moved store",
        ]),
    )?;
    assert!(
        out.contains(&format!("revoked serial(s) {serial}")),
        "{out}"
    );
    // The running CA serves it from the same rows.
    let krl = work.path().join("krl");
    fetch_krl(&ca, &krl)?;
    assert!(revoked(&krl, &cert)?);
    run_ok(
        Command::new(shiftkey_tests::util::binary("shiftkey-ca")?).args([
            "hosts",
            "token",
            "--data-dir",
            &dir_arg,
            "--name",
            "db-1",
            "--principals",
            "db-1.example.com",
        ]),
    )?;
    let kinds: Vec<String> = ca
        .audit_rows()?
        .iter()
        .filter_map(|r| r["kind"].as_str().map(str::to_owned))
        .collect();
    for kind in [
        "keys.created",
        "certificate.issued",
        "certificate.revoked",
        "host.token_created",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    run_ok(
        Command::new(shiftkey_tests::util::binary("shiftkey-ca")?).args([
            "audit",
            "verify",
            "--data-dir",
            &dir_arg,
        ]),
    )?;
    assert!(
        !dir.join("shiftkey.db").exists(),
        "nothing was created at the default place"
    );
    Ok(())
}
