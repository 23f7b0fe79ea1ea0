//! The web review UI, end to end: the real CA with `[ui]`, the test OIDC
//! provider as identity provider, a real recording of a real `ssh -J`
//! session through the bastion, and Debian's chromium driven by
//! playwright-core (`tests/ui/driver.mjs`). Screenshots of every page land
//! in `target/ui-screenshots/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use shiftkey_tests::bastion::TestBastion;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::sshd::Sshd;
use shiftkey_tests::util::{ensure_login_user, free_port, ssh_keygen, target_dir};

use crate::fixtures::{LOGIN_USER, policy};

const CLIENT_ID: &str = "shiftkey-ui-e2e";
/// What the recorded session types; the reviewer searches for it.
const NEEDLE: &str = "ui-needle-42";
const CHROMIUM: &str = "/usr/bin/chromium";

/// rita reviews and approves; alice (group sre) asks for a role that needs
/// an approval from sre-leads; mallory is nobody.
const EXTRA_POLICY: &str = r#"
[[role]]
name = "reviewed"
principals = ["deploy"]
hosts = ["app-1.prod.example.com"]
approvals = 1
approvers = ["group:sre-leads"]

[[grant]]
identities = ["group:sre"]
roles = ["reviewed"]
"#;

fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui")
}

fn screenshots_dir() -> PathBuf {
    target_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("ui-screenshots")
}

/// A CA with `[oidc]` and `[ui]` on a port chosen first (the redirect URI
/// names it).
fn start_ca(provider: &OidcProvider) -> anyhow::Result<TestCa> {
    let (text, _) = policy();
    let policy = format!("reviewers = [\"user:rita@example.com\"]\n{text}\n{EXTRA_POLICY}");
    let mut ca = TestCa::init(&policy, Some((provider.issuer(), CLIENT_ID)))?;
    let port = free_port();
    let assets = ui_dir().join("node_modules/asciinema-player/dist/bundle");
    ensure!(
        assets.join("asciinema-player.min.js").is_file(),
        "{} is missing; run `npm ci --prefix tests/ui`",
        assets.display()
    );
    let path = ca.data_dir().join("ca.toml");
    let config = std::fs::read_to_string(&path)?.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(
        &path,
        format!(
            "{config}\n[ui]\npublic_url = \"https://127.0.0.1:{port}\"\nassets_dir = \"{}\"\n",
            assets.display()
        ),
    )?;
    ca.port = port;
    ca.start()
}

/// Waits until the CA's audit log has a row of `kind` satisfying `pick`.
fn wait_audit(ca: &TestCa, kind: &str, pick: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(row) = ca
            .audit_rows()?
            .into_iter()
            .rev()
            .find(|r| r["kind"] == kind && pick(r))
        {
            return Ok(row);
        }
        ensure!(
            Instant::now() < deadline,
            "no {kind} audit row:\n{}",
            ca.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    Ok(false)
}

/// A real interactive `ssh -tt -J bastion` session under incident INC-7
/// that types the needle; returns the session ID once the CA sealed it.
fn record_a_session(ca: &TestCa, work: &Path) -> anyhow::Result<(String, u64, Sshd, TestBastion)> {
    ensure_login_user(LOGIN_USER)?;
    let user_ca = ca.client().get(ca.url("/v1/ca/user.pub")).send()?.text()?;
    let sshd = Sshd::start_with_host_ca(
        &work.join("sshd"),
        &user_ca,
        Some(&ca.data_dir().join("keys/host_ca")),
    )?;
    let bastion = TestBastion::start(ca, None)?;
    let key = ssh_keygen(work, "id_ed25519", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, body) = ca.request_local(&json!({
        "public_key": public.trim(), "role": "shell", "reason": "ui e2e", "ttl": "10m", "incident": "INC-7",
    }))?;
    ensure!(status == 200, "certificate: {body}");
    let serial = body["serial"].as_u64().unwrap_or(0);
    std::fs::write(
        work.join("id_ed25519-cert.pub"),
        format!("{}\n", body["certificate"].as_str().unwrap_or_default()),
    )?;
    let config = bastion.ssh_config(ca, work, &key)?;
    let mut ssh = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-J", "bastion", "-p"])
        .arg(sshd.port.to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(1500));
    let stdin = ssh.stdin.as_mut().context("piped stdin")?;
    for line in [format!("echo {NEEDLE}\r"), "exit\r".to_owned()] {
        for chunk in line.as_bytes().chunks(4) {
            stdin.write_all(chunk)?;
            stdin.flush()?;
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    ensure!(
        wait_exit(&mut ssh, Duration::from_secs(20))?,
        "ssh did not exit\n{}\n{}",
        bastion.log(),
        ca.log()
    );
    let sealed = wait_audit(ca, "recording.sealed", |r| {
        r["detail"]["identity"] == "local:root"
    })?;
    let session = sealed["detail"]["session"]
        .as_str()
        .context("recording.sealed names the session")?
        .to_owned();
    Ok((session, serial, sshd, bastion))
}

/// Runs the browser driver with `config`; returns its JSON report.
fn drive(ca: &TestCa, config: &Value) -> anyhow::Result<Value> {
    ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; install Debian's chromium (`apt-get install -y chromium`, scripts/test does)"
    );
    ensure!(
        ui_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing; run `npm ci --prefix tests/ui`"
    );
    let out = Command::new("node")
        .arg(ui_dir().join("driver.mjs"))
        .current_dir(ui_dir())
        .env("SHIFTKEY_UI_TEST", config.to_string())
        // The driver calls the API as the requester; trust the CA's TLS certificate.
        .env("NODE_EXTRA_CA_CERTS", ca.data_dir().join("tls/cert.pem"))
        .stdin(Stdio::null())
        .output()
        .context("running node tests/ui/driver.mjs")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "the browser driver failed:\n{stdout}\n{stderr}\n--- ca\n{}",
            ca.log()
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("driver output: {stdout}\n{stderr}"))
}

#[test]
fn a_reviewer_finds_plays_and_approves_in_the_browser() -> anyhow::Result<()> {
    let started = Instant::now();
    let provider = OidcProvider::start()?;
    let ca = start_ca(&provider)?;
    let (status, body) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-7", "title": "checkout latency", "severity": "sev2" }),
    )?;
    ensure!(status == 201, "incident: {body}");
    let work = tempfile::tempdir()?;
    let (session, serial, _sshd, _bastion) = record_a_session(&ca, work.path())?;

    // alice asks for a role that needs an approval: 202 and a pending request.
    let alice = provider.code_flow_token(CLIENT_ID, "alice@example.com", &["sre"])?;
    let key = ssh_keygen(work.path(), "alice", &["-t", "ed25519"])?;
    let alice_key = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, pending) = ca.request_https(
        &alice,
        &json!({ "public_key": alice_key.trim(), "role": "reviewed", "reason": "deploy hotfix 1.2.3" }),
    )?;
    ensure!(status == 202, "pending request: {status} {pending}");
    let request = pending["id"].as_str().context("request id")?.to_owned();

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots)?;
    let report = drive(
        &ca,
        &json!({
            "base": ca.url(""),
            "idp": format!("http://127.0.0.1:{}", provider.port()),
            "needle": NEEDLE,
            "session": session,
            "serial": serial,
            "incident": "INC-7",
            "request": request,
            "requester_token": alice,
            "screenshots": shots,
        }),
    )?;
    // What the driver saw, checked again from the CA's side.
    assert_eq!(report["cookie"]["httpOnly"], true, "{report}");
    assert_eq!(report["cookie"]["secure"], true, "{report}");
    assert_eq!(report["cookie"]["sameSite"], "Strict", "{report}");
    assert_eq!(report["cookie"]["path"], "/ui", "{report}");
    assert_eq!(report["csrf"], json!([403, 403, 403]), "{report}");
    assert_eq!(report["issued"]["status"], "issued", "{report}");

    // The request was approved by rita through the UI and then issued.
    let approved = wait_audit(&ca, "request.approved", |r| {
        r["detail"]["request"] == request.as_str()
    })?;
    assert_eq!(approved["actor"], "user:rita@example.com");
    let issued = wait_audit(&ca, "certificate.issued", |r| {
        r.to_string().contains(&request)
    })?;
    assert_eq!(issued["actor"], "user:alice@example.com", "{issued}");
    // The CSRF-refused attempts changed nothing: no denial was recorded.
    assert!(
        !ca.audit_rows()?
            .iter()
            .any(|r| r["kind"] == "request.denied" && r["outcome"] != "deny"),
        "a refused form must not deny"
    );
    // Reviewing is audited through the same service as the API.
    for kind in [
        "ui.signed_in",
        "recording.searched",
        "recording.viewed",
        "recording.exported",
        "audit.viewed",
    ] {
        let row = wait_audit(&ca, kind, |r| r["actor"] == "user:rita@example.com")?;
        assert_eq!(
            row["outcome"],
            if kind == "ui.denied" { "deny" } else { "info" },
            "{row}"
        );
    }
    let viewed = wait_audit(&ca, "recording.viewed", |r| {
        r["actor"] == "user:rita@example.com" && r["detail"]["purpose"] == "play"
    })?;
    assert_eq!(viewed["detail"]["session"], session.as_str());
    // mallory was turned away, and that is on the record.
    let denied = wait_audit(&ca, "ui.denied", |r| {
        r["actor"] == "user:mallory@example.com"
    })?;
    assert_eq!(denied["outcome"], "deny");

    for name in [
        "signin",
        "sessions",
        "session",
        "incident",
        "audit",
        "approvals",
        "approvals-issued",
        "forbidden",
    ] {
        let file = shots.join(format!("{name}.png"));
        ensure!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            file.display()
        );
    }
    eprintln!("ui e2e took {:?}", started.elapsed());
    Ok(())
}
