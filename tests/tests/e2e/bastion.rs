//! The bastion, end to end: real OpenSSH `ssh -J` through `shiftkey-bastion`
//! to a real `sshd` that trusts only the CA, with every session recorded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shiftkey_tests::bastion::{TestBastion, read_recording, recording_files};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{ensure_login_user, run, ssh_keygen};

use crate::fixtures::{LOGIN_USER, policy, with_ports};

/// A CA, a target sshd certified by the CA's host key, a bastion, and a
/// user key with a certificate for the `shell` role.
pub(crate) struct World {
    pub(crate) ca: TestCa,
    pub(crate) sshd: Sshd,
    pub(crate) bastion: TestBastion,
    pub(crate) work: tempfile::TempDir,
    pub(crate) key: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) serial: u64,
}

/// What a [`World`] is made of, where a test needs other than the defaults.
pub(crate) struct Setup<'a> {
    pub(crate) recordings: Option<&'a Path>,
    pub(crate) policy: String,
    /// Lines appended to the target's sshd_config.
    pub(crate) sshd_extra: &'a str,
    /// Lines appended to bastion.toml, given the target's port.
    pub(crate) bastion_extra: &'a dyn Fn(u16) -> String,
    /// Lines appended to the CA's ca.toml (tables go last, so they may).
    pub(crate) ca_extra: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            recordings: None,
            policy: policy().0,
            sshd_extra: "",
            bastion_extra: &|_| String::new(),
            ca_extra: "",
        }
    }
}

impl World {
    pub(crate) fn new(recordings: Option<&Path>) -> anyhow::Result<Self> {
        Self::with_policy(recordings, &policy().0)
    }

    fn with_policy(recordings: Option<&Path>, policy: &str) -> anyhow::Result<Self> {
        Self::build(Setup {
            recordings,
            policy: policy.to_owned(),
            ..Setup::default()
        })
    }

    pub(crate) fn build(setup: Setup<'_>) -> anyhow::Result<Self> {
        ensure_login_user(LOGIN_USER)?;
        let ca = TestCa::init(&setup.policy, None)?;
        if !setup.ca_extra.is_empty() {
            let path = ca.data_dir().join("ca.toml");
            let config = std::fs::read_to_string(&path)? + "\n" + setup.ca_extra;
            std::fs::write(path, config)?;
        }
        let work = tempfile::tempdir()?;
        let user_ca = std::fs::read_to_string(ca.data_dir().join("keys/user_ca.pub"))?;
        // As an enrolled target: only the role's scoped principal.
        let sshd_dir = work.path().join("sshd");
        let sshd_extra = format!(
            "{}{}",
            principals_config(&sshd_dir, LOGIN_USER, &[&format!("{LOGIN_USER}@shell")])?,
            setup.sshd_extra
        );
        let sshd = Sshd::start_with_host_ca_and_extra(
            &sshd_dir,
            &user_ca,
            Some(&ca.data_dir().join("keys/host_ca")),
            &sshd_extra,
        )?;
        // The bastion connects only to the role's ports: sshd's, here.
        std::fs::write(
            ca.data_dir().join("policy.toml"),
            with_ports(&setup.policy, "shell", &[sshd.port]),
        )?;
        let ca = ca.start()?;
        let bastion =
            TestBastion::start_with(&ca, setup.recordings, &(setup.bastion_extra)(sshd.port))?;
        let key = ssh_keygen(work.path(), "id_ed25519", &["-t", "ed25519"])?;
        let mut world = World {
            config: PathBuf::new(),
            serial: 0,
            ca,
            sshd,
            bastion,
            work,
            key,
        };
        world.serial = world.certify("10m")?;
        world.config = world
            .bastion
            .ssh_config(&world.ca, world.work.path(), &world.key)?;
        Ok(world)
    }

    /// A fresh certificate for the key (role `shell`), written beside it.
    pub(crate) fn certify(&self, ttl: &str) -> anyhow::Result<u64> {
        self.certify_for(ttl, None)
    }

    /// The same, under an incident.
    pub(crate) fn certify_for(&self, ttl: &str, incident: Option<&str>) -> anyhow::Result<u64> {
        let public = std::fs::read_to_string(self.key.with_extension("pub"))?;
        let mut request = json!({
            "public_key": public.trim(), "role": "shell", "reason": "bastion e2e", "ttl": ttl,
        });
        if let Some(id) = incident {
            request["incident"] = json!(id);
        }
        let (status, body) = self.ca.request_local(&request)?;
        anyhow::ensure!(status == 200, "{body}");
        std::fs::write(
            self.work.path().join("id_ed25519-cert.pub"),
            format!("{}\n", body["certificate"].as_str().unwrap_or_default()),
        )?;
        Ok(body["serial"].as_u64().unwrap_or(0))
    }

    /// `ssh -F CONFIG -J bastion -p PORT LOGIN@127.0.0.1 ARGS...`
    pub(crate) fn ssh(&self, login: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&self.config)
            .args(["-J", "bastion", "-p"])
            .arg(self.sshd.port.to_string())
            .arg(format!("{login}@127.0.0.1"))
            .args(args);
        cmd
    }

    /// The single-hop form: `ssh -p BASTION 'LOGIN%HOST:PORT@bastion' ARGS...`.
    pub(crate) fn single_hop(&self, host: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&self.config)
            .arg("-p")
            .arg(self.bastion.port.to_string())
            .arg(format!("{LOGIN_USER}%{host}:{}@127.0.0.1", self.sshd.port))
            .args(args);
        cmd
    }

    /// The hostile client's connection arguments, single-hop form to the
    /// target (`LOGIN%127.0.0.1:PORT` as the user), then `args`.
    pub(crate) fn hostile(&self, args: &[&str]) -> anyhow::Result<Value> {
        let port = self.bastion.port.to_string();
        let user = format!("{LOGIN_USER}%127.0.0.1:{}", self.sshd.port);
        let key = self.key.display().to_string();
        let cert = format!("{key}-cert.pub");
        let known = self.work.path().join("known_hosts").display().to_string();
        let mut all = vec![
            "--port",
            &port,
            "--user",
            &user,
            "--key",
            &key,
            "--cert",
            &cert,
            "--known-hosts",
            &known,
        ];
        all.extend_from_slice(args);
        shiftkey_tests::bastion::hostile(&all)
    }

    /// Replaces the CA's policy and waits until the CA has reloaded it.
    pub(crate) fn reload_policy(&self, text: &str) -> anyhow::Result<()> {
        let before = self
            .ca
            .audit_rows()?
            .iter()
            .filter(|r| r["kind"] == "policy.reloaded")
            .count();
        std::fs::write(self.ca.data_dir().join("policy.toml"), text)?;
        self.ca.signal("HUP")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = self.ca.audit_rows()?;
            let reloaded = rows.iter().filter(|r| r["kind"] == "policy.reloaded");
            if reloaded.count() > before {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the CA did not reload its policy:\n{}",
                self.ca.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `shiftkey ARGS` as local:root on the CA's socket (a reviewer).
    pub(crate) fn shiftkey(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let home = self.work.path().join("home");
        std::fs::create_dir_all(&home)?;
        let socket = format!("unix:{}", self.ca.socket().display());
        run(Command::new(shiftkey_tests::util::binary("shiftkey")?)
            .args(args)
            .args(["--ca", &socket])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null()))
    }

    /// The CA's view of a session (`GET /v1/recordings/ID` as local:root).
    pub(crate) fn session(&self, id: &str) -> anyhow::Result<Value> {
        let (status, body) = self
            .ca
            .local("GET", &format!("/v1/recordings/{id}"), &Value::Null)?;
        anyhow::ensure!(status == 200, "GET /v1/recordings/{id}: {status} {body}");
        Ok(body)
    }

    /// Waits until the CA has sealed session `id` (any final status).
    pub(crate) fn wait_sealed(&self, id: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let session = self.session(id)?;
            if session["status"] != "live" {
                return Ok(session);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "session {id} is still live at the CA:\n{session}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Session IDs the bastion has recorded under, oldest first.
    pub(crate) fn session_ids(&self) -> Vec<String> {
        let mut dirs: Vec<_> = std::fs::read_dir(self.bastion.recordings())
            .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        dirs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        dirs.iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect()
    }

    /// `shiftkey-ca revoke` of the user's certificate.
    pub(crate) fn revoke(&self, reason: &str) -> anyhow::Result<()> {
        let out = self.ca.cli(&[
            "revoke",
            "--serial",
            &self.serial.to_string(),
            "--reason",
            reason,
            "--data-dir",
            &self.ca.data_dir().display().to_string(),
        ])?;
        anyhow::ensure!(out.status.success(), "{}", stderr_of(&out));
        Ok(())
    }

    pub(crate) fn logs(&self) -> String {
        format!(
            "--- bastion\n{}\n--- ca\n{}\n--- sshd\n{}",
            self.bastion.log(),
            self.ca.log(),
            self.sshd.log()
        )
    }

    /// Waits for a recording file whose lines satisfy `done`.
    pub(crate) fn wait_recording(
        &self,
        done: impl Fn(&[Value]) -> bool,
    ) -> anyhow::Result<(PathBuf, Vec<Value>)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for file in recording_files(&self.bastion.recordings()) {
                let lines = read_recording(&file)?;
                if done(&lines) {
                    return Ok((file, lines));
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no matching recording in {}:\n{}",
                self.bastion.recordings().display(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Text of every event with `code` ("i", "o").
pub(crate) fn events(lines: &[Value], code: &str) -> String {
    lines
        .iter()
        .filter(|l| l[1] == code)
        .filter_map(|l| l[2].as_str())
        .collect()
}

/// An interactive `ssh -tt`: the remote gets a pty, we type into stdin.
pub(crate) fn interactive(world: &World) -> anyhow::Result<Child> {
    Ok(world
        .ssh(LOGIN_USER, &["-tt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

pub(crate) fn type_slowly(child: &mut Child, text: &[u8]) -> anyhow::Result<()> {
    let stdin = child.stdin.as_mut().expect("piped stdin");
    for chunk in text.chunks(4) {
        stdin.write_all(chunk)?;
        stdin.flush()?;
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(())
}

pub(crate) fn wait_with_timeout(
    child: &mut Child,
    limit: Duration,
) -> anyhow::Result<(bool, String, String)> {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            let mut out = String::new();
            let mut err = String::new();
            use std::io::Read;
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_string(&mut out);
            }
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            return Ok((true, out, err));
        }
        if Instant::now() > deadline {
            return Ok((false, String::new(), String::new()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_exec_session_through_the_jump_host_runs_and_is_recorded() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let out = run(&mut world.ssh(
        LOGIN_USER,
        &["echo", "exec-through-bastion", "&&", "id", "-un"],
    ))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("exec-through-bastion")
            && stdout.contains(LOGIN_USER),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        world.logs()
    );
    let (_, lines) = world.wait_recording(|l| events(l, "o").contains("exec-through-bastion"))?;
    let header = &lines[0];
    assert_eq!(header["version"], 2);
    assert_eq!(header["shiftkey"]["kind"], "exec");
    assert_eq!(header["shiftkey"]["principal"], LOGIN_USER);
    assert_eq!(header["shiftkey"]["user_serial"], world.serial);
    assert_eq!(header["shiftkey"]["identity"], "local:root");
    assert!(
        header["shiftkey"]["command"]
            .as_str()
            .unwrap_or_default()
            .contains("echo exec-through-bastion"),
        "{header}"
    );
    // The CA authorized it and minted a one-session certificate; at the end
    // it sealed the recording the bastion shipped.
    let session = header["shiftkey"]["session"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sealed = wait_audit(&world.ca, "recording.sealed", |r| {
        r["detail"].to_string().contains(&session)
    })?;
    assert_eq!(sealed["detail"]["problems"], json!([]), "{sealed}");
    assert_eq!(sealed["actor"], "bastion:bastion-1");
    let row = world.ca.last_audit("session.authorized")?;
    assert_eq!(row["detail"]["user_serial"], world.serial);
    assert!(
        row["detail"]["key_id"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("via={}", world.serial)),
        "{row}"
    );
    Ok(())
}

#[test]
fn an_interactive_session_records_every_keystroke_and_replays() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    // A typo corrected with backspace, then typing with echo off.
    type_slowly(&mut ssh, b"echo hellx\x7fo-world\r")?;
    std::thread::sleep(Duration::from_millis(500));
    type_slowly(&mut ssh, b"stty -echo\r")?;
    std::thread::sleep(Duration::from_millis(300));
    type_slowly(&mut ssh, b"echo typed-blind\r")?;
    std::thread::sleep(Duration::from_millis(300));
    type_slowly(&mut ssh, b"exit\r")?;
    let (exited, stdout, stderr) = wait_with_timeout(&mut ssh, Duration::from_secs(20))?;
    assert!(exited, "ssh did not exit\n{}", world.logs());
    assert!(
        stdout.contains("hello-world"),
        "{stdout}\n{stderr}\n{}",
        world.logs()
    );
    let (file, lines) = world.wait_recording(|l| events(l, "i").contains("exit"))?;
    let input = events(&lines, "i");
    let output = events(&lines, "o");
    assert!(input.contains("echo hellx\u{7f}o-world\r"), "{input:?}");
    // Not echoed, still recorded.
    assert!(input.contains("echo typed-blind\r"), "{input:?}");
    assert!(!output.contains("echo typed-blind"), "{output:?}");
    assert!(output.contains("typed-blind"), "{output:?}");
    assert!(output.contains("hello-world"), "{output:?}");
    assert_eq!(lines[0]["shiftkey"]["kind"], "shell");
    // asciinema replays it.
    let cast = world.work.path().join("session.cast");
    let decoded: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&cast, decoded.join("\n") + "\n")?;
    let replay = run(Command::new("asciinema").arg("cat").arg(&cast))?;
    assert!(
        replay.status.success() && String::from_utf8_lossy(&replay.stdout).contains("hello-world"),
        "asciinema cat {}: {}",
        file.display(),
        String::from_utf8_lossy(&replay.stderr)
    );
    Ok(())
}

#[test]
fn an_sftp_upload_is_recorded_as_operations() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let upload = world.work.path().join("upload.bin");
    std::fs::write(&upload, vec![0xabu8; 100_000])?;
    let batch = world.work.path().join("batch");
    let remote = format!("/tmp/shiftkey-sftp-{}", std::process::id());
    std::fs::write(&batch, format!("put {} {remote}\n", upload.display()))?;
    let out = run(Command::new("sftp")
        .arg("-F")
        .arg(&world.config)
        .args(["-J", "bastion", "-P"])
        .arg(world.sshd.port.to_string())
        .arg("-b")
        .arg(&batch)
        .arg(format!("{LOGIN_USER}@127.0.0.1")))?;
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        world.logs()
    );
    assert_eq!(std::fs::metadata(&remote)?.len(), 100_000);
    let _ = std::fs::remove_file(&remote);
    let (_, lines) = world.wait_recording(|l| {
        l.iter()
            .any(|e| e["op"] == "close" && e["bytes_written"] == 100_000)
    })?;
    assert!(
        lines
            .iter()
            .any(|e| e["op"] == "open" && e["path"] == remote.as_str() && e["mode"] == "write"),
        "{lines:?}"
    );
    Ok(())
}

pub(crate) fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until the CA's audit log has a row of `kind` satisfying `pick`.
pub(crate) fn wait_audit(
    ca: &TestCa,
    kind: &str,
    pick: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(row) = ca
            .audit_rows()?
            .into_iter()
            .rev()
            .find(|r| r["kind"] == kind && pick(r))
        {
            return Ok(row);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {kind} audit row:\n{}",
            ca.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn refusals_say_why_and_are_audited() -> anyhow::Result<()> {
    let world = World::new(None)?;

    // A target the role does not cover, single-hop form: the CA says no.
    let out = run(&mut world.single_hop("localhost", &["true"]))?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("host-not-in-role") && stderr_of(&out).contains("localhost"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    wait_audit(&world.ca, "session.denied", |r| {
        r["detail"]["denied"] == "host-not-in-role"
    })?;

    // The same through -J (a policy role covers every host, so the bastion
    // may present itself as it; the session is still the role's to allow).
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(&world.config)
        .args(["-J", "bastion", "-p"])
        .arg(world.sshd.port.to_string())
        .arg(format!("{LOGIN_USER}@localhost"))
        .arg("true"))?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("host-not-in-role"),
        "{}",
        stderr_of(&out)
    );
    wait_audit(&world.ca, "session.denied", |r| {
        r["detail"]["denied"] == "host-not-in-role"
            && r["detail"]["target"] == format!("localhost:{}", world.sshd.port)
    })?;

    // A login the certificate does not name.
    let out = run(&mut world.ssh("root", &["true"]))?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("principal-not-in-certificate"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    wait_audit(&world.ca, "session.denied", |r| {
        r["detail"]["denied"] == "principal-not-in-certificate"
            && r["detail"]["principal"] == "root"
    })?;

    // A certificate from another CA.
    let other = world.work.path().join("other-ca");
    std::fs::create_dir_all(&other)?;
    let other_ca = ssh_keygen(&other, "ca", &["-t", "ed25519"])?;
    let stranger = ssh_keygen(&other, "id_ed25519", &["-t", "ed25519"])?;
    shiftkey_tests::util::run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&other_ca)
            .args(["-I", "stranger", "-n", LOGIN_USER, "-V", "-5m:+1h"])
            .arg(stranger.with_extension("pub")),
    )?;
    let stranger_config = world.bastion.ssh_config(&world.ca, &other, &stranger)?;
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(&stranger_config)
        .args(["-J", "bastion", "-p"])
        .arg(world.sshd.port.to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .arg("true"))?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Permission denied"),
        "{}",
        stderr_of(&out)
    );
    // Anyone can make such a certificate: counted, never an audit row.
    let counted = world
        .bastion
        .metric("shiftkey_bastion_logins_refused_total{reason=\"unknown-ca\"}")?;
    assert!(counted >= 1.0, "{}", world.bastion.metrics()?);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !world
            .ca
            .audit_rows()?
            .iter()
            .any(|r| r["detail"]["denied"] == "unknown-ca"),
        "another CA's certificate wrote an audit row"
    );

    // A revoked certificate.
    world.revoke("bastion e2e")?;
    std::thread::sleep(Duration::from_millis(1500));
    let out = run(&mut world.ssh(LOGIN_USER, &["true"]))?;
    assert!(!out.status.success(), "a revoked certificate got in");
    wait_audit(&world.ca, "session.denied", |r| {
        r["detail"]["denied"] == "certificate-revoked" && r["detail"]["user_serial"] == world.serial
    })?;

    // An expired certificate: OpenSSH itself will not offer it, and the
    // bastion (russh) refuses it before anything else.
    world.certify("2s")?;
    std::thread::sleep(Duration::from_secs(3));
    let out = run(&mut world.ssh(LOGIN_USER, &["echo", "should-not-run"]))?;
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("should-not-run"));
    Ok(())
}

#[test]
fn revoking_the_certificate_ends_the_live_session_within_two_seconds() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo session-is-live\r")?;
    world.wait_recording(|l| events(l, "o").contains("session-is-live"))?;
    world.revoke("key compromised")?;
    let revoked = Instant::now();
    let (exited, stdout, _) = wait_with_timeout(&mut ssh, Duration::from_secs(10))?;
    let took = revoked.elapsed();
    assert!(
        exited,
        "the session outlived its revocation\n{}",
        world.logs()
    );
    println!("session ended {} ms after the revocation", took.as_millis());
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        stdout.contains("session ended: your certificate was revoked"),
        "{stdout}\n{}",
        world.logs()
    );
    // The recording says why it ended.
    world.wait_recording(|l| events(l, "m").contains("your certificate was revoked"))?;
    Ok(())
}

#[test]
fn a_recording_that_cannot_be_written_stops_the_session() -> anyhow::Result<()> {
    let place = tempfile::tempdir()?;
    let recordings = place.path().join("recordings");
    let world = World::new(Some(&recordings))?;
    // The directory becomes a file: nothing can be created in it.
    std::fs::remove_dir_all(&recordings)?;
    std::fs::write(&recordings, b"not a directory")?;
    let out = run(&mut world.ssh(LOGIN_USER, &["echo", "must-not-pass"]))?;
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("must-not-pass"),
        "unrecorded output passed"
    );
    assert!(
        stderr_of(&out).contains("cannot be recorded"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    Ok(())
}

#[test]
fn a_recording_survives_kill_9_up_to_the_last_flush() -> anyhow::Result<()> {
    let mut world = World::new(None)?;
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo before-the-crash\r")?;
    // Past one flush interval.
    std::thread::sleep(Duration::from_millis(2500));
    world.bastion.kill9()?;
    let _ = wait_with_timeout(&mut ssh, Duration::from_secs(10))?;
    let files = recording_files(&world.bastion.recordings());
    let file = files.last().expect("a recording file");
    let lines = read_recording(file)?;
    assert!(
        events(&lines, "i").contains("echo before-the-crash"),
        "{lines:?}"
    );
    assert!(
        events(&lines, "o").contains("before-the-crash"),
        "{lines:?}"
    );
    Ok(())
}

#[test]
fn the_single_hop_form_reaches_the_target_too() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let out = run(&mut world.single_hop("127.0.0.1", &["echo", "single-hop"]))?;
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("single-hop"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    world.wait_recording(|l| events(l, "o").contains("single-hop"))?;
    Ok(())
}

#[test]
fn resolving_the_incident_ends_sessions_opened_under_it() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let (status, body) = world.ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-77", "title": "bastion e2e", "severity": "sev2" }),
    )?;
    assert_eq!(status, 201, "{body}");
    world.certify_for("10m", Some("INC-77"))?;
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo under-incident\r")?;
    world.wait_recording(|l| events(l, "o").contains("under-incident"))?;
    let (status, body) = world
        .ca
        .local("POST", "/v1/incidents/INC-77/resolve", &Value::Null)?;
    assert_eq!(status, 200, "{body}");
    let resolved = Instant::now();
    let (exited, stdout, _) = wait_with_timeout(&mut ssh, Duration::from_secs(10))?;
    assert!(
        exited,
        "the session outlived its incident\n{}",
        world.logs()
    );
    println!(
        "session ended {} ms after the incident was resolved",
        resolved.elapsed().as_millis()
    );
    assert!(resolved.elapsed() < Duration::from_secs(2));
    assert!(
        stdout.contains("session ended"),
        "{stdout}\n{}",
        world.logs()
    );
    // And no new session starts under it.
    let out = run(&mut world.ssh(LOGIN_USER, &["true"]))?;
    assert!(!out.status.success());
    Ok(())
}

#[test]
fn ssh_config_sends_recorded_roles_through_the_bastion() -> anyhow::Result<()> {
    let world = World::new(None)?;
    // The policy names the bastion and sends the shell role through it.
    let policy = with_ports(&policy().0, "shell", &[world.sshd.port])
        .replacen(
            "[settings]\n",
            &format!(
                "[settings]\nbastion = \"localhost:{}\"\n",
                world.bastion.port
            ),
            1,
        )
        .replacen(
            "name = \"shell\"\n",
            "name = \"shell\"\nvia_bastion = true\n",
            1,
        );
    std::fs::write(world.ca.data_dir().join("policy.toml"), policy)?;
    world.ca.signal("HUP")?;
    wait_audit(&world.ca, "policy.reloaded", |_| true)?;

    let home = world.work.path().join("home");
    std::fs::create_dir_all(&home)?;
    let out = run(Command::new(shiftkey_tests::util::binary("shiftkey")?)
        .args(["ssh-config", "--install", "--ca"])
        .arg(format!("unix:{}", world.ca.socket().display()))
        .env("HOME", &home))?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let config = home.join(".ssh/shiftkey.conf");
    let text = std::fs::read_to_string(&config)?;
    assert!(
        text.contains(&format!("ProxyJump localhost:{}", world.bastion.port)),
        "{text}"
    );
    // Plain ssh with that file and an agent: through the bastion, recorded.
    let agent = shiftkey_tests::ssh_agent::SshAgent::start(world.work.path())?;
    let added = run(Command::new("ssh-add")
        .arg(&world.key)
        .env("SSH_AUTH_SOCK", &agent.socket))?;
    assert!(added.status.success(), "{}", stderr_of(&added));
    // The agent by environment, as users have it: the jump inherits it.
    let out = run(Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-o", "BatchMode=yes", "-p"])
        .arg(world.sshd.port.to_string())
        .args(["127.0.0.1", "echo", "via-generated-config"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .stdin(Stdio::null()))?;
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("via-generated-config"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    world.wait_recording(|l| events(l, "o").contains("via-generated-config"))?;
    Ok(())
}

#[test]
fn an_operator_lock_ends_the_session_and_refuses_new_ones() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo before-the-lock\r")?;
    world.wait_recording(|l| events(l, "o").contains("before-the-lock"))?;
    let out = world.ca.cli(&[
        "lock",
        "--identity",
        "local:root",
        "--reason",
        "laptop stolen",
        "--data-dir",
        &world.ca.data_dir().display().to_string(),
    ])?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let locked = Instant::now();
    let (exited, stdout, _) = wait_with_timeout(&mut ssh, Duration::from_secs(10))?;
    assert!(exited, "the session outlived the lock\n{}", world.logs());
    assert!(
        locked.elapsed() < Duration::from_secs(2),
        "{:?}",
        locked.elapsed()
    );
    assert!(stdout.contains("session ended"), "{stdout}");
    // No new certificate while locked; unlocking lets it in again.
    let public = std::fs::read_to_string(world.key.with_extension("pub"))?;
    let request = json!({ "public_key": public.trim(), "role": "shell", "ttl": "5m" });
    let (status, body) = world.ca.request_local(&request)?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "identity-locked", "{body}");
    let out = world.ca.cli(&[
        "unlock",
        "--identity",
        "local:root",
        "--reason",
        "laptop found",
        "--data-dir",
        &world.ca.data_dir().display().to_string(),
    ])?;
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (status, body) = world.ca.request_local(&request)?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[test]
fn an_idle_session_ends_after_the_roles_idle_timeout() -> anyhow::Result<()> {
    let policy = policy().0.replacen(
        "name = \"shell\"\n",
        "name = \"shell\"\nidle_timeout = \"3s\"\n",
        1,
    );
    let world = World::with_policy(None, &policy)?;
    let mut ssh = interactive(&world)?;
    std::thread::sleep(Duration::from_millis(1500));
    type_slowly(&mut ssh, b"echo then-nothing\r")?;
    let (exited, stdout, _) = wait_with_timeout(&mut ssh, Duration::from_secs(15))?;
    assert!(exited, "the idle session did not end\n{}", world.logs());
    assert!(
        stdout.contains("session ended: idle for too long"),
        "{stdout}\n{}",
        world.logs()
    );
    Ok(())
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn urandom(len: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(len);
    std::fs::File::open("/dev/urandom")?
        .take(len as u64)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The session the bastion started since `before`, waited for (10 s).
pub(crate) fn new_session_id(world: &World, before: &[String]) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(id) = world
            .session_ids()
            .into_iter()
            .find(|id| !before.contains(id))
        {
            return Ok(id);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no new session:\n{}",
            world.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 1 MiB of random bytes through an exec channel: `shiftkey recordings cat`
/// gives back exactly what the client received (and, with --input, exactly
/// what it sent), the recording stays about the size of the bytes, and
/// stock asciinema still reads the file.
#[test]
fn exec_output_is_recorded_byte_exact_and_cat_gives_it_back() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let before = world.session_ids();
    let out = run(&mut world.ssh(LOGIN_USER, &["head", "-c", "1048576", "/dev/urandom"]))?;
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    assert_eq!(out.stdout.len(), 1 << 20);
    let session = new_session_id(&world, &before)?;
    let sealed = world.wait_sealed(&session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    let recorded = sealed["files"][0]["bytes"].as_u64().unwrap_or(u64::MAX);
    println!(
        "1 MiB of random output took {recorded} bytes recorded ({:.3}x)",
        recorded as f64 / f64::from(1u32 << 20)
    );
    assert!(
        recorded * 10 <= 11 << 20,
        "{recorded} bytes: more than 1.1x"
    );
    let cat = world.shiftkey(&["recordings", "cat", &session])?;
    assert!(cat.status.success(), "{}", stderr_of(&cat));
    assert_eq!(
        sha256_hex(&cat.stdout),
        sha256_hex(&out.stdout),
        "recordings cat differs from what the client received"
    );
    // Stock asciinema reads the file (and skips the bytes it cannot show).
    let gz = world.bastion.recordings().join(&session).join("1.cast.gz");
    let mut cast = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&gz)?),
        &mut cast,
    )?;
    // Dense output moves the recorder to another gzip member: the note
    // written after the output is in the last one, and is read too.
    assert!(
        String::from_utf8_lossy(&cast).contains("exit_status"),
        "the end of the recording is missing"
    );
    let file = world.work.path().join("random.cast");
    std::fs::write(&file, &cast)?;
    let replay = run(Command::new("asciinema").arg("cat").arg(&file))?;
    assert!(replay.status.success(), "{}", stderr_of(&replay));

    // What the user sends, byte-exact too.
    let input = urandom(200_000)?;
    let before = world.session_ids();
    let mut child = world
        .ssh(LOGIN_USER, &["sha256sum"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(&input)?;
    drop(stdin);
    let out = child.wait_with_output()?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&sha256_hex(&input)),
        "{}",
        stderr_of(&out)
    );
    let session = new_session_id(&world, &before)?;
    world.wait_sealed(&session)?;
    let cat = world.shiftkey(&["recordings", "cat", &session, "--channel", "1", "--input"])?;
    assert!(cat.status.success(), "{}", stderr_of(&cat));
    assert_eq!(sha256_hex(&cat.stdout), sha256_hex(&input));
    Ok(())
}

/// A session whose recordings reach `max_recording_size` ends with a
/// message; every byte the client got is in the recording (never a gap).
#[test]
fn the_recording_size_limit_ends_the_session_and_leaves_no_gap() -> anyhow::Result<()> {
    let world = World::build(Setup {
        bastion_extra: &|_| "[limits]\nmax_recording_size = \"256KiB\"\n".to_owned(),
        ..Setup::default()
    })?;
    let before = world.session_ids();
    let out = run(&mut world.ssh(LOGIN_USER, &["head", "-c", "4194304", "/dev/urandom"]))?;
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("size limit"),
        "{}\n{}",
        stderr_of(&out),
        world.logs()
    );
    assert!(
        out.stdout.len() < 1 << 20,
        "{} bytes passed",
        out.stdout.len()
    );
    let session = new_session_id(&world, &before)?;
    let sealed = world.wait_sealed(&session)?;
    assert_eq!(sealed["status"], "sealed", "{sealed}");
    assert!(
        sealed["end_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("size limit"),
        "{sealed}"
    );
    let cat = world.shiftkey(&["recordings", "cat", &session])?;
    let recorded = cat.stdout;
    assert!(
        recorded.starts_with(&out.stdout),
        "the client got {} bytes, the recording holds {} that are not their start",
        out.stdout.len(),
        recorded.len()
    );
    assert!(recorded.len() - out.stdout.len() <= 64 * 1024);
    Ok(())
}
