//! Role-scoped access on enrolled hosts (issue 13 §2): two roles share the
//! login `sktest`, `web-ops` on `web-*` and `db-ops` on `db-*`. Two real
//! sshd, enrolled by `shiftkey host enroll` as `web-1` and `db-1`, each list
//! only the principals of the roles whose hosts match them, so a `web-ops`
//! certificate does not open `db-1`; a policy change that takes `db-*` from
//! `db-ops` reaches `db-1` with `shiftkey host refresh`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::sshd::Sshd;
use shiftkey_tests::util::{ensure_login_user, ssh_keygen};

use crate::fixtures::LOGIN_USER;
use crate::hosts::{Host, HostTrust, join_token_for, ssh, text};

fn policy(db_hosts: &str) -> String {
    format!(
        r#"
[settings]
max_ttl = "1h"

[[role]]
name = "web-ops"
principals = ["{LOGIN_USER}"]
hosts = ["web-*"]
max_ttl = "10m"

[[role]]
name = "db-ops"
principals = ["{LOGIN_USER}"]
hosts = [{db_hosts}]
max_ttl = "10m"

[[grant]]
identities = ["local:root"]
roles = ["web-ops", "db-ops"]
"#
    )
}

/// A host enrolled under `name` (its certificate's one name), with sshd
/// running on it.
fn enrolled(ca: &TestCa, name: &str) -> anyhow::Result<(Host, Sshd)> {
    let host = Host::new()?;
    let mut sshd = host.start_sshd()?;
    let (token, _) = join_token_for(ca, name, name, "1h")?;
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.enroll(ca, &token, &["--reload-pid-file", &pid_file])?;
    anyhow::ensure!(out.status.success(), "{}", text(&out));
    anyhow::ensure!(sshd.wait_listening(2)?, "{}", sshd.log());
    Ok((host, sshd))
}

/// A key with a certificate for `role` from the CA's socket.
fn certified(ca: &TestCa, dir: &Path, role: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = ssh_keygen(dir, role, &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, answer) =
        ca.request_local(&json!({ "public_key": public.trim(), "role": role }))?;
    anyhow::ensure!(status == 200, "{answer}");
    assert_eq!(
        answer["principals"],
        json!([format!("{LOGIN_USER}@{role}")])
    );
    let cert = dir.join(format!("{role}-cert.pub"));
    std::fs::write(
        &cert,
        format!("{}\n", answer["certificate"].as_str().unwrap_or_default()),
    )?;
    Ok((key, cert))
}

fn principals_file(host: &Host) -> Option<String> {
    std::fs::read_to_string(
        host.path()
            .join(format!("shiftkey/principals/{LOGIN_USER}")),
    )
    .ok()
}

/// Whether `key` with `cert` logs in as `sktest` on `sshd`.
fn logs_in(sshd: &Sshd, key: &Path, cert: &Path) -> anyhow::Result<bool> {
    let out = ssh(sshd, key, Some(cert), HostTrust::Any, "echo in")?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "in")
}

#[test]
fn a_role_opens_only_the_hosts_its_patterns_match_and_a_refresh_follows_the_policy()
-> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let ca = TestCa::init(&policy(r#""db-*""#), None)?.start()?;
    let work = tempfile::tempdir()?;
    let (web, web_sshd) = enrolled(&ca, "web-1")?;
    let (db, db_sshd) = enrolled(&ca, "db-1")?;
    assert_eq!(
        principals_file(&web).as_deref(),
        Some(format!("{LOGIN_USER}@web-ops\n").as_str())
    );
    assert_eq!(
        principals_file(&db).as_deref(),
        Some(format!("{LOGIN_USER}@db-ops\n").as_str())
    );

    let (web_key, web_cert) = certified(&ca, work.path(), "web-ops")?;
    let (db_key, db_cert) = certified(&ca, work.path(), "db-ops")?;
    assert!(
        !logs_in(&db_sshd, &web_key, &web_cert)?,
        "a web-ops certificate must not open db-1\n{}",
        db_sshd.log()
    );
    assert!(
        db_sshd
            .log()
            .contains("Certificate does not contain an authorized principal")
            || db_sshd.log().contains("not a listed principal"),
        "{}",
        db_sshd.log()
    );
    assert!(
        logs_in(&web_sshd, &web_key, &web_cert)?,
        "{}",
        web_sshd.log()
    );
    assert!(logs_in(&db_sshd, &db_key, &db_cert)?, "{}", db_sshd.log());
    assert!(
        !logs_in(&web_sshd, &db_key, &db_cert)?,
        "{}",
        web_sshd.log()
    );

    // The policy takes db-* from db-ops; the CA reloads it, and the host's
    // timer (`shiftkey host refresh`) brings it to db-1.
    std::fs::write(ca.data_dir().join("policy.toml"), policy(r#""replica-*""#))?;
    ca.signal("HUP")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ca
        .audit_rows()?
        .iter()
        .any(|r| r["kind"] == "policy.reloaded")
    {
        anyhow::ensure!(Instant::now() < deadline, "no reload:\n{}", ca.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let refreshed = db.shiftkey(&["refresh"])?;
    assert!(refreshed.status.success(), "{}", text(&refreshed));
    assert_eq!(principals_file(&db), None, "no role covers db-1 now");
    assert!(
        !logs_in(&db_sshd, &db_key, &db_cert)?,
        "after the refresh, db-ops no longer opens db-1\n{}",
        db_sshd.log()
    );
    // web-1's roles did not change: its refresh changes nothing there.
    let refreshed = web.shiftkey(&["refresh"])?;
    assert!(refreshed.status.success(), "{}", text(&refreshed));
    assert!(
        logs_in(&web_sshd, &web_key, &web_cert)?,
        "{}",
        web_sshd.log()
    );
    Ok(())
}
