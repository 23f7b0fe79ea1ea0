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
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{ensure_login_user, free_port, ssh_keygen, target_dir};

use crate::fixtures::{LOGIN_USER, policy, with_ports};

pub(crate) const CLIENT_ID: &str = "shiftkey-ui-e2e";
/// What the recorded session types; the reviewer searches for it.
const NEEDLE: &str = "ui-needle-42";
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// rita reviews and approves; alice (group sre) asks for a role that needs
/// an approval from sre-leads; mallory is nobody.
pub(crate) const EXTRA_POLICY: &str = r#"
[[role]]
name = "reviewed"
principals = ["deploy"]
hosts = ["app-1.prod.example.com"]
approvals = 1
approvers = ["group:sre-leads"]

[[grant]]
identities = ["group:sre"]
roles = ["reviewed"]

[[authority]]
identities = ["user:rita@example.com"]
actions = ["override.shorten", "override.delete"]
schedules = ["primary"]
"#;

pub(crate) fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui")
}

pub(crate) fn screenshots_dir() -> PathBuf {
    target_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("ui-screenshots")
}

/// A CA with `[oidc]` and `[ui]` on a port chosen first (the redirect URI
/// names it).
fn start_ca(provider: &OidcProvider) -> anyhow::Result<TestCa> {
    start_ca_with(provider, "")
}

/// [`start_ca`] with `more` appended to the policy.
pub(crate) fn start_ca_with(provider: &OidcProvider, more: &str) -> anyhow::Result<TestCa> {
    start_ca_ui(provider, more, "")
}

/// [`start_ca_with`], with `ui` appended to the `[ui]` section.
pub(crate) fn start_ca_ui(provider: &OidcProvider, more: &str, ui: &str) -> anyhow::Result<TestCa> {
    let (text, _) = policy();
    let policy = format!("reviewers = [\"user:rita@example.com\"]\n{text}\n{EXTRA_POLICY}\n{more}");
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
            "{config}\n[ui]\npublic_url = \"https://127.0.0.1:{port}\"\nassets_dir = \"{}\"\n{ui}",
            assets.display()
        ),
    )?;
    ca.port = port;
    ca.start()
}

/// Waits until the CA's audit log has a row of `kind` satisfying `pick`.
pub(crate) fn wait_audit(
    ca: &TestCa,
    kind: &str,
    pick: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
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

pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> anyhow::Result<bool> {
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
    // As an enrolled target: only the role's scoped principal.
    let sshd = Sshd::start_with_host_ca_and_extra(
        &work.join("sshd"),
        &user_ca,
        Some(&ca.data_dir().join("keys/host_ca")),
        &principals_config(
            &work.join("sshd"),
            LOGIN_USER,
            &[&format!("{LOGIN_USER}@shell")],
        )?,
    )?;
    // The bastion connects only to the role's ports: sshd's, here.
    let policy_file = ca.data_dir().join("policy.toml");
    let policy = std::fs::read_to_string(&policy_file)?;
    std::fs::write(&policy_file, with_ports(&policy, "shell", &[sshd.port]))?;
    let reloads = |ca: &TestCa| -> anyhow::Result<usize> {
        Ok(ca
            .audit_rows()?
            .iter()
            .filter(|r| r["kind"] == "policy.reloaded")
            .count())
    };
    let before = reloads(ca)?;
    ca.signal("HUP")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while reloads(ca)? == before {
        ensure!(
            Instant::now() < deadline,
            "the policy was not reloaded:
{}",
            ca.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    drive_script(ca, "driver.mjs", config)
}

/// Runs the browser script `tests/ui/SCRIPT` with `config`; returns its
/// JSON report.
pub(crate) fn drive_script(ca: &TestCa, script: &str, config: &Value) -> anyhow::Result<Value> {
    ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; install Debian's chromium (`apt-get install -y chromium`, scripts/test does)"
    );
    ensure!(
        ui_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing; run `npm ci --prefix tests/ui`"
    );
    let out = Command::new("node")
        .arg(ui_dir().join(script))
        .current_dir(ui_dir())
        .env("SHIFTKEY_UI_TEST", config.to_string())
        // The driver calls the API as the requester; trust the CA's TLS certificate.
        .env("NODE_EXTRA_CA_CERTS", ca.data_dir().join("tls/cert.pem"))
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running node tests/ui/{script}"))?;
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
    // An override to come, for the on-call page, which rita shortens and
    // deletes (it starts in an hour: alice stays on call meanwhile).
    let now = chrono::Utc::now().timestamp();
    let (status, made) = ca.local(
        "POST",
        "/v1/oncall/overrides",
        &json!({ "schedule": "primary", "member": "user:bob@example.com", "start": now + 3600,
                 "end": now + 4 * 3600, "reason": "bob covers the afternoon" }),
    )?;
    ensure!(status == 201, "override: {made}");
    let override_id = made["id"].as_str().context("override id")?.to_owned();

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
            "override": override_id,
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
    // rita shortened and deleted the override on the on-call page.
    for kind in ["oncall.override_shortened", "oncall.override_deleted"] {
        let row = wait_audit(&ca, kind, |r| {
            r["detail"]["override"] == override_id.as_str()
        })?;
        assert_eq!(row["actor"], "user:rita@example.com", "{row}");
    }
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
        "oncall",
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

/// The value of cookie `name` from an answer's `Set-Cookie` headers.
pub(crate) fn set_cookie(response: &reqwest::blocking::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `GET /ui/login`: the provider's authorize URL and the login cookie.
pub(crate) fn start_sign_in(ca: &TestCa) -> anyhow::Result<(String, String)> {
    let response = ca.client().get(ca.url("/ui/login?next=/ui/")).send()?;
    ensure!(
        response.status().is_redirection(),
        "GET /ui/login answered {}: {}",
        response.status(),
        response.text().unwrap_or_default()
    );
    let authorize = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("no Location")?
        .to_owned();
    let cookie = set_cookie(&response, "__Secure-shiftkey-login").context("no login cookie")?;
    Ok((authorize, cookie))
}

/// Signs `email` in to the review UI without a browser, as one would: the
/// provider answers /authorize at once with a code for the hinted login.
/// Returns the session cookie's value.
fn sign_in(ca: &TestCa, email: &str) -> anyhow::Result<String> {
    let (authorize, cookie) = start_sign_in(ca)?;
    let at_provider = ca
        .client()
        .get(format!("{authorize}&login_hint={email}"))
        .send()?;
    let callback = at_provider
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("the provider did not send the browser back")?
        .to_owned();
    let signed_in = ca
        .client()
        .get(callback)
        .header(
            reqwest::header::COOKIE,
            format!("__Secure-shiftkey-login={cookie}"),
        )
        .send()?;
    let session = set_cookie(&signed_in, "__Secure-shiftkey-ui");
    let status = signed_in.status();
    let page = signed_in.text().unwrap_or_default();
    ensure!(status == 200, "callback answered {status}: {page}");
    session
        .filter(|s| !s.is_empty())
        .context("no session cookie")
}

pub(crate) fn page_status(ca: &TestCa, path: &str, session: &str) -> anyhow::Result<u16> {
    Ok(ca
        .client()
        .get(ca.url(path))
        .header(
            reqwest::header::COOKIE,
            format!("__Secure-shiftkey-ui={session}"),
        )
        .send()?
        .status()
        .as_u16())
}

/// Strangers may start as many sign-ins as they like: the CA keeps nothing
/// for them (the sign-in under way lives in the browser's signed cookie),
/// so they cannot crowd out a reviewer's, and a cookie from one sign-in does
/// not finish another.
#[test]
fn sign_ins_under_way_cannot_be_piled_up_by_strangers() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let ca = start_ca(&provider)?;
    // More than the old in-memory table held (10 000), from a few clients.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let client = ca.client().clone();
        let url = ca.url("/ui/login?next=/ui/");
        workers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            for _ in 0..2_550 {
                let status = client.get(&url).send()?.status();
                ensure!(status.is_redirection(), "a stranger's sign-in got {status}");
            }
            Ok(())
        }));
    }
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let session = sign_in(&ca, "rita@example.com")?;
    assert_eq!(page_status(&ca, "/ui/sessions", &session)?, 200);

    // The login cookie of one sign-in does not finish another.
    let (authorize, _) = start_sign_in(&ca)?;
    let (_, other_cookie) = start_sign_in(&ca)?;
    let callback = ca
        .client()
        .get(format!("{authorize}&login_hint=rita@example.com"))
        .send()?
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .context("no callback")?
        .to_owned();
    let refused = ca
        .client()
        .get(&callback)
        .header(
            reqwest::header::COOKIE,
            format!("__Secure-shiftkey-login={other_cookie}"),
        )
        .send()?;
    assert_eq!(refused.status(), 400);
    assert!(set_cookie(&refused, "__Secure-shiftkey-ui").is_none());
    // Nor does a forged one.
    let forged = ca
        .client()
        .get(&callback)
        .header(
            reqwest::header::COOKIE,
            "__Secure-shiftkey-login=eyJzdGF0ZSI6IngifQ.AAAA",
        )
        .send()?;
    assert_eq!(forged.status(), 400);
    Ok(())
}

/// UI sessions live in the store, not in one process's memory: a reviewer
/// signed in before the CA restarted (or on another replica) stays signed
/// in; signing out ends the session everywhere.
#[test]
fn a_reviewer_stays_signed_in_across_a_restart() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let mut ca = start_ca(&provider)?;
    let session = sign_in(&ca, "rita@example.com")?;
    assert_eq!(page_status(&ca, "/ui/audit", &session)?, 200);
    ca.stop()?;
    let ca = ca.start()?;
    assert_eq!(
        page_status(&ca, "/ui/audit", &session)?,
        200,
        "{}",
        ca.log()
    );
    assert_eq!(page_status(&ca, "/ui/audit", "not-a-session")?, 401);
    // Only the hash of the cookie's value is kept: the store holds the
    // session (its email is there), never the value.
    let mut db = std::fs::read(ca.data_dir().join("shiftkey.db"))?;
    db.extend(std::fs::read(ca.data_dir().join("shiftkey.db-wal")).unwrap_or_default());
    let holds = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(holds(b"rita@example.com"));
    assert!(
        !holds(session.as_bytes()),
        "the session's value is in the store"
    );
    Ok(())
}
