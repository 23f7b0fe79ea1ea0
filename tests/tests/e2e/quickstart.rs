//! The README's first command, as a user runs it on a fresh machine: the
//! whole loop on loopback (CA, enrolled bastion, enrolled target sshd, one
//! recorded `ssh -J` session), and what still runs when sshd is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use serde_json::Value;
use shiftkey_tests::bastion::read_recording;
use shiftkey_tests::ssh_agent::SshAgent;
use shiftkey_tests::util::{binary, free_port, run};

/// `shiftkey-ca quickstart --exit ARGS --data-dir DATA`, without an agent
/// unless `agent` names one.
fn quickstart(data: &Path, args: &[&str], agent: Option<&Path>) -> anyhow::Result<Output> {
    let mut cmd = Command::new(binary("shiftkey-ca")?);
    cmd.args(["quickstart", "--exit"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null());
    if let Some(socket) = agent {
        cmd.env("SSH_AUTH_SOCK", socket);
    }
    run(&mut cmd)
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value after `name` on the first line that starts with it.
fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(str::trim)
        .unwrap_or_default()
}

fn mode(path: &Path) -> anyhow::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn audit_rows(data: &Path) -> anyhow::Result<Vec<Value>> {
    let export = run(Command::new(binary("shiftkey-ca")?)
        .args(["audit", "export", "--data-dir"])
        .arg(data))?;
    Ok(String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[test]
fn quickstart_records_a_session_through_the_bastion_into_an_enrolled_host() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("qs");
    let listen = format!("127.0.0.1:{}", free_port());
    let out = quickstart(&data, &["--listen", &listen], None)?;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // The certificate, decoded: for the role that goes through the bastion.
    assert!(stdout.contains("Issued certificate"), "{stdout}");
    assert!(
        field(&stdout, "Key ID:").starts_with("\"local:root role=quickstart req=r_"),
        "{stdout}"
    );
    assert_eq!(field(&stdout, "Principals:"), "root@quickstart", "{stdout}");
    assert_eq!(field(&stdout, "Extensions:"), "permit-pty", "{stdout}");
    let serial: u64 = field(&stdout, "Serial:").parse()?;

    // The recorded session, by ID, and what the shell printed.
    let session = field(&stdout, "Session:").to_owned();
    assert!(session.starts_with("s_") && session.len() == 18, "{stdout}");
    assert!(
        field(&stdout, "output").starts_with("shiftkey-quickstart-42 as root on "),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("recorded  session {session} sealed")),
        "{stdout}"
    );

    // The target: enrolled with a join token, trusting only the CA, every
    // file inside the quickstart directory.
    let target = data.join("target");
    let sshd_config = std::fs::read_to_string(target.join("sshd_config"))?;
    let t = target.display();
    for line in [
        format!("TrustedUserCAKeys {t}/user_ca.pub"),
        format!("RevokedKeys {t}/revoked.krl"),
        format!("AuthorizedPrincipalsFile {t}/principals/%u"),
        format!("HostCertificate {t}/ssh_host_ed25519_key-cert.pub"),
        "AuthorizedKeysFile none".to_owned(),
        "PasswordAuthentication no".to_owned(),
        "ListenAddress 127.0.0.1".to_owned(),
        "PermitRootLogin prohibit-password".to_owned(),
    ] {
        assert!(
            sshd_config.lines().any(|l| l == line),
            "{line} in\n{sshd_config}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(target.join("principals/root"))?,
        "root@quickstart\n"
    );
    let key_of = |text: String| {
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        key_of(std::fs::read_to_string(target.join("user_ca.pub"))?),
        key_of(std::fs::read_to_string(data.join("keys/user_ca.pub"))?),
        "TrustedUserCAKeys is the CA's user key"
    );
    let host_cert = run(Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(target.join("ssh_host_ed25519_key-cert.pub")))?;
    let host_cert = String::from_utf8_lossy(&host_cert.stdout);
    assert!(host_cert.contains("host certificate"), "{host_cert}");
    assert!(host_cert.contains("quickstart-target"), "{host_cert}");

    // The identity, without an agent: key and certificate files, 0600.
    assert_eq!(mode(&data.join("id_ed25519"))?, 0o600);
    assert_eq!(mode(&data.join("id_ed25519-cert.pub"))?, 0o600);
    // The ssh config jumps through the bastion and trusts hosts only by the
    // host CA.
    let config = std::fs::read_to_string(data.join("ssh_config"))?;
    assert!(config.contains("ProxyJump quickstart-bastion"), "{config}");
    assert!(config.contains("StrictHostKeyChecking yes"), "{config}");
    let known = std::fs::read_to_string(data.join("known_hosts"))?;
    assert!(
        known.starts_with("@cert-authority * ssh-ed25519 "),
        "{known}"
    );

    // The bastion's own copy of the recording holds the typed line.
    let cast = data.join(format!("bastion/recordings/{session}/1.cast.gz"));
    let events = read_recording(&cast)?;
    let typed: String = events
        .iter()
        .filter(|e| e[1] == "i")
        .filter_map(|e| e[2].as_str())
        .collect();
    assert!(
        typed.contains("echo shiftkey-quickstart-$((6*7))"),
        "{typed}"
    );

    // The CA's audit log: both enrollments by one-time token, the session
    // and its seal; and the chain verifies.
    let rows = audit_rows(&data)?;
    let enrolled: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "host.enrolled")
        .collect();
    assert!(
        enrolled
            .iter()
            .any(|r| r["actor"] == "host:quickstart-target"
                && r["detail"]["token"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("jt_"))),
        "{enrolled:?}"
    );
    assert!(
        enrolled
            .iter()
            .any(|r| r["actor"] == "bastion:quickstart-bastion"),
        "{enrolled:?}"
    );
    assert!(
        rows.iter().any(|r| r["kind"] == "recording.sealed"
            && r["detail"]["session"] == session.as_str()
            && r["detail"]["identity"] == "local:root"),
        "no recording.sealed row for {session}"
    );
    assert!(
        rows.iter()
            .any(|r| r["kind"] == "certificate.issued" && r["detail"]["serial"] == serial)
    );
    let verify = run(Command::new(binary("shiftkey-ca")?)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data))?;
    assert!(verify.status.success(), "{}", texts(&verify).0);
    let test = run(Command::new(binary("shiftkey-ca")?)
        .args(["policy", "test"])
        .arg(data.join("policy.toml")))?;
    assert!(test.status.success(), "{}", texts(&test).0);

    // What to run next.
    for next in [
        format!(
            "ssh -F {} quickstart-target",
            data.join("ssh_config").display()
        ),
        format!("recordings play {session} --ca unix:"),
        "recordings search 'shiftkey-quickstart' --ca unix:".to_owned(),
        format!("recordings cat {session} --ca unix:"),
        format!("revoke --data-dir {} --serial {serial}", data.display()),
        format!("ui link --data-dir {}", data.display()),
        format!("https://{listen}/ui/"),
    ] {
        assert!(stdout.contains(&next), "{next} in\n{stdout}");
    }
    // The printed `ui link` works with the quickstart's ca.toml: a link to
    // the CA's loopback address, for the user who ran it.
    let link = run(Command::new(binary("shiftkey-ca")?)
        .args(["ui", "link", "--json", "--data-dir"])
        .arg(&data))?;
    assert!(link.status.success(), "{}", texts(&link).1);
    let link: Value = serde_json::from_slice(&link.stdout)?;
    assert!(
        link["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("https://{listen}/ui/link?token="))),
        "{link}"
    );
    assert_eq!(link["identity"], "local:root", "{link}");

    // Running it again reuses the directory and never overwrites the CA
    // keys; the throwaway target is enrolled afresh, a new session recorded.
    let key_before = std::fs::read(data.join("keys/user_ca.pub"))?;
    let again = quickstart(&data, &[], None)?;
    let (stdout2, stderr2) = texts(&again);
    assert!(again.status.success(), "{stdout2}\n{stderr2}");
    assert_eq!(std::fs::read(data.join("keys/user_ca.pub"))?, key_before);
    let session2 = field(&stdout2, "Session:");
    assert!(
        session2.starts_with("s_") && session2 != session,
        "{stdout2}"
    );
    let init = run(Command::new(binary("shiftkey-ca")?)
        .args(["init", "--data-dir"])
        .arg(&data))?;
    assert!(!init.status.success());
    assert!(String::from_utf8_lossy(&init.stderr).contains("refusing to overwrite"));
    Ok(())
}

#[test]
fn quickstart_puts_the_certificate_into_a_running_ssh_agent() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let agent = SshAgent::start(dir.path())?;
    let data = dir.path().join("qs");
    let listen = format!("127.0.0.1:{}", free_port());
    let out = quickstart(&data, &["--listen", &listen], Some(&agent.socket))?;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("in your ssh-agent"),
        "the identity line says where it went: {stdout}"
    );
    let listed = agent.list()?;
    assert!(
        listed.contains("role=quickstart") && listed.contains("ED25519-CERT"),
        "{listed}"
    );
    // No key file: the agent holds the only copy.
    assert!(!data.join("id_ed25519").exists());
    assert!(field(&stdout, "Session:").starts_with("s_"), "{stdout}");
    Ok(())
}

/// The README's command as a user types it: no --data-dir, so the
/// quickstart's default, relative to where it runs.
#[test]
fn quickstart_runs_the_loop_from_its_default_relative_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listen = format!("127.0.0.1:{}", free_port());
    let out = run(Command::new(binary("shiftkey-ca")?)
        .args(["quickstart", "--exit", "--listen", &listen])
        .current_dir(dir.path())
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null()))?;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Session: s_"), "{stdout}");
    assert!(
        dir.path()
            .join("shiftkey-quickstart/target/sshd_config")
            .exists()
    );
    Ok(())
}

#[test]
fn quickstart_without_sshd_runs_the_ca_part_and_says_how_to_fix_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("qs");
    let listen = format!("127.0.0.1:{}", free_port());
    let missing = dir.path().join("no-openssh-server/sshd");
    let missing = missing.to_string_lossy();
    let out = quickstart(&data, &["--listen", &listen, "--sshd", &missing], None)?;
    let (stdout, stderr) = texts(&out);
    // --exit succeeds only with a recorded session: none here.
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    // The CA part ran: a certificate issued and shown.
    assert!(stdout.contains("Issued certificate"), "{stdout}");
    assert!(
        stdout.contains("ssh-ed25519-cert-v01@openssh.com AAAA"),
        "{stdout}"
    );
    assert!(stdout.contains("audit verify --data-dir"), "{stdout}");
    // What is missing, and how to fix it.
    assert!(
        stderr.contains(&format!("there is no sshd at {missing}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install openssh-server"),
        "{stderr}"
    );
    assert!(stderr.contains("the CA part above did"), "{stderr}");
    assert!(!stdout.contains("Session:"), "{stdout}");
    // Nothing was started for the missing part.
    assert!(!data.join("target").exists());
    assert!(!data.join("bastion").exists());
    Ok(())
}

/// A child process killed when dropped (a failing test leaves nothing behind).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `file` holds `text`; the file's contents.
fn wait_for(file: &Path, text: &str, child: &mut Reaped) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = std::fs::read_to_string(file).unwrap_or_default();
        if now.contains(text) {
            return Ok(now);
        }
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("exited ({status}) before printing {text:?}:\n{now}");
        }
        anyhow::ensure!(Instant::now() < deadline, "no {text:?} in:\n{now}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_quickstarts_ssh_and_revoke_lines_work_as_printed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("qs");
    let listen = format!("127.0.0.1:{}", free_port());
    let out_file = dir.path().join("quickstart.out");
    let err_file = dir.path().join("quickstart.err");
    // Without --exit: it keeps serving until Ctrl-C.
    let mut quickstart = Reaped(
        Command::new(binary("shiftkey-ca")?)
            .args(["quickstart", "--listen", &listen, "--data-dir"])
            .arg(&data)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_file)?)
            .stderr(std::fs::File::create(&err_file)?)
            .spawn()?,
    );
    let stdout = wait_for(&out_file, "serve --data-dir", &mut quickstart)?;
    let printed = |needle: &str| -> anyhow::Result<String> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(needle))
            .with_context(|| format!("no {needle:?} line in:\n{stdout}"))?;
        // The command, without its comment; run from the build, not cargo.
        let command = line.split("   #").next().unwrap_or_default().trim();
        Ok(command.replace(
            "cargo run -p shiftkey-ca --",
            &binary("shiftkey-ca")?.display().to_string(),
        ))
    };
    let ssh_line = printed("ssh -F ")?;
    let revoke_line = printed("cargo run -p shiftkey-ca -- revoke --data-dir ")?;

    // The printed ssh line, a shell through the bastion (input from a pipe,
    // so no terminal), kept open.
    let ssh_out = dir.path().join("ssh.out");
    let mut ssh = Reaped(
        Command::new("sh")
            .arg("-c")
            .arg(format!("{ssh_line} -o BatchMode=yes"))
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&ssh_out)?)
            .stderr(std::fs::File::create(dir.path().join("ssh.err"))?)
            .spawn()?,
    );
    {
        use std::io::Write;
        let stdin = ssh.0.stdin.as_mut().context("ssh's stdin")?;
        stdin.write_all(b"echo session-is-$((1+1))-live\n")?;
        stdin.flush()?;
    }
    wait_for(&ssh_out, "session-is-2-live", &mut ssh)?;

    // The printed revocation ends it: the bastion follows the CA's events.
    let revoked = run(Command::new("sh").arg("-c").arg(&revoke_line))?;
    assert!(revoked.status.success(), "{:?}", texts(&revoked));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = ssh.0.try_wait()? {
            break status;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the session outlived its revocation:\n{}",
            std::fs::read_to_string(&err_file).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let ssh_err = std::fs::read_to_string(dir.path().join("ssh.err"))?;
    assert!(
        ssh_err.contains("session ended: your certificate was revoked"),
        "{ssh_err}"
    );

    // Ctrl-C stops everything, cleanly.
    run(Command::new("kill")
        .arg("-INT")
        .arg(quickstart.0.id().to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = quickstart.0.try_wait()? {
            break status;
        }
        anyhow::ensure!(Instant::now() < deadline, "quickstart ignored SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    Ok(())
}
