//! The review UI answers a reviewer's questions at a glance, in headless
//! Chromium (`tests/ui/glance.mjs`) with the test OIDC provider: a session
//! through the real bastion is followed live (status, counts, duration and
//! the player change while it runs, and settle when it ends, without a
//! reload); the sessions list says how long each ran and why it ended; the
//! session page says why the access was given, under which incident and
//! who approved it when; a denial without a reason shows the approvals
//! page again with the error beside that request; audit details read as
//! fields; every moment reads `YYYY-MM-DD HH:MM:SS UTC` with the relative
//! time beside it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use shiftkey_tests::bastion::TestBastion;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::services::{TestBucket, TestDatabase};
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{ensure_login_user, free_port, ssh_keygen};

use crate::fixtures::{LOGIN_USER, policy, with_ports};
use crate::ui::{
    CHROMIUM, CLIENT_ID, drive_script, screenshots_dir, start_ca_with, ui_dir, wait_audit,
    wait_exit,
};

/// A role like the fixtures' `shell` that needs one approval from
/// sre-leads (rita), granted to the CA host's root.
const APPROVED_ROLE: &str = r#"
[[role]]
name = "shell-ok"
principals = ["LOGIN"]
hosts = ["127.0.0.1"]
max_ttl = "10m"
extensions = ["permit-pty"]
approvals = 1
approvers = ["group:sre-leads"]

[[grant]]
identities = ["local:root"]
roles = ["shell-ok"]
"#;
/// Why root asked for the access; the session page must show it.
const REASON: &str = "glance: checkout latency, INC-7";

/// Types `text` into the session, a few bytes at a time, as a person would.
fn type_into(stdin: &mut ChildStdin, text: &str) -> anyhow::Result<()> {
    for chunk in text.as_bytes().chunks(4) {
        stdin.write_all(chunk)?;
        stdin.flush()?;
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(())
}

/// The session ID of the live session of `role`, once the CA authorized it.
fn live_session(ca: &TestCa, role: &str) -> anyhow::Result<String> {
    let row = wait_audit(ca, "session.authorized", |r| r["detail"]["role"] == role)?;
    Ok(row["detail"]["session"]
        .as_str()
        .context("session.authorized names the session")?
        .to_owned())
}

/// Reads the driver's stdout lines until one with `"stage": stage` (or the
/// final report); returns it.
fn wait_stage(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    stage: &str,
    seen: &mut Vec<String>,
) -> anyhow::Result<Value> {
    for line in lines {
        let line = line?;
        seen.push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && (v["stage"] == stage || v.get("ok").is_some())
        {
            return Ok(v);
        }
    }
    bail!(
        "the driver ended before stage {stage}:\n{}",
        seen.join("\n")
    )
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Opens INC-7, the incident the session runs under.
fn open_incident(ca: &TestCa) -> anyhow::Result<()> {
    let (status, body) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-7", "title": "checkout latency", "severity": "sev2" }),
    )?;
    ensure!(status == 201, "incident: {body}");
    Ok(())
}

/// A target enrolled by `ca` for both roles' scoped principals.
fn target(ca: &TestCa, work: &Path) -> anyhow::Result<Sshd> {
    ensure_login_user(LOGIN_USER)?;
    let user_ca = std::fs::read_to_string(ca.data_dir().join("keys/user_ca.pub"))?;
    Sshd::start_with_host_ca_and_extra(
        &work.join("sshd"),
        &user_ca,
        Some(&ca.data_dir().join("keys/host_ca")),
        &principals_config(
            &work.join("sshd"),
            LOGIN_USER,
            &[
                &format!("{LOGIN_USER}@shell"),
                &format!("{LOGIN_USER}@shell-ok"),
            ],
        )?,
    )
}

/// `ca`'s policy with both roles allowed to reach `port`.
fn allow_port(ca: &TestCa, port: u16) -> anyhow::Result<()> {
    let policy_file = ca.data_dir().join("policy.toml");
    let policy = std::fs::read_to_string(&policy_file)?;
    let policy = with_ports(&with_ports(&policy, "shell", &[port]), "shell-ok", &[port]);
    std::fs::write(&policy_file, policy)?;
    Ok(())
}

/// Reloads a running CA's policy and waits for it.
fn reload(ca: &TestCa) -> anyhow::Result<()> {
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
        ensure!(Instant::now() < deadline, "no policy reload:\n{}", ca.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// root asks `ca` for shell-ok under INC-7; rita approves through the API;
/// root collects the certificate next to `work/id_ed25519`.
fn approved_certificate(
    ca: &TestCa,
    provider: &OidcProvider,
    work: &Path,
) -> anyhow::Result<std::path::PathBuf> {
    let key = ssh_keygen(work, "id_ed25519", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, pending) = ca.request_local(&json!({
        "public_key": public.trim(), "role": "shell-ok", "reason": REASON, "ttl": "10m", "incident": "INC-7",
    }))?;
    ensure!(status == 202, "pending request: {status} {pending}");
    let request = pending["id"].as_str().context("request id")?.to_owned();
    let rita = provider.code_flow_token(CLIENT_ID, "rita@example.com", &["sre-leads"])?;
    let approved = ca
        .client()
        .post(ca.url(&format!("/v1/requests/{request}/approve")))
        .bearer_auth(&rita)
        .json(&json!({ "reason": "matches the incident" }))
        .send()?;
    ensure!(
        approved.status() == 200,
        "approve: {}",
        approved.text().unwrap_or_default()
    );
    let (status, issued) = ca.local("GET", &format!("/v1/requests/{request}"), &Value::Null)?;
    ensure!(
        status == 200 && issued["status"] == "issued",
        "issued: {status} {issued}"
    );
    let certificate = issued["certificate"]["certificate"]
        .as_str()
        .context("the certificate")?;
    std::fs::write(work.join("id_ed25519-cert.pub"), format!("{certificate}\n"))?;
    Ok(key)
}

/// Where the session runs and where the reviewer watches it.
struct Watch<'a> {
    /// The CA the bastion reports to.
    session_ca: &'a TestCa,
    /// The CA whose review UI the browser uses.
    browser_ca: &'a TestCa,
    provider: &'a OidcProvider,
    bastion: &'a TestBastion,
    port: u16,
    key: &'a Path,
    work: &'a Path,
    /// Screenshot names start with it.
    prefix: &'a str,
}

/// Runs a session through the bastion, kept open, while the browser
/// follows it on its page: types a second line once the page follows,
/// ends the session once the page showed it, and lets the driver check the
/// settled page and the others. Returns the driver's report and the
/// session ID.
fn follow_live(w: &Watch<'_>) -> anyhow::Result<(Value, String)> {
    let config = w.bastion.ssh_config(w.session_ca, w.work, w.key)?;
    let mut ssh = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-J", "bastion", "-p"])
        .arg(w.port.to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .arg("-tt")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let session = live_session(w.session_ca, "shell-ok")?;
    std::thread::sleep(Duration::from_millis(1500));
    let mut stdin = ssh.stdin.take().context("piped stdin")?;
    type_into(&mut stdin, "echo glance-first\r")?;

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots)?;
    ensure!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing; install Debian's chromium (`apt-get install -y chromium`, scripts/test does)"
    );
    ensure!(
        ui_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing; run `npm ci --prefix tests/ui`"
    );
    let config = json!({
        "base": w.browser_ca.url(""),
        "idp": format!("http://127.0.0.1:{}", w.provider.port()),
        "parts": ["live"],
        "session": session,
        "reason": REASON,
        "prefix": w.prefix,
        "screenshots": shots,
    });
    let mut driver = Command::new("node")
        .arg(ui_dir().join("glance.mjs"))
        .current_dir(ui_dir())
        .env("SHIFTKEY_UI_TEST", config.to_string())
        .env(
            "NODE_EXTRA_CA_CERTS",
            w.browser_ca.data_dir().join("tls/cert.pem"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node tests/ui/glance.mjs")?;
    let stdout = driver.stdout.take().context("driver stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let outcome = (|| -> anyhow::Result<Value> {
        // The page follows the live session; type more while it watches.
        let ready = wait_stage(&mut lines, "live-ready", &mut seen)?;
        ensure!(ready.get("ok").is_none(), "driver: {ready}");
        type_into(&mut stdin, "echo glance-second\r")?;
        let followed = wait_stage(&mut lines, "live-followed", &mut seen)?;
        ensure!(followed.get("ok").is_none(), "driver: {followed}");
        // End it: the page must settle on its own.
        type_into(&mut stdin, "exit\r")?;
        ensure!(
            wait_exit(&mut ssh, Duration::from_secs(20))?,
            "ssh did not exit\n{}",
            w.bastion.log()
        );
        wait_stage(&mut lines, "done", &mut seen)
    })();
    match outcome {
        Ok(report) if report["ok"] == true => {
            let _ = driver.wait();
            Ok((report, session))
        }
        other => {
            kill(&mut driver);
            kill(&mut ssh);
            let mut err = String::new();
            if let Some(mut e) = driver.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!(
                "the browser driver failed: {other:?}\n{}\n{err}\n--- session's CA\n{}\n--- browser's CA\n{}",
                seen.join("\n"),
                w.session_ca.log(),
                w.browser_ca.log()
            );
        }
    }
}

/// What the driver saw, checked from the CA's side; the screenshots.
fn check_followed(ca: &TestCa, report: &Value, session: &str, prefix: &str) -> anyhow::Result<()> {
    assert!(
        report["live"]["events_after"].as_u64() > report["live"]["events_before"].as_u64(),
        "{report}"
    );
    assert_eq!(report["live"]["final_status"], "sealed", "{report}");
    assert_eq!(report["live"]["end_reason"], "client closed", "{report}");
    // Watching was audited as the API's watching is.
    let watched = wait_audit(ca, "recording.viewed", |r| {
        r["actor"] == "user:rita@example.com"
            && r["detail"]["purpose"] == "watch"
            && r["detail"]["session"] == session
    })?;
    assert_eq!(watched["outcome"], "info", "{watched}");
    let shots = screenshots_dir();
    for name in [
        "live-session",
        "ended-session",
        "session",
        "sessions",
        "audit-detail",
    ] {
        let file = shots.join(format!("{prefix}-{name}.png"));
        ensure!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            file.display()
        );
    }
    Ok(())
}

/// The live page follows a session through the bastion and settles when it
/// ends, without a reload; then the session page (reason, incident,
/// approval), the list (duration, why it ended), the audit detail (fields),
/// and one timestamp format on each.
#[test]
fn a_live_session_is_followed_and_every_page_answers_at_a_glance() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let ca = start_ca_with(&provider, &APPROVED_ROLE.replace("LOGIN", LOGIN_USER))?;
    open_incident(&ca)?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let sshd = target(&ca, work)?;
    allow_port(&ca, sshd.port)?;
    reload(&ca)?;
    let bastion = TestBastion::start(&ca, None)?;
    let key = approved_certificate(&ca, &provider, work)?;
    let (report, session) = follow_live(&Watch {
        session_ca: &ca,
        browser_ca: &ca,
        provider: &provider,
        bastion: &bastion,
        port: sshd.port,
        key: &key,
        work,
        prefix: "glance",
    })?;
    check_followed(&ca, &report, &session, "glance")
}

/// Two replicas on one PostgreSQL store and one S3 bucket: the bastion
/// uploads to the first, the reviewer watches on the second, whose process
/// never saw the session's bytes go by. The page follows and settles all
/// the same, from the store.
#[test]
fn a_live_session_is_followed_on_another_replica() -> anyhow::Result<()> {
    let db = TestDatabase::create()?;
    let bucket = TestBucket::create()?;
    let provider = OidcProvider::start()?;
    let work = tempfile::tempdir()?;
    let work = work.path();
    let credentials = work.join("s3.toml");
    bucket.write_credentials(&credentials)?;
    let (text, _) = policy();
    let policy_text = format!(
        "reviewers = [\"user:rita@example.com\"]\n{text}\n{}\n{}",
        crate::ui::EXTRA_POLICY,
        APPROVED_ROLE.replace("LOGIN", LOGIN_USER)
    );
    let mut first = TestCa::init(&policy_text, Some((provider.issuer(), CLIENT_ID)))?;
    first.set_port(free_port())?;
    let shared = format!(
        "\n[store]\nurl = \"{}\"\n{}",
        db.url(),
        bucket.ca_toml(&credentials)
    );
    first.configure(|t| format!("{t}{shared}"))?;
    let sshd = target(&first, work)?;
    allow_port(&first, sshd.port)?;
    let mut second = first.replica(free_port())?;
    let assets = ui_dir().join("node_modules/asciinema-player/dist/bundle");
    for ca in [&mut first, &mut second] {
        let ui = format!(
            "\n[ui]\npublic_url = \"https://127.0.0.1:{}\"\nassets_dir = \"{}\"\n",
            ca.port,
            assets.display()
        );
        ca.configure(|t| format!("{t}{ui}"))?;
        ca.spawn()?;
    }
    open_incident(&first)?;
    let bastion = TestBastion::start_at(&first, &first.url(""), None, "")?;
    let key = approved_certificate(&first, &provider, work)?;
    let (report, session) = follow_live(&Watch {
        session_ca: &first,
        browser_ca: &second,
        provider: &provider,
        bastion: &bastion,
        port: sshd.port,
        key: &key,
        work,
        prefix: "glance-replica",
    })?;
    // The bastion knows only the first replica's address, the browser only
    // the second's.
    check_followed(&second, &report, &session, "glance-replica")
}

/// A denial without a reason, or with a character that hides text, shows
/// the approvals page again (422) with the error beside that request's
/// form, the other request intact, each refusal audited; a deletion of an
/// override without a reason does the same on the on-call page.
#[test]
fn a_refused_form_shows_its_page_again_with_the_error_beside_it() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let ca = start_ca_with(&provider, "")?;
    let work = tempfile::tempdir()?;
    let alice = provider.code_flow_token(CLIENT_ID, "alice@example.com", &["sre"])?;
    let mut waiting = Vec::new();
    for (name, reason) in [
        ("alice-a", "deploy hotfix 1.2.3"),
        ("alice-b", "rotate the TLS key"),
    ] {
        let k = ssh_keygen(work.path(), name, &["-t", "ed25519"])?;
        let line = std::fs::read_to_string(k.with_extension("pub"))?;
        let (status, body) = ca.request_https(
            &alice,
            &json!({ "public_key": line.trim(), "role": "reviewed", "reason": reason }),
        )?;
        ensure!(status == 202, "alice's request: {status} {body}");
        waiting.push(body["id"].as_str().context("request id")?.to_owned());
    }
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
    let report = drive_script(
        &ca,
        "glance.mjs",
        &json!({
            "base": ca.url(""),
            "idp": format!("http://127.0.0.1:{}", provider.port()),
            "parts": ["approvals", "oncall"],
            "deny": waiting[0],
            "other": waiting[1],
            "override": override_id,
            "screenshots": shots,
        }),
    )?;
    assert_eq!(report["ok"], true, "{report}");
    // Both refused denials are on the record, then the one that stands.
    let refusals: Vec<Value> = ca
        .audit_rows()?
        .into_iter()
        .filter(|r| {
            r["kind"] == "request.denied"
                && r["detail"]["request"] == waiting[0].as_str()
                && r["outcome"] == "deny"
        })
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r["actor"] == "user:rita@example.com")
    );
    assert!(
        refusals[1]["detail"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("U+202E")),
        "{refusals:?}"
    );
    let denied = wait_audit(&ca, "request.denied", |r| {
        r["detail"]["request"] == waiting[0].as_str() && r["outcome"] != "deny"
    })?;
    assert_eq!(denied["actor"], "user:rita@example.com", "{denied}");
    assert!(
        !ca.audit_rows()?.iter().any(|r| {
            r["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("request."))
                && r["detail"]["request"] == waiting[1].as_str()
                && r["kind"] != "request.created"
        }),
        "the other request must not be decided"
    );
    // The override's refused deletion is on the record; it is still there.
    let refused = wait_audit(&ca, "oncall.override_refused", |r| {
        r["detail"]["override"] == override_id.as_str()
    })?;
    assert_eq!(refused["outcome"], "deny", "{refused}");
    let (status, list) = ca.local("GET", "/v1/oncall/overrides", &Value::Null)?;
    ensure!(status == 200, "overrides: {list}");
    assert!(list.to_string().contains(&override_id), "{list}");
    for name in ["glance-approvals-error", "glance-oncall-error"] {
        let file = shots.join(format!("{name}.png"));
        ensure!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            file.display()
        );
    }
    Ok(())
}
