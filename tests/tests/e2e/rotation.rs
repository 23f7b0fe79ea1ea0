//! CA key rotation end to end (`shiftkey-ca keys`): a real sshd enrolled
//! with `shiftkey host enroll` and real `ssh` across a whole planned
//! rotation (a certificate from the old key works through rotate and
//! activate until retire; certificates from the new key work once the host
//! refreshed; after retire the old key's are refused; `keys status` names
//! a host that has not refreshed), the same with the next key on SoftHSM,
//! an emergency rotation (the KRL names the old key: `ssh-keygen -Q` and
//! sshd refuse its certificates at once), and the refusals.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::services::TestDatabase;
use shiftkey_tests::softhsm::{SoftHsm, softhsm_test, test_name};
use shiftkey_tests::sshd::Sshd;
use shiftkey_tests::util::{binary, ensure_login_user, free_port, krl_revokes, run, run_ok};

use crate::fixtures::{LOGIN_USER, policy};
use crate::hosts::{Host, HostTrust, certified, join_token_for, ssh, text};
use crate::recordings::{World, shell_cast};

const HOST_NAME: &str = "e2e-host";
const HOST_PRINCIPAL: &str = "127.0.0.1";

/// `shiftkey-ca keys ARGS --data-dir DIR`, stdin not a terminal.
fn keys(ca: &TestCa, args: &[&str]) -> anyhow::Result<Output> {
    run(Command::new(binary("shiftkey-ca")?)
        .arg("keys")
        .args(args)
        .arg("--data-dir")
        .arg(ca.data_dir())
        .stdin(Stdio::null()))
}

/// A phase with `--yes --json`: its result lines.
fn phase(ca: &TestCa, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut all = args.to_vec();
    all.extend(["--yes", "--json"]);
    let out = keys(ca, &all)?;
    ensure!(out.status.success(), "keys {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).context("a phase result is JSON"))
        .collect()
}

fn status(ca: &TestCa) -> anyhow::Result<Value> {
    let out = keys(ca, &["status", "--json"])?;
    ensure!(out.status.success(), "keys status: {}", text(&out));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The fingerprint of the key that signed `cert` (`ssh-keygen -L`).
fn signed_by(cert: &Path) -> anyhow::Result<String> {
    let out = run_ok(Command::new("ssh-keygen").arg("-L").arg("-f").arg(cert))?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Signing CA: "))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
        .context("no Signing CA in ssh-keygen -L")
}

/// Waits until the serving CA publishes `count` user CA keys (it follows a
/// phase through its event stream).
fn wait_published(ca: &TestCa, which: &str, count: usize) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = ca
            .client()
            .get(ca.url(&format!("/v1/ca/{which}.pub")))
            .send()?
            .text()?;
        if body.lines().count() == count {
            return Ok(body);
        }
        if Instant::now() > deadline {
            bail!("the CA still publishes {which} keys:\n{body}\n{}", ca.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asks for user certificates until one is signed by `fingerprint` (the
/// CA reloads its signer after `activate`).
fn certified_by(
    ca: &TestCa,
    dir: &Path,
    name: &str,
    fingerprint: &str,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    for attempt in 0.. {
        let (key, cert, _) = certified(ca, dir, &format!("{name}{attempt}"))?;
        if signed_by(&cert)? == fingerprint {
            return Ok((key, cert));
        }
        if Instant::now() > deadline {
            bail!("the CA still signs with another key than {fingerprint}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    unreachable!()
}

fn lagging_hosts(status: &Value) -> Vec<String> {
    status["lagging"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|h| h["host"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `shiftkey host refresh`, then waits for sshd to listen again if the
/// refresh reloaded it (a SIGHUP restarts sshd).
fn refresh(host: &Host, sshd: &mut Sshd) -> anyhow::Result<()> {
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.shiftkey(&["refresh", "--reload-pid-file", &pid_file])?;
    ensure!(out.status.success(), "refresh: {}", text(&out));
    let reloads = sshd.log().matches("Received SIGHUP").count();
    ensure!(sshd.wait_listening(reloads + 1)?, "{}", sshd.log());
    Ok(())
}

/// Whether `ssh` logs in with `key` and `cert`.
fn login(sshd: &Sshd, key: &Path, cert: &Path) -> anyhow::Result<bool> {
    Ok(ssh(sshd, key, Some(cert), HostTrust::Any, "echo in")?
        .status
        .success())
}

/// The whole planned rotation of the user CA against an enrolled sshd.
fn planned_rotation(ca: &TestCa, expect_location: &str) -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let host = Host::new()?;
    let work = tempfile::tempdir()?;
    let mut sshd = host.start_sshd()?;
    let (token, _) = join_token_for(ca, HOST_NAME, HOST_PRINCIPAL, "1h")?;
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.enroll(ca, &token, &["--reload-pid-file", &pid_file])?;
    ensure!(out.status.success(), "enroll: {}", text(&out));
    ensure!(sshd.wait_listening(2)?, "{}", sshd.log());

    // Before: one key; the host has not refreshed since enrolling.
    let before = status(ca)?;
    let old = before["keys"][0]["fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(before["keys"][0]["state"] == "active", "{before}");
    ensure!(
        lagging_hosts(&before) == [HOST_NAME],
        "a host that never refreshed lags: {before}"
    );
    let (old_key, old_cert, _) = certified(ca, work.path(), "old")?;
    ensure!(signed_by(&old_cert)? == old);
    ensure!(login(&sshd, &old_key, &old_cert)?, "{}", sshd.log());

    // Refused: activate without a next key; a phase without --yes and
    // without a terminal; retire with nothing to retire.
    let out = keys(ca, &["activate", "--user", "--yes"])?;
    ensure!(
        !out.status.success() && text(&out).contains("no next user CA key"),
        "{}",
        text(&out)
    );
    let out = keys(ca, &["rotate", "--user"])?;
    ensure!(
        !out.status.success() && text(&out).contains("pass --yes"),
        "{}",
        text(&out)
    );
    ensure!(ca.last_audit("ca_key.refused")?["detail"]["phase"] == "activate");

    // Rotate: the next key is published beside the old one.
    let rotated = phase(ca, &["rotate", "--user"])?;
    let next = rotated[0]["key"].as_str().unwrap_or_default().to_owned();
    ensure!(
        rotated[0]["location"]
            .as_str()
            .is_some_and(|l| l.contains(expect_location)),
        "{rotated:?}"
    );
    ensure!(next != old);
    let published = wait_published(ca, "user", 2)?;
    ensure!(ca.last_audit("ca_key.rotated")?["detail"]["next"] == next.as_str());
    let lag = status(ca)?;
    ensure!(lagging_hosts(&lag) == [HOST_NAME], "{lag}");
    // Another rotation while one is under way is refused.
    let out = keys(ca, &["rotate", "--user", "--yes"])?;
    ensure!(
        !out.status.success() && text(&out).contains("under way"),
        "{}",
        text(&out)
    );

    // The host refreshes: it trusts both keys and reports so.
    refresh(&host, &mut sshd)?;
    let trusted = std::fs::read_to_string(host.path().join("shiftkey/user_ca.pub"))?;
    ensure!(trusted == published, "{trusted}\nvs\n{published}");
    let after_refresh = status(ca)?;
    ensure!(lagging_hosts(&after_refresh).is_empty(), "{after_refresh}");
    ensure!(login(&sshd, &old_key, &old_cert)?, "{}", sshd.log());

    // Activate: new certificates come from the next key and log in; the
    // old certificate still works.
    let activated = phase(ca, &["activate", "--user"])?;
    ensure!(activated[0]["active"] == next.as_str(), "{activated:?}");
    let (new_key, new_cert) = certified_by(ca, work.path(), "new", &next)?;
    ensure!(login(&sshd, &new_key, &new_cert)?, "{}", sshd.log());
    ensure!(login(&sshd, &old_key, &old_cert)?, "{}", sshd.log());

    // Retire: refused while the old certificate is valid, forced here.
    let out = keys(ca, &["retire", "--user", "--yes"])?;
    ensure!(
        !out.status.success() && text(&out).contains("can still be valid"),
        "{}",
        text(&out)
    );
    let retired = phase(ca, &["retire", "--user", "--force"])?;
    ensure!(retired[0]["key"] == old.as_str(), "{retired:?}");
    ensure!(retired[0]["still_valid"].as_u64() >= Some(1), "{retired:?}");
    wait_published(ca, "user", 1)?;
    refresh(&host, &mut sshd)?;
    ensure!(
        !login(&sshd, &old_key, &old_cert)?,
        "the retired key's certificate still logs in"
    );
    ensure!(login(&sshd, &new_key, &new_cert)?, "{}", sshd.log());
    let end = status(ca)?;
    let states: Vec<(&str, &str)> = end["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["kind"] == "user")
        .map(|k| {
            (
                k["fingerprint"].as_str().unwrap_or_default(),
                k["state"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    ensure!(
        states == [(old.as_str(), "retired"), (next.as_str(), "active")],
        "{end}"
    );
    Ok(())
}

#[test]
fn a_planned_rotation_keeps_old_certificates_until_retirement() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    planned_rotation(&ca, "file:user_ca-2")?;
    ensure!(
        ca.data_dir().join("keys/user_ca-2").exists(),
        "the next key file"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ca.data_dir().join("keys/user_ca-2"))?.permissions(),
    ) & 0o777;
    ensure!(mode == 0o600, "next key mode {mode:o}");
    Ok(())
}

const PIN: &str = "13572468";
const TOKEN: &str = "shiftkey-rot";

#[test]
fn a_planned_rotation_with_the_next_key_on_a_token() {
    let name = test_name(
        module_path!(),
        "a_planned_rotation_with_the_next_key_on_a_token",
    );
    softhsm_test(
        &name,
        |hsm| {
            hsm.init_token(TOKEN, PIN)?;
            hsm.pin_file("pin", PIN)?;
            Ok(())
        },
        |hsm: &SoftHsm| {
            let user = hsm.uri(TOKEN, "user-ca", &hsm.root().join("pin"));
            let host = hsm.uri(TOKEN, "host-ca", &hsm.root().join("pin"));
            let ca = TestCa::init_with(
                &policy().0,
                None,
                &["--user-key", &user, "--host-key", &host],
            )?
            .start()?;
            planned_rotation(&ca, "object=user-ca-2")?;
            ensure!(
                !ca.data_dir().join("keys").exists(),
                "a key file was written for a token key"
            );
            Ok(())
        },
    )
    .unwrap();
}

#[test]
fn an_emergency_rotation_refuses_the_old_keys_certificates_at_once() -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    let work = tempfile::tempdir()?;
    let mut sshd = host.start_sshd()?;
    let (token, _) = join_token_for(&ca, HOST_NAME, HOST_PRINCIPAL, "1h")?;
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.enroll(&ca, &token, &["--reload-pid-file", &pid_file])?;
    ensure!(out.status.success(), "enroll: {}", text(&out));
    ensure!(sshd.wait_listening(2)?, "{}", sshd.log());
    let (old_key, old_cert, _) = certified(&ca, work.path(), "old")?;
    let old = signed_by(&old_cert)?;
    ensure!(login(&sshd, &old_key, &old_cert)?, "{}", sshd.log());

    // Without --yes and a terminal: the outage is spelled out, nothing done.
    let out = keys(&ca, &["rotate", "--user", "--emergency"])?;
    ensure!(
        !out.status.success()
            && text(&out).contains("EMERGENCY")
            && text(&out).contains("1 certificate(s)")
            && text(&out).contains("pass --yes"),
        "{}",
        text(&out)
    );
    ensure!(status(&ca)?["keys"][0]["state"] == "active");

    let results = phase(&ca, &["rotate", "--user", "--emergency"])?;
    let phases: Vec<&str> = results.iter().filter_map(|r| r["phase"].as_str()).collect();
    ensure!(phases == ["rotate", "activate", "retire"], "{results:?}");
    let next = results[0]["key"].as_str().unwrap_or_default().to_owned();
    for kind in ["ca_key.rotated", "ca_key.activated", "ca_key.retired"] {
        ca.last_audit(kind)?;
    }
    ensure!(ca.last_audit("ca_key.retired")?["detail"]["revoked"] == true);

    // The served KRL names the old key: ssh-keygen -Q agrees at once.
    let wait = Instant::now() + Duration::from_secs(20);
    let krl = work.path().join("served.krl");
    loop {
        let bytes = ca.client().get(ca.url("/v1/krl")).send()?.bytes()?;
        std::fs::write(&krl, &bytes)?;
        if krl_revokes(&krl, &old_cert)? {
            break;
        }
        ensure!(
            Instant::now() < wait,
            "the KRL never revoked the old key's certificate"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let published = wait_published(&ca, "user", 1)?;
    ensure!(!published.contains(&old), "{published}");

    // After the host's refresh: the old certificate is refused (KRL and
    // TrustedUserCAKeys), a new one logs in.
    refresh(&host, &mut sshd)?;
    ensure!(
        !login(&sshd, &old_key, &old_cert)?,
        "the revoked key's certificate still logs in"
    );
    let installed_krl = host.path().join("shiftkey/revoked.krl");
    ensure!(krl_revokes(&installed_krl, &old_cert)?);
    let trusted = std::fs::read_to_string(host.path().join("shiftkey/user_ca.pub"))?;
    ensure!(trusted == published, "{trusted}");
    let (new_key, new_cert) = certified_by(&ca, work.path(), "new", &next)?;
    ensure!(!krl_revokes(&installed_krl, &new_cert)?);
    ensure!(login(&sshd, &new_key, &new_cert)?, "{}", sshd.log());
    Ok(())
}

/// A host reports the user CA keys it installed, not the ones it fetched:
/// a refresh whose install fails (sshd -t rejects the configuration) leaves
/// the host lagging in `keys status`; the next good refresh clears it.
#[test]
fn a_refresh_whose_install_fails_does_not_count() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    let mut sshd = host.start_sshd()?;
    let (token, _) = join_token_for(&ca, HOST_NAME, HOST_PRINCIPAL, "1h")?;
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.enroll(&ca, &token, &["--reload-pid-file", &pid_file])?;
    ensure!(out.status.success(), "enroll: {}", text(&out));
    ensure!(sshd.wait_listening(2)?, "{}", sshd.log());
    refresh(&host, &mut sshd)?;
    ensure!(lagging_hosts(&status(&ca)?).is_empty());

    phase(&ca, &["rotate", "--user"])?;
    let published = wait_published(&ca, "user", 2)?;
    let user_ca = host.path().join("shiftkey/user_ca.pub");
    let before = std::fs::read_to_string(&user_ca)?;

    // sshd -t now rejects the main config: the install is rolled back.
    let config = host.path().join("sshd_config");
    let good = std::fs::read_to_string(&config)?;
    std::fs::write(&config, format!("{good}NoSuchDirective yes\n"))?;
    let out = host.shiftkey(&["refresh", "--reload-pid-file", &pid_file])?;
    ensure!(!out.status.success(), "{}", text(&out));
    ensure!(
        text(&out).contains("rejects the new configuration"),
        "{}",
        text(&out)
    );
    ensure!(
        std::fs::read_to_string(&user_ca)? == before,
        "the file was put back"
    );
    let lag = status(&ca)?;
    ensure!(
        lagging_hosts(&lag) == [HOST_NAME],
        "a host whose install failed counts as up to date: {lag}"
    );

    // Fixed: the next refresh installs both keys and reports them.
    std::fs::write(&config, good)?;
    refresh(&host, &mut sshd)?;
    ensure!(std::fs::read_to_string(&user_ca)? == published);
    let lag = status(&ca)?;
    ensure!(lagging_hosts(&lag).is_empty(), "{lag}");
    Ok(())
}

/// `GET /v1/ca/seal-keys`, until `fingerprint` is in `state`: the serving
/// CA follows a phase through its event stream. Returns that key's entry.
fn wait_seal_key(ca: &TestCa, fingerprint: &str, state: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys: Value = ca.client().get(ca.url("/v1/ca/seal-keys")).send()?.json()?;
        if let Some(key) = keys["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["fingerprint"] == fingerprint && k["state"] == state)
        {
            return Ok(key.clone());
        }
        if Instant::now() > deadline {
            bail!("{fingerprint} never became {state}: {keys}\n{}", ca.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A sealed recording of a new session through `bastion-1`.
fn sealed_recording(w: &World) -> anyhow::Result<String> {
    let session = w.session()?;
    let (cast, _, _) = shell_cast(&session)?;
    let (status, ack) = w.upload(&w.bastion, &session, "0.cast.gz", 0, &cast)?;
    ensure!(status == 200, "{ack}");
    let (status, sealed) = w.seal(&session, &[("0.cast.gz", "shell", &cast)])?;
    ensure!(status == 200 && sealed["status"] == "sealed", "{sealed}");
    Ok(session)
}

/// `shiftkey recordings export ID --out DIR`, then `verify DIR` with
/// `--ca-key DIR/ca.pub` (or the keys the CA and login give): its output.
fn export_and_verify(
    w: &World,
    session: &str,
    dir: &Path,
    with_ca_pub: bool,
) -> anyhow::Result<(bool, String)> {
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = w.shiftkey(&["recordings", "export", session, "--out", &dir_arg])?;
    ensure!(out.status.success(), "export: {}", text(&out));
    verify_bundle(w, dir, with_ca_pub)
}

fn verify_bundle(w: &World, dir: &Path, with_ca_pub: bool) -> anyhow::Result<(bool, String)> {
    let dir_arg = dir.to_string_lossy().into_owned();
    let ca_pub = dir.join("ca.pub").to_string_lossy().into_owned();
    let mut args = vec!["recordings", "verify", &dir_arg];
    if with_ca_pub {
        args.extend(["--ca-key", &ca_pub]);
    }
    let out = w.shiftkey(&args)?;
    Ok((out.status.success(), text(&out)))
}

/// Recordings sealed before a rotation still verify after the key that
/// sealed them is retired (export's ca.pub and the CA's seal keys list
/// every key, with its state); a new one verifies with the new key. After
/// an emergency, a seal by the leaked key dated before the retirement
/// verifies with a warning, and one forged with the leaked key and dated
/// after it is refused.
#[test]
fn recordings_sealed_before_a_rotation_still_verify() -> anyhow::Result<()> {
    let w = World::new()?;
    let work = tempfile::tempdir()?;
    let old_session = sealed_recording(&w)?;
    let out = w.shiftkey(&["login"])?;
    ensure!(out.status.success(), "{}", text(&out));
    let (ok, said) = export_and_verify(&w, &old_session, &work.path().join("before"), true)?;
    ensure!(ok && said.contains("(active)"), "{said}");

    // A planned rotation, through retirement.
    let old = status(&w.ca)?["keys"][0]["fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let next = phase(&w.ca, &["rotate", "--user"])?[0]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    phase(&w.ca, &["activate", "--user"])?;
    wait_seal_key(&w.ca, &next, "active")?;
    phase(&w.ca, &["retire", "--user", "--force"])?;
    wait_seal_key(&w.ca, &old, "retired")?;
    ensure!(!wait_published(&w.ca, "user", 1)?.is_empty());

    // The old recording: exported now, it verifies with the retired key,
    // named as such; so it does with the keys from the CA (after login).
    let after = work.path().join("after");
    let (ok, said) = export_and_verify(&w, &old_session, &after, true)?;
    ensure!(ok, "the old recording no longer verifies: {said}");
    ensure!(
        said.contains(&format!("signed by the CA key {old} (retired)")),
        "{said}"
    );
    let (ok, said) = verify_bundle(&w, &after, false)?;
    ensure!(ok && said.contains("(retired)"), "{said}");
    // A new recording verifies with the new key.
    let new_session = sealed_recording(&w)?;
    let fresh = work.path().join("new");
    let (ok, said) = export_and_verify(&w, &new_session, &fresh, true)?;
    ensure!(
        ok && said.contains(&format!("signed by the CA key {next} (active)")),
        "{said}"
    );

    // An emergency rotation retires `next`: its seal, dated before, shows
    // the warning.
    let leaked = std::fs::read(w.ca.data_dir().join("keys/user_ca-2"))?;
    // Seals and retirements are dated to the second, and a seal dated the
    // very second of the retirement is refused (fail closed).
    std::thread::sleep(Duration::from_millis(1100));
    phase(&w.ca, &["rotate", "--user", "--emergency"])?;
    let retired = wait_seal_key(&w.ca, &next, "retired")?;
    ensure!(retired["emergency"] == true, "{retired}");
    let retired_at = retired["retired_at"].as_i64().unwrap_or_default();
    let emergency = work.path().join("emergency");
    let (ok, said) = export_and_verify(&w, &new_session, &emergency, true)?;
    ensure!(
        ok && said.contains("RETIRED IN AN EMERGENCY") && said.contains("WARNING"),
        "{said}"
    );

    // The attacker holding the leaked key signs a manifest dated after the
    // retirement: refused.
    let metadata_path = emergency.join("metadata.json");
    let mut metadata: Value = serde_json::from_str(&std::fs::read_to_string(&metadata_path)?)?;
    let mut manifest: Value =
        serde_json::from_str(metadata["manifest"].as_str().context("manifest")?)?;
    manifest["sealed_at"] = (retired_at + 60).into();
    let manifest_text = serde_json::to_string(&manifest)?;
    let key_file = work.path().join("leaked");
    std::fs::write(&key_file, &leaked)?;
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let message = work.path().join("manifest");
    std::fs::write(&message, &manifest_text)?;
    run_ok(
        Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "shiftkey-recording@shiftkey", "-f"])
            .arg(&key_file)
            .arg(&message),
    )?;
    let signature = std::fs::read_to_string(work.path().join("manifest.sig"))?;
    metadata["manifest"] = manifest_text.clone().into();
    metadata["signature"] = signature.into();
    metadata["digest"] = hex::encode(Sha256::digest(manifest_text.as_bytes())).into();
    std::fs::write(&metadata_path, serde_json::to_string_pretty(&metadata)?)?;
    let (ok, said) = verify_bundle(&w, &emergency, true)?;
    ensure!(
        !ok && said.contains("after its key was retired in an emergency"),
        "a seal forged with the leaked key verifies: {said}"
    );
    Ok(())
}

#[test]
fn keys_commands_refuse_unknown_flags_and_a_missing_kind() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?;
    let out = keys(&ca, &["rotate", "--user", "--yes", "--now"])?;
    ensure!(
        out.status.code() == Some(2) && text(&out).contains("--now"),
        "{}",
        text(&out)
    );
    let out = keys(&ca, &["activate", "--yes"])?;
    ensure!(
        out.status.code() == Some(2) && text(&out).contains("--user"),
        "{}",
        text(&out)
    );
    let out = keys(&ca, &["retire", "--user", "--host", "--yes"])?;
    ensure!(out.status.code() == Some(2), "{}", text(&out));
    // Retire with no previous key: refused and audited.
    let out = keys(&ca, &["retire", "--host", "--yes"])?;
    ensure!(
        out.status.code() == Some(1) && text(&out).contains("no previous host CA key"),
        "{}",
        text(&out)
    );
    ensure!(ca.last_audit("ca_key.refused")?["detail"]["phase"] == "retire");
    Ok(())
}

/// The host CA's rotation: after `activate`, the host's next refresh
/// renews its certificate under the new key (ssh trusting only the new key
/// by `@cert-authority` connects); after an emergency rotation of the host
/// CA the host still renews (it proves itself with a certificate from the
/// retired key, which the CA's records tie to its key).
#[test]
fn hosts_renew_under_the_new_host_key_even_after_an_emergency() -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    let work = tempfile::tempdir()?;
    let mut sshd = host.start_sshd()?;
    let (token, _) = join_token_for(&ca, HOST_NAME, HOST_PRINCIPAL, "1h")?;
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.enroll(&ca, &token, &["--reload-pid-file", &pid_file])?;
    ensure!(out.status.success(), "enroll: {}", text(&out));
    ensure!(sshd.wait_listening(2)?, "{}", sshd.log());
    let (key, cert, _) = certified(&ca, work.path(), "alice")?;
    let host_cert = host.path().join("ssh_host_ed25519_key-cert.pub");
    let old = signed_by(&host_cert)?;
    // ssh trusting exactly the given host CA keys, nothing learned.
    let trusting = |sshd: &Sshd, keys: &str| -> anyhow::Result<bool> {
        let file = work.path().join("known_hosts");
        let lines: String = keys
            .lines()
            .map(|k| format!("@cert-authority [127.0.0.1]:* {k}\n"))
            .collect();
        std::fs::write(&file, lines)?;
        Ok(ssh(
            sshd,
            &key,
            Some(&cert),
            HostTrust::KnownHosts(&file),
            "echo in",
        )?
        .status
        .success())
    };

    let rotated = phase(&ca, &["rotate", "--host"])?;
    let next = rotated[0]["key"].as_str().unwrap_or_default().to_owned();
    let both = wait_published(&ca, "host", 2)?;
    ensure!(trusting(&sshd, &both)?, "{}", sshd.log());
    phase(&ca, &["activate", "--host"])?;
    let only_new = both.lines().nth(1).unwrap_or_default().to_owned();
    let only_old = both.lines().next().unwrap_or_default().to_owned();
    // The CA lists the key that signs first once it follows the phase.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ca
        .client()
        .get(ca.url("/v1/ca/host.pub"))
        .send()?
        .text()?
        .lines()
        .next()
        != Some(only_new.as_str())
    {
        ensure!(
            Instant::now() < deadline,
            "the CA never lists the new host key first"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    refresh(&host, &mut sshd)?;
    ensure!(
        signed_by(&host_cert)? == next,
        "the host did not renew under the new key"
    );
    ensure!(trusting(&sshd, &only_new)?, "{}", sshd.log());
    ensure!(
        !trusting(&sshd, &only_old)?,
        "a client trusting only the old host key connected"
    );

    // Emergency: the host proves itself with a certificate from a key that
    // is now retired, and renews under the newest.
    // Mid-rotation (the old key is still published as previous): it is
    // retired first, then the emergency's own three phases.
    let results = phase(&ca, &["rotate", "--host", "--emergency"])?;
    let phases: Vec<&str> = results.iter().filter_map(|r| r["phase"].as_str()).collect();
    ensure!(
        phases == ["retire", "rotate", "activate", "retire"],
        "{results:?}"
    );
    ensure!(results[0]["key"] == old.as_str() && results[3]["key"] == next.as_str());
    let newest = results[1]["key"].as_str().unwrap_or_default().to_owned();
    let published = wait_published(&ca, "host", 1)?;
    ensure!(!published.contains(&old));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        refresh(&host, &mut sshd)?;
        if signed_by(&host_cert)? == newest {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the host never renewed under {newest}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    ensure!(trusting(&sshd, &published)?, "{}", sshd.log());
    Ok(())
}

/// Two replicas on one PostgreSQL store: phases run against one replica's
/// data directory reach the other through the store (its event stream and
/// generation check): it publishes the next key and then signs with it.
/// Key files are per replica, so the next key file is copied as the
/// runbook says.
#[test]
fn a_replica_follows_the_phases_through_the_shared_store() -> anyhow::Result<()> {
    let db = TestDatabase::create()?;
    let mut first = TestCa::init(&policy().0, None)?;
    first.set_port(free_port())?;
    let store = format!("\n[store]\nurl = \"{}\"\n", db.url());
    first.configure(|text| format!("{text}{store}"))?;
    let mut second = first.replica(free_port())?;
    first.spawn()?;
    second.spawn()?;
    let work = tempfile::tempdir()?;

    let rotated = phase(&first, &["rotate", "--user"])?;
    let next = rotated[0]["key"].as_str().unwrap_or_default().to_owned();
    for file in ["user_ca-2", "user_ca-2.pub"] {
        let to = second.data_dir().join("keys").join(file);
        std::fs::copy(first.data_dir().join("keys").join(file), &to)?;
    }
    let on_second = wait_published(&second, "user", 2)?;
    ensure!(on_second == wait_published(&first, "user", 2)?);
    phase(&first, &["activate", "--user"])?;
    certified_by(&second, work.path(), "second", &next)?;
    certified_by(&first, work.path(), "first", &next)?;
    // The CAs stop before their database goes.
    drop((first, second));
    drop(db);
    Ok(())
}
