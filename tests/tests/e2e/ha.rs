//! Several replicas, proven under failure: three `shiftkey-ca serve` on one
//! PostgreSQL database with recordings in S3 (the shared services), a real
//! HAProxy in front, a bastion and clients that know only HAProxy. Replicas
//! are killed with SIGKILL while certificates are being issued and a
//! bastion session runs; then nothing may be missing, doubled or unverified.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shiftkey_tests::bastion::TestBastion;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::haproxy::{RETRIES, TestHaproxy};
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::services::{TestBucket, TestDatabase};
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{ensure_login_user, free_port, ssh_keygen};

use crate::fixtures::{LOGIN_USER, policy, with_ports};

const CLIENT_ID: &str = "shiftkey-ha";
const REVIEWERS: &str = "reviewers = [\"group:security\"]\n";
/// Client threads issuing certificates through HAProxy at once.
const CLIENTS: usize = 8;

/// Three replicas, HAProxy, a target sshd and a bastion following HAProxy.
struct Cluster {
    _db: TestDatabase,
    bucket: TestBucket,
    provider: OidcProvider,
    replicas: Vec<TestCa>,
    proxy: TestHaproxy,
    sshd: Sshd,
    bastion: TestBastion,
    work: tempfile::TempDir,
}

impl Cluster {
    fn start() -> anyhow::Result<Self> {
        Self::start_with("", "")
    }

    /// With `recordings` keys added to every replica's `[recordings]` and
    /// `bastion` lines to bastion.toml.
    fn start_with(recordings: &str, bastion: &str) -> anyhow::Result<Self> {
        ensure_login_user(LOGIN_USER)?;
        let db = TestDatabase::create()?;
        let bucket = TestBucket::create()?;
        let provider = OidcProvider::start()?;
        let work = tempfile::tempdir()?;
        let credentials = work.path().join("s3.toml");
        bucket.write_credentials(&credentials)?;
        let (text, _) = policy();
        let mut first = TestCa::init(
            &format!("{REVIEWERS}{text}"),
            Some((provider.issuer(), CLIENT_ID)),
        )?;
        first.set_port(free_port())?;
        let store = format!("\n[store]\nurl = \"{}\"\n", db.url());
        let recordings = format!("{}{recordings}", bucket.ca_toml(&credentials));
        first.configure(|text| format!("{text}{store}{recordings}"))?;
        // The target, as an enrolled host: only the role's scoped principal.
        let user_ca = std::fs::read_to_string(first.data_dir().join("keys/user_ca.pub"))?;
        let sshd_dir = work.path().join("sshd");
        let sshd = Sshd::start_with_host_ca_and_extra(
            &sshd_dir,
            &user_ca,
            Some(&first.data_dir().join("keys/host_ca")),
            &principals_config(&sshd_dir, LOGIN_USER, &[&format!("{LOGIN_USER}@shell")])?,
        )?;
        // The bastion connects only to the role's ports: sshd's. Every
        // replica gets this policy with the first one's files.
        std::fs::write(
            first.data_dir().join("policy.toml"),
            with_ports(&format!("{REVIEWERS}{text}"), "shell", &[sshd.port]),
        )?;
        let mut replicas = vec![first.replica(free_port())?, first.replica(free_port())?];
        replicas.insert(0, first);
        for replica in &mut replicas {
            replica.spawn()?;
        }
        let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
        let tls = replicas[0].data_dir().join("tls");
        let proxy = TestHaproxy::start(&tls.join("cert.pem"), &tls.join("key.pem"), &ports)?;
        let bastion = TestBastion::start_at(&replicas[0], &proxy.url(""), None, bastion)?;
        Ok(Self {
            _db: db,
            bucket,
            provider,
            replicas,
            proxy,
            sshd,
            bastion,
            work,
        })
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let log = r.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- replica {}\n", i + 1));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        format!(
            "{out}--- haproxy\n{}\n--- bastion\n{}",
            self.proxy.log(),
            self.bastion.log()
        )
    }

    /// `shiftkey-ca ARGS... --data-dir` of replica `i`.
    fn cli(&self, i: usize, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let dir = self.replicas[i].data_dir().display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", &dir]);
        self.replicas[i].cli(&all)
    }

    /// The audit log, as `audit export` on replica `i`'s host prints it.
    fn audit(&self, i: usize) -> anyhow::Result<Vec<Value>> {
        let out = self.cli(i, &["audit", "export"])?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| Ok(serde_json::from_str(l)?))
            .collect()
    }

    fn reviewer_get(&self, path: &str) -> anyhow::Result<reqwest::blocking::Response> {
        let token = self.provider.mint(json!({
            "aud": CLIENT_ID, "sub": "sec@example.com", "email": "sec@example.com",
            "groups": ["security"],
        }))?;
        Ok(self.replicas[0]
            .client()
            .get(self.proxy.url(path))
            .bearer_auth(token)
            .send()?)
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Load {
    /// Serial → the certificate line a client received.
    received: BTreeMap<u64, String>,
    /// Serials received more than once (must stay empty).
    doubled: Vec<u64>,
    failures: Vec<String>,
}

/// What the clients saw so far, and the client threads.
type Running = (Arc<Mutex<Load>>, Vec<std::thread::JoinHandle<()>>);

/// `CLIENTS` threads issuing through HAProxy until `stop`.
fn load(url: String, token: String, cert: &Path, stop: Arc<AtomicBool>) -> anyhow::Result<Running> {
    let seen = Arc::new(Mutex::new(Load::default()));
    let root = reqwest::Certificate::from_pem(&std::fs::read(cert)?)?;
    let key = ssh_key::PrivateKey::random(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        ssh_key::Algorithm::Ed25519,
    )?;
    let body = json!({
        "public_key": key.public_key().to_openssh()?, "role": "shell",
        "reason": "ha e2e", "ttl": "5m",
    });
    let mut threads = Vec::new();
    for _ in 0..CLIENTS {
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(root.clone())
            .timeout(Duration::from_secs(20))
            .build()?;
        let (url, token, body, stop, seen) = (
            url.clone(),
            token.clone(),
            body.clone(),
            Arc::clone(&stop),
            Arc::clone(&seen),
        );
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let answer = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .map_err(|e| format!("{e:?}"))
                    .and_then(|r| {
                        let status = r.status();
                        let text = r.text().map_err(|e| format!("{e:?}"))?;
                        if status.is_success() {
                            serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())
                        } else {
                            Err(format!("HTTP {status}: {text}"))
                        }
                    });
                let mut seen = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match answer {
                    Ok(v) => {
                        let serial = v["serial"].as_u64().unwrap_or(0);
                        let line = v["certificate"].as_str().unwrap_or_default().to_owned();
                        if seen.received.insert(serial, line).is_some() {
                            seen.doubled.push(serial);
                        }
                    }
                    Err(e) => seen.failures.push(e),
                }
            }
        }));
    }
    Ok((seen, threads))
}

fn interactive(c: &Cluster, config: &Path) -> anyhow::Result<Child> {
    Ok(Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(["-tt", "-J", "bastion", "-p"])
        .arg(c.sshd.port.to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

fn type_line(child: &mut Child, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let stdin = child.stdin.as_mut().context("piped stdin")?;
    for chunk in format!("{text}\r").as_bytes().chunks(4) {
        stdin.write_all(chunk)?;
        stdin.flush()?;
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(())
}

/// Waits for the audit log (read on replica `i`) to hold a row `pick` likes.
fn wait_audit(c: &Cluster, i: usize, pick: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(row) = c.audit(i)?.into_iter().find(|r| pick(r)) {
            return Ok(row);
        }
        anyhow::ensure!(Instant::now() < deadline, "no such audit row\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The text of the asciicast in a gzip file (its `"o"` events).
fn output_of(gz: &[u8]) -> String {
    let mut text = String::new();
    let _ = flate2::read::MultiGzDecoder::new(gz).read_to_string(&mut text);
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e[1] == "o")
        .filter_map(|e| e[2].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn three_replicas_behind_haproxy_lose_nothing_when_two_die_in_turn() -> anyhow::Result<()> {
    let mut c = Cluster::start()?;

    // A bastion session through HAProxy, its certificate from replica 1.
    let key = ssh_keygen(c.work.path(), "id_ed25519", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, issued) = c.replicas[0].request_local(&json!({
        "public_key": public.trim(), "role": "shell", "reason": "ha session", "ttl": "10m",
    }))?;
    anyhow::ensure!(status == 200, "{issued}");
    let user_serial = issued["serial"].as_u64().context("serial")?;
    std::fs::write(
        c.work.path().join("id_ed25519-cert.pub"),
        format!("{}\n", issued["certificate"].as_str().unwrap_or_default()),
    )?;
    let config = c.bastion.ssh_config(&c.replicas[0], c.work.path(), &key)?;
    let mut ssh = interactive(&c, &config)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_line(&mut ssh, "echo ha-marker-before")?;

    // Load through HAProxy, and the failures in the middle of it.
    let token = c.provider.mint(json!({
        "aud": CLIENT_ID, "email": "alice@example.com", "groups": ["sre"],
    }))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, threads) = load(
        c.proxy.url("/v1/certificates"),
        token,
        &c.replicas[0].data_dir().join("tls/cert.pem"),
        Arc::clone(&stop),
    )?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    c.replicas[0].kill9()?;
    type_line(&mut ssh, "echo ha-marker-after-first-kill")?;
    std::thread::sleep(Duration::from_secs(2));
    c.replicas[0].spawn()?;
    c.proxy.wait_for_servers(3, Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(1));
    c.replicas[1].kill9()?;
    type_line(&mut ssh, "echo ha-marker-after-second-kill")?;
    std::thread::sleep(Duration::from_secs(2));
    c.replicas[1].spawn()?;
    c.proxy.wait_for_servers(3, Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let loaded = started.elapsed();
    type_line(&mut ssh, "echo ha-marker-end")?;
    std::thread::sleep(Duration::from_millis(1500));

    // A revocation made on replica 3's host ends the session, whichever
    // replica the bastion follows, within 2 s (counted from the start of
    // the command: the commit is somewhere inside it).
    let revoked = Instant::now();
    let out = c.cli(
        2,
        &[
            "revoke",
            "--serial",
            &user_serial.to_string(),
            "--reason",
            "ha revocation",
        ],
    )?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ended = None;
    while revoked.elapsed() < Duration::from_secs(10) {
        if ssh.try_wait()?.is_some() {
            ended = Some(revoked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some(took) = ended else {
        let _ = ssh.kill();
        anyhow::bail!("the session outlived its revocation\n{}", c.logs());
    };
    println!("session ended {} ms after the revocation", took.as_millis());
    assert!(took < Duration::from_secs(2), "took {took:?}\n{}", c.logs());

    // What the clients saw.
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let redispatched = c.proxy.retries()?;
    println!(
        "{} certificates in {:.1} s through HAProxy; {} failed requests; HAProxy retried {} and redispatched {}",
        seen.received.len(),
        loaded.as_secs_f64(),
        seen.failures.len(),
        redispatched.0,
        redispatched.1
    );
    assert!(
        seen.doubled.is_empty(),
        "serials answered twice: {:?}",
        seen.doubled
    );
    assert!(!seen.received.is_empty(), "{}", c.logs());
    // The retry policy: a request whose replica died is sent again, up to
    // RETRIES times, each time to another one. One replica is down at a
    // time, so every request has a live replica within its retries: the
    // clients may see no failure at all.
    assert!(
        seen.failures.is_empty(),
        "{} failures (allowed: 0 with {RETRIES} retries and one replica down at a time): {:?}\n{}",
        seen.failures.len(),
        seen.failures.iter().take(5).collect::<Vec<_>>(),
        c.logs()
    );

    // Every certificate a client received is in the audit log, once.
    let rows = c.audit(1)?;
    let mut issued_serials = BTreeSet::new();
    for row in rows.iter().filter(|r| r["kind"] == "certificate.issued") {
        let serial = row["detail"]["serial"].as_u64().context("serial")?;
        assert!(
            issued_serials.insert(serial),
            "serial {serial} issued twice"
        );
    }
    for serial in seen.received.keys() {
        assert!(
            issued_serials.contains(serial),
            "serial {serial} was answered but is not in the audit log"
        );
    }
    // One unbroken chain, whichever replica's host verifies it (the
    // replicas still run, so it may have grown since the export).
    for i in [0, 2] {
        let out = c.cli(i, &["audit", "verify", "--json"])?;
        let verified: Value = serde_json::from_slice(&out.stdout)?;
        assert!(
            out.status.success() && verified["problems"] == json!([]),
            "{verified}"
        );
        assert!(
            verified["rows"].as_u64() >= Some(rows.len() as u64),
            "{verified}"
        );
    }

    // The session's recording is complete and verifies.
    let sealed = wait_audit(&c, 0, |r| {
        r["kind"] == "recording.sealed" && r["detail"]["problems"] == json!([])
    })?;
    let session = sealed["detail"]["session"]
        .as_str()
        .context("session")?
        .to_owned();
    let detail: Value = c
        .reviewer_get(&format!("/v1/recordings/{session}"))?
        .json()?;
    assert_eq!(detail["status"], "sealed", "{detail}");
    let manifest_text = detail["manifest"].as_str().context("manifest")?;
    assert_eq!(
        detail["digest"].as_str(),
        Some(hex::encode(Sha256::digest(manifest_text)).as_str())
    );
    let manifest: Value = serde_json::from_str(manifest_text)?;
    let mut output = String::new();
    for file in manifest["files"].as_array().context("files")? {
        let name = file["name"].as_str().context("name")?;
        let bytes = c
            .reviewer_get(&format!("/v1/recordings/{session}/files/{name}?offset=0"))?
            .bytes()?;
        assert_eq!(file["bytes"].as_u64(), Some(bytes.len() as u64), "{name}");
        assert_eq!(
            file["sha256"].as_str(),
            Some(hex::encode(Sha256::digest(&bytes)).as_str()),
            "{name}"
        );
        output.push_str(&output_of(&bytes));
    }
    for marker in [
        "ha-marker-before",
        "ha-marker-after-first-kill",
        "ha-marker-after-second-kill",
        "ha-marker-end",
    ] {
        assert!(
            output.contains(marker),
            "{marker} missing from the recording"
        );
    }
    // The manifest's signature, checked by OpenSSH with the user CA key.
    let user_ca = std::fs::read_to_string(c.replicas[0].data_dir().join("keys/user_ca.pub"))?;
    let signers = c.work.path().join("allowed_signers");
    std::fs::write(&signers, format!("shiftkey-ca {}", user_ca.trim()))?;
    let signature = c.work.path().join("manifest.sig");
    std::fs::write(
        &signature,
        detail["signature"].as_str().context("signature")?,
    )?;
    let mut verify = Command::new("ssh-keygen");
    verify
        .args([
            "-Y",
            "verify",
            "-n",
            "shiftkey-recording@shiftkey",
            "-I",
            "shiftkey-ca",
            "-f",
        ])
        .arg(&signers)
        .arg("-s")
        .arg(&signature)
        .stdin(Stdio::piped());
    let mut child = verify
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(manifest_text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn store_migrate_moves_a_single_node_ca_to_postgresql_with_its_chain() -> anyhow::Result<()> {
    let db = TestDatabase::create()?;
    let (text, _) = policy();
    let mut single = TestCa::init(&text, None)?.start()?;
    let public = ssh_key::PrivateKey::random(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        ssh_key::Algorithm::Ed25519,
    )?
    .public_key()
    .to_openssh()?;
    let (status, issued) = single.request_local(&json!({
        "public_key": public, "role": "shell", "reason": "before the move", "ttl": "5m",
    }))?;
    anyhow::ensure!(status == 200, "{issued}");
    let dir = single.data_dir().display().to_string();
    let sqlite = format!("sqlite:{dir}/shiftkey.db");

    // Refused while the CA serves the file: rows written meanwhile would be lost.
    let out = single.cli(&["store", "migrate", "--from", &sqlite, "--to", &db.url()])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    single.stop()?;
    let before: Value = serde_json::from_slice(
        &single
            .cli(&["audit", "verify", "--json", "--data-dir", &dir])?
            .stdout,
    )?;

    let out = single.cli(&[
        "store",
        "migrate",
        "--from",
        &sqlite,
        "--to",
        &db.url(),
        "--json",
    ])?;
    let result: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
    assert!(out.status.success(), "{result}");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["target"]["head_hash"], before["head_hash"]);
    assert_eq!(result["tables"]["certificates"], 1, "{result}");
    // The status line went to stderr, table by table.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("copied audit:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second copy into the same database is refused.
    let out = single.cli(&["store", "migrate", "--from", &sqlite, "--to", &db.url()])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds a Shiftkey store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same CA on PostgreSQL: what it issued before is known, and its
    // commands see the same chain.
    single.configure(|text| format!("{text}\n[store]\nurl = \"{}\"\n", db.url()))?;
    single.spawn()?;
    let (status, again) = single.request_local(&json!({
        "public_key": public, "role": "shell", "reason": "after the move", "ttl": "5m",
    }))?;
    anyhow::ensure!(status == 200, "{again}");
    assert!(again["serial"].as_u64() > issued["serial"].as_u64());
    let after: Value = serde_json::from_slice(
        &single
            .cli(&["audit", "verify", "--json", "--data-dir", &dir])?
            .stdout,
    )?;
    assert_eq!(after["problems"], json!([]), "{after}");
    assert!(after["rows"].as_u64() > before["rows"].as_u64(), "{after}");
    let help = single.cli(&["store", "migrate", "--help"])?;
    assert!(String::from_utf8_lossy(&help.stdout).contains("--password-file"));

    // Every command on this data directory now works on PostgreSQL.
    let run_ok = |args: &[&str]| -> anyhow::Result<String> {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &dir]);
        let out = single.cli(&all)?;
        anyhow::ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run_ok(&[
        "lock",
        "--identity",
        "local:nobody",
        "--reason",
        "moved store",
    ])?;
    run_ok(&[
        "unlock",
        "--identity",
        "local:nobody",
        "--reason",
        "moved store",
    ])?;
    let token: Value = serde_json::from_str(&run_ok(&[
        "hosts",
        "token",
        "--name",
        "db-9",
        "--principals",
        "db-9.example.com",
        "--json",
    ])?)?;
    run_ok(&["hosts", "list", "--json"])?;
    let serial = again["serial"].as_u64().context("serial")?.to_string();
    let revoked: Value = serde_json::from_str(&run_ok(&[
        "revoke",
        "--serial",
        &serial,
        "--reason",
        "moved store",
        "--json",
    ])?)?;
    assert_eq!(revoked["revoked_serials"], json!([again["serial"]]));
    // The serving CA (another process) sees each of them in the shared rows.
    let exported = run_ok(&["audit", "export"])?;
    for kind in [
        "identity.locked",
        "identity.unlocked",
        "host.token_created",
        "certificate.revoked",
    ] {
        assert!(
            exported.contains(&format!("\"kind\":\"{kind}\"")),
            "{kind} missing"
        );
    }
    assert!(exported.contains(token["id"].as_str().unwrap_or("?")));
    // The serving CA's KRL, read from the shared rows, revokes it.
    let work = tempfile::tempdir()?;
    let krl = work.path().join("krl");
    std::fs::write(
        &krl,
        single.client().get(single.url("/v1/krl")).send()?.bytes()?,
    )?;
    let cert = work.path().join("id-cert.pub");
    std::fs::write(
        &cert,
        format!("{}\n", again["certificate"].as_str().unwrap_or_default()),
    )?;
    assert!(shiftkey_tests::util::krl_revokes(&krl, &cert)?);
    Ok(())
}

/// The sweeps with several replicas: a bastion SIGKILLed mid-session, its
/// session sealed as lost by exactly one of the three replicas (each sweeps
/// every second), then retention on all three deletes the recording once —
/// one audit row — and its objects leave the bucket.
#[test]
fn replicas_seal_a_dead_bastions_session_once_and_delete_its_recording_once() -> anyhow::Result<()>
{
    let mut c = Cluster::start_with(
        "lost_after = \"3s\"\nretention = \"8s\"\n",
        "heartbeat_interval = \"1s\"\n",
    )?;
    let key = ssh_keygen(c.work.path(), "id_ed25519", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, issued) = c.replicas[1].request_local(&json!({
        "public_key": public.trim(), "role": "shell", "reason": "ha sweeps", "ttl": "10m",
    }))?;
    anyhow::ensure!(status == 200, "{issued}");
    std::fs::write(
        c.work.path().join("id_ed25519-cert.pub"),
        format!("{}\n", issued["certificate"].as_str().unwrap_or_default()),
    )?;
    let config = c.bastion.ssh_config(&c.replicas[0], c.work.path(), &key)?;
    let mut ssh = interactive(&c, &config)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_line(&mut ssh, "echo ha-sweep-marker")?;
    let started = wait_audit(&c, 0, |r| r["kind"] == "session.authorized")?;
    let session = started["detail"]["session"]
        .as_str()
        .context("session")?
        .to_owned();
    // Shipped to the bucket before the kill (the bastion ships every second).
    std::thread::sleep(Duration::from_secs(3));
    let objects = Path::new(&std::env::var("SHIFTKEY_TEST_SERVICES")?)
        .join("s3")
        .join(&c.bucket.bucket)
        .join(&c.bucket.prefix)
        .join(&session);
    anyhow::ensure!(objects.exists(), "nothing reached the bucket\n{}", c.logs());
    c.bastion.kill9()?;
    let _ = ssh.kill();
    let lost = wait_audit(&c, 2, |r| {
        r["kind"] == "recording.lost" && r["detail"]["session"] == session.as_str()
    })?;
    println!("sealed as lost by {}", lost["actor"]);
    let deleted = wait_audit(&c, 1, |r| {
        r["kind"] == "recording.deleted" && r["detail"]["session"] == session.as_str()
    })?;
    assert_eq!(deleted["detail"]["status"], "lost", "{deleted}");
    // Several more sweeps of every replica, then count.
    std::thread::sleep(Duration::from_secs(4));
    let rows = c.audit(0)?;
    for kind in ["recording.lost", "recording.deleted"] {
        let n = rows
            .iter()
            .filter(|r| r["kind"] == kind && r["detail"]["session"] == session.as_str())
            .count();
        assert_eq!(n, 1, "{kind} {n} times\n{}", c.logs());
    }
    // The objects are gone from the bucket (the S3 server's own directory),
    // and every replica answers that the recording was deleted.
    let left: Vec<_> = walk(&objects);
    assert!(left.is_empty(), "left in the bucket: {left:?}");
    let verified: Value =
        serde_json::from_slice(&c.cli(2, &["audit", "verify", "--json"])?.stdout)?;
    assert_eq!(verified["problems"], json!([]), "{verified}");
    Ok(())
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
