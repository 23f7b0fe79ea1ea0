//! Host enrollment end to end: `shiftkey host enroll` turns a fresh sshd
//! configuration into one that trusts only the CA (a real sshd and real
//! `ssh` show it), `shiftkey host refresh` (the timer's command) brings a
//! revocation to it and keeps the last good KRL when the CA is down, a
//! configuration sshd rejects is rolled back, and spent or expired join
//! tokens are refused and audited.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::sshd::Sshd;
use shiftkey_tests::util::{binary, ensure_login_user, krl_revokes, run, run_ok, ssh_keygen};

use crate::fixtures::{LOGIN_USER, policy};

/// The name the host is enrolled under, and the one name in its certificate:
/// the address ssh connects to (the policy's `shell` role covers it).
const HOST_NAME: &str = "e2e-host";
const HOST_PRINCIPAL: &str = "127.0.0.1";

/// A fresh host: an ed25519 host key and an sshd_config that, like
/// Debian's, includes `sshd_config.d/*.conf` first, and otherwise leaves
/// sshd's defaults (authorized_keys files and passwords allowed).
pub(super) struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    pub(super) fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("shiftkey-host-")
            .tempdir()?;
        ssh_keygen(dir.path(), "ssh_host_ed25519_key", &["-t", "ed25519"])?;
        std::fs::create_dir(dir.path().join("sshd_config.d"))?;
        let host = Host { dir };
        // A port for `sshd -t`; start_sshd picks a free one.
        std::fs::write(host.config(), host.main_config(2222))?;
        Ok(host)
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("sshd_config")
    }

    pub(super) fn pid_file(&self) -> PathBuf {
        self.path().join("sshd.pid")
    }

    fn krl(&self) -> PathBuf {
        self.path().join("shiftkey/revoked.krl")
    }

    /// The main config for `port`.
    fn main_config(&self, port: u16) -> String {
        let dir = self.path().display();
        format!(
            "Include {dir}/sshd_config.d/*.conf\n\
             Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/ssh_host_ed25519_key\n\
             PidFile {dir}/sshd.pid\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n"
        )
    }

    /// Starts sshd on this host's config.
    pub(super) fn start_sshd(&self) -> anyhow::Result<Sshd> {
        Sshd::start_with_config(self.path(), |port| self.main_config(port))
    }

    /// `shiftkey host ARGS --ssh-dir DIR` (as root, like the timer).
    pub(super) fn shiftkey(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(Command::new(binary("shiftkey")?)
            .arg("host")
            .args(args)
            .arg("--ssh-dir")
            .arg(self.path())
            .current_dir("/")
            .stdin(Stdio::null()))
    }

    /// `shiftkey host enroll` against `ca` with `token`, trusting the CA's
    /// TLS certificate by its bundle, plus `extra` flags.
    pub(super) fn enroll(
        &self,
        ca: &TestCa,
        token: &str,
        extra: &[&str],
    ) -> anyhow::Result<Output> {
        let url = ca.url("");
        let config = self.config().to_string_lossy().into_owned();
        let bundle = ca.data_dir().join("tls/cert.pem");
        let bundle = bundle.to_string_lossy();
        let mut args = vec![
            "enroll",
            "--ca",
            &url,
            "--token",
            token,
            "--sshd-config",
            &config,
        ];
        if !extra.contains(&"--ca-fingerprint") {
            args.extend(["--ca-bundle", &bundle]);
        }
        args.extend(extra);
        self.shiftkey(&args)
    }

    /// Every file under the host directory with its content and mode, but
    /// sshd's own log and pid file.
    fn snapshot(&self) -> anyhow::Result<BTreeMap<PathBuf, (Vec<u8>, u32)>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                    files.insert(entry.path(), (Vec::new(), meta.permissions().mode()));
                } else {
                    files.insert(
                        entry.path(),
                        (std::fs::read(entry.path())?, meta.permissions().mode()),
                    );
                }
            }
        }
        Ok(files)
    }
}

pub(super) fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `shiftkey-ca hosts token --name e2e-host --principals 127.0.0.1 --json`:
/// the token and its ID.
fn join_token(ca: &TestCa, ttl: &str) -> anyhow::Result<(String, String)> {
    join_token_for(ca, HOST_NAME, HOST_PRINCIPAL, ttl)
}

/// `shiftkey-ca hosts token --name NAME --principals PRINCIPALS --json`.
pub(super) fn join_token_for(
    ca: &TestCa,
    name: &str,
    principals: &str,
    ttl: &str,
) -> anyhow::Result<(String, String)> {
    let dir = ca.data_dir().to_string_lossy().into_owned();
    let out = run_ok(Command::new(binary("shiftkey-ca")?).args([
        "hosts",
        "token",
        "--data-dir",
        &dir,
        "--name",
        name,
        "--principals",
        principals,
        "--ttl",
        ttl,
        "--json",
    ]))?;
    let answer: Value = serde_json::from_str(out.trim()).context("hosts token --json")?;
    Ok((
        answer["token"].as_str().unwrap_or_default().to_owned(),
        answer["id"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// A key made by ssh-keygen and a user certificate for it from the CA
/// (role `shell`, login `sktest`, over the local socket).
pub(super) fn certified(
    ca: &TestCa,
    dir: &Path,
    name: &str,
) -> anyhow::Result<(PathBuf, PathBuf, u64)> {
    let key = ssh_keygen(dir, name, &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, answer) =
        ca.request_local(&json!({ "public_key": public.trim(), "role": "shell" }))?;
    assert_eq!(status, 200, "{answer}");
    let cert = dir.join(format!("{name}-cert.pub"));
    std::fs::write(
        &cert,
        format!("{}\n", answer["certificate"].as_str().unwrap_or_default()),
    )?;
    Ok((key, cert, answer["serial"].as_u64().unwrap_or(0)))
}

/// How ssh should decide whether to trust the host.
pub(super) enum HostTrust<'a> {
    /// Only this known_hosts file, strictly: no prompt, no TOFU.
    KnownHosts(&'a Path),
    /// Anything (to test what sshd accepts, not the host).
    Any,
}

/// `ssh -i KEY [-o CertificateFile=CERT] sktest@127.0.0.1 -p PORT COMMAND`:
/// no agent, no config, no other identity.
pub(super) fn ssh(
    sshd: &Sshd,
    key: &Path,
    cert: Option<&Path>,
    trust: HostTrust<'_>,
    command: &str,
) -> anyhow::Result<Output> {
    let mut cmd = Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
    ])
    .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
    .arg("-i")
    .arg(key);
    if let Some(cert) = cert {
        cmd.arg("-o")
            .arg(format!("CertificateFile={}", cert.display()));
    }
    match trust {
        HostTrust::KnownHosts(file) => {
            cmd.args(["-o", "StrictHostKeyChecking=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", file.display()))
                .args(["-o", "GlobalKnownHostsFile=/dev/null"]);
        }
        HostTrust::Any => {
            cmd.args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ]);
        }
    }
    run(cmd
        .arg("-p")
        .arg(sshd.port.to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null()))
}

/// Adds a line to the test user's ~/.ssh/authorized_keys; removes it again
/// when dropped.
struct AuthorizedKey {
    file: PathBuf,
    line: String,
}

impl AuthorizedKey {
    fn add(public: &str) -> anyhow::Result<Self> {
        let home = run_ok(
            Command::new("sh").args(["-c", &format!("getent passwd {LOGIN_USER} | cut -d: -f6")]),
        )?;
        let ssh_dir = PathBuf::from(home.trim()).join(".ssh");
        std::fs::create_dir_all(&ssh_dir)?;
        let file = ssh_dir.join("authorized_keys");
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        let line = public.trim().to_owned();
        text.push_str(&line);
        text.push('\n');
        std::fs::write(&file, text)?;
        Ok(Self { file, line })
    }
}

impl Drop for AuthorizedKey {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(&self.file) {
            let kept: String = text
                .lines()
                .filter(|l| *l != self.line)
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(&self.file, kept);
        }
    }
}

/// How many times sshd was told to reload (SIGHUP).
fn reloads(sshd: &Sshd) -> usize {
    sshd.log().matches("Received SIGHUP").count()
}

/// A plain-HTTP server on loopback that answers every request with 200 and
/// an HTML error page, as a misconfigured proxy would; returns its port.
/// It runs until the test process ends.
fn serve_garbage() -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 8192];
            let _ = stream.read(&mut request);
            let body = "<html><body>502 Bad Gateway</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(port)
}

/// The SHA-256 of the CA's TLS certificate (DER), as `SHA256:AB:CD:..`.
fn tls_fingerprint(ca: &TestCa) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(ca.data_dir().join("tls/cert.pem"))?;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body)?;
    let hex = hex::encode_upper(sha2::Sha256::digest(&der));
    let pairs: Vec<&str> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2))
        .collect();
    Ok(format!("SHA256:{}", pairs.join(":")))
}

#[test]
fn an_enrolled_host_takes_certificates_only_and_refresh_brings_revocations() -> anyhow::Result<()> {
    ensure_login_user(LOGIN_USER)?;
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    let work = tempfile::tempdir()?;
    let mut sshd = host.start_sshd()?;

    // Before: a fresh sshd takes a static key from authorized_keys.
    let static_key = ssh_keygen(work.path(), "static", &["-t", "ed25519"])?;
    let _authorized =
        AuthorizedKey::add(&std::fs::read_to_string(static_key.with_extension("pub"))?)?;
    let before = ssh(&sshd, &static_key, None, HostTrust::Any, "echo static")?;
    assert!(before.status.success(), "{}\n{}", text(&before), sshd.log());

    let (token, _) = join_token(&ca, "1h")?;
    let pid_file = host.pid_file().to_string_lossy().into_owned();
    let out = host.enroll(&ca, &token, &["--reload-pid-file", &pid_file])?;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("enrolled host {HOST_NAME}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("sent SIGHUP to sshd (pid {})", sshd.pid())),
        "{stdout}"
    );
    let drop_in = std::fs::read_to_string(host.path().join("sshd_config.d/50-shiftkey.conf"))?;
    for line in [
        "AuthorizedKeysFile none",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        &format!(
            "TrustedUserCAKeys {}/shiftkey/user_ca.pub",
            host.path().display()
        ),
        &format!("RevokedKeys {}", host.krl().display()),
        &format!(
            "AuthorizedPrincipalsFile {}/shiftkey/principals/%u",
            host.path().display()
        ),
        &format!(
            "HostCertificate {}/ssh_host_ed25519_key-cert.pub",
            host.path().display()
        ),
    ] {
        assert!(drop_in.lines().any(|l| l == line), "{line} in\n{drop_in}");
    }
    for file in [
        "ssh_host_ed25519_key-cert.pub",
        "shiftkey/user_ca.pub",
        "shiftkey/revoked.krl",
        "shiftkey/host.toml",
        "sshd_config.d/50-shiftkey.conf",
    ] {
        let mode = std::fs::metadata(host.path().join(file))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{file}");
    }
    assert_eq!(
        std::fs::read_to_string(
            host.path()
                .join(format!("shiftkey/principals/{LOGIN_USER}"))
        )?,
        format!("{LOGIN_USER}@shell\n"),
        "the login, for the roles whose hosts match this host"
    );
    let user_ca = ca.client().get(ca.url("/v1/ca/user.pub")).send()?.text()?;
    assert_eq!(
        std::fs::read_to_string(host.path().join("shiftkey/user_ca.pub"))?,
        user_ca
    );
    // sshd restarted on the SIGHUP and listens again, with the drop-in.
    assert!(sshd.wait_listening(2)?, "{}", sshd.log());
    assert_eq!(reloads(&sshd), 1, "{}", sshd.log());

    // A CA certificate logs in, and ssh trusts the host by the host CA
    // alone: known_hosts holds nothing but the @cert-authority line.
    let host_ca = ca.client().get(ca.url("/v1/ca/host.pub")).send()?.text()?;
    let known_hosts = work.path().join("known_hosts");
    let cert_authority = format!("@cert-authority [127.0.0.1]:* {}\n", host_ca.trim());
    std::fs::write(&known_hosts, &cert_authority)?;
    let (key, cert, serial) = certified(&ca, work.path(), "alice")?;
    let login = ssh(
        &sshd,
        &key,
        Some(&cert),
        HostTrust::KnownHosts(&known_hosts),
        "echo in",
    )?;
    assert!(login.status.success(), "{}\n{}", text(&login), sshd.log());
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "in");
    assert_eq!(
        std::fs::read_to_string(&known_hosts)?,
        cert_authority,
        "nothing was learned on first use"
    );
    assert!(
        sshd.log()
            .contains(&format!("Accepted publickey for {LOGIN_USER}")),
        "{}",
        sshd.log()
    );
    // The same ssh with another host CA in known_hosts refuses the host.
    let other_ca = ssh_keygen(work.path(), "other-ca", &["-t", "ed25519"])?;
    let wrong = work.path().join("known_hosts_wrong");
    std::fs::write(
        &wrong,
        format!(
            "@cert-authority [127.0.0.1]:* {}",
            std::fs::read_to_string(other_ca.with_extension("pub"))?
        ),
    )?;
    let refused_host = ssh(
        &sshd,
        &key,
        Some(&cert),
        HostTrust::KnownHosts(&wrong),
        "true",
    )?;
    assert!(!refused_host.status.success(), "{}", text(&refused_host));
    assert!(
        String::from_utf8_lossy(&refused_host.stderr).contains("Host key verification failed"),
        "{}",
        text(&refused_host)
    );

    // The static key that got in before does not now: AuthorizedKeysFile none.
    let refused = ssh(
        &sshd,
        &static_key,
        None,
        HostTrust::KnownHosts(&known_hosts),
        "echo static",
    )?;
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Permission denied"),
        "{}",
        text(&refused)
    );

    let status = host.shiftkey(&["status", "--json"])?;
    assert!(status.status.success(), "{}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(status["name"], HOST_NAME);
    assert_eq!(status["certificate"]["principals"], json!([HOST_PRINCIPAL]));
    assert_eq!(status["certificate"]["renewal_due"], false);
    assert!(
        status["certificate"]["seconds_left"].as_u64().unwrap_or(0) > 6 * 24 * 3600,
        "{status}"
    );
    assert!(status["krl"]["age_seconds"].as_u64().is_some(), "{status}");

    // Nothing changed at the CA: refresh changes nothing, reloads nothing.
    let quiet = host.shiftkey(&["refresh"])?;
    assert!(quiet.status.success(), "{}", text(&quiet));
    assert!(
        String::from_utf8_lossy(&quiet.stderr).contains("nothing changed"),
        "{}",
        text(&quiet)
    );
    assert_eq!(reloads(&sshd), 1, "{}", sshd.log());

    // Revoke the certificate; the timer's command brings the KRL, and sshd
    // (reloaded through the pid file saved at enrollment) refuses it.
    let dir = ca.data_dir().to_string_lossy().into_owned();
    run_ok(Command::new(binary("shiftkey-ca")?).args([
        "revoke",
        "--data-dir",
        &dir,
        "--serial",
        &serial.to_string(),
        "--reason",
        "laptop stolen",
    ]))?;
    assert!(!krl_revokes(&host.krl(), &cert)?, "not yet on the host");
    let refreshed = host.shiftkey(&["refresh"])?;
    assert!(refreshed.status.success(), "{}", text(&refreshed));
    assert!(
        String::from_utf8_lossy(&refreshed.stderr).contains("installed KRL version"),
        "{}",
        text(&refreshed)
    );
    assert!(
        krl_revokes(&host.krl(), &cert)?,
        "the host's KRL revokes it"
    );
    assert!(sshd.wait_listening(3)?, "{}", sshd.log());
    assert_eq!(reloads(&sshd), 2, "{}", sshd.log());
    let revoked = ssh(
        &sshd,
        &key,
        Some(&cert),
        HostTrust::KnownHosts(&known_hosts),
        "true",
    )?;
    assert!(!revoked.status.success(), "{}", text(&revoked));
    assert!(
        sshd.log().contains("revoked"),
        "sshd says why: {}",
        sshd.log()
    );
    // A certificate that is not revoked still gets in.
    let (key_b, cert_b, _) = certified(&ca, work.path(), "bob")?;
    let other = ssh(
        &sshd,
        &key_b,
        Some(&cert_b),
        HostTrust::KnownHosts(&known_hosts),
        "echo in",
    )?;
    assert!(other.status.success(), "{}\n{}", text(&other), sshd.log());
    Ok(())
}

#[test]
fn spent_expired_and_unknown_join_tokens_are_refused_and_audited() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let first = Host::new()?;
    let (token, id) = join_token(&ca, "1h")?;
    let out = first.enroll(&ca, &token, &["--no-reload"])?;
    assert!(out.status.success(), "{}", text(&out));
    let enrolled = ca.last_audit("host.enrolled")?;
    assert_eq!(enrolled["detail"]["token"], id.as_str(), "{enrolled}");

    // The same token on another host.
    let second = Host::new()?;
    let before = second.snapshot()?;
    let out = second.enroll(&ca, &token, &["--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("(token-used)"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    let row = ca.last_audit("host.enroll_refused")?;
    assert_eq!(row["detail"]["error"], "token-used", "{row}");
    assert_eq!(row["detail"]["token"], id.as_str(), "{row}");
    assert_eq!(second.snapshot()?, before, "a refused host is not touched");

    // A token past its --ttl.
    let (expired, expired_id) = join_token(&ca, "1s")?;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = second.enroll(&ca, &expired, &["--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("(token-expired)"), "{stderr}");
    let row = ca.last_audit("host.enroll_refused")?;
    assert_eq!(row["detail"]["error"], "token-expired", "{row}");
    assert_eq!(row["detail"]["token"], expired_id.as_str(), "{row}");

    // A token the CA never made.
    let out = second.enroll(&ca, "skjt1.jt_000000000000.00", &["--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(token-unknown)"),
        "{}",
        text(&out)
    );
    assert_eq!(
        ca.last_audit("host.enroll_refused")?["detail"]["error"],
        "token-unknown"
    );
    assert_eq!(second.snapshot()?, before, "still untouched");
    Ok(())
}

#[test]
fn a_configuration_sshd_rejects_is_rolled_back() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    // The Include sits inside a Match block, where HostCertificate is not
    // allowed: sshd -t accepts the config as it is, and rejects it once the
    // drop-in is written.
    std::fs::write(
        host.config(),
        format!(
            "HostKey {}/ssh_host_ed25519_key\nUsePAM no\nMatch User nobody\n  Include {}/sshd_config.d/*.conf\n",
            host.path().display(),
            host.path().display()
        ),
    )?;
    // An earlier enrollment's files, which must survive as they are.
    std::fs::create_dir_all(host.path().join("shiftkey/principals"))?;
    for (file, content, mode) in [
        (
            "ssh_host_ed25519_key-cert.pub",
            "an old certificate\n",
            0o644,
        ),
        ("shiftkey/user_ca.pub", "an old user CA\n", 0o600),
        ("shiftkey/principals/olduser", "olduser\n", 0o644),
        (
            "sshd_config.d/50-shiftkey.conf",
            "PasswordAuthentication no\n",
            0o644,
        ),
    ] {
        let path = host.path().join(file);
        std::fs::write(&path, content)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    let before = host.snapshot()?;
    let (token, _) = join_token(&ca, "1h")?;
    let out = host.enroll(&ca, &token, &["--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("Directive 'HostCertificate' is not allowed within a Match block"),
        "sshd's own words: {stderr}"
    );
    assert!(stderr.contains("put back as it was"), "{stderr}");
    assert!(stderr.contains("join token is spent"), "{stderr}");
    assert_eq!(host.snapshot()?, before, "every file as it was");
    Ok(())
}

#[test]
fn a_main_config_without_the_include_is_refused_before_the_token_is_used() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    std::fs::write(
        host.config(),
        format!(
            "HostKey {}/ssh_host_ed25519_key\nUsePAM no\n",
            host.path().display()
        ),
    )?;
    let before = host.snapshot()?;
    let (token, _) = join_token(&ca, "1h")?;
    let out = host.enroll(&ca, &token, &["--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("does not Include"), "{stderr}");
    assert!(stderr.contains("hint: add `Include"), "{stderr}");
    assert_eq!(host.snapshot()?, before);
    // The token is still good.
    std::fs::write(host.config(), host.main_config(2222))?;
    let out = host.enroll(&ca, &token, &["--no-reload"])?;
    assert!(out.status.success(), "{}", text(&out));
    Ok(())
}

#[test]
fn refresh_renews_by_signed_request_and_keeps_the_krl_when_the_ca_is_down_or_garbled()
-> anyhow::Result<()> {
    let mut ca = TestCa::init(&policy().0, None)?.start()?;
    let host = Host::new()?;
    let (token, _) = join_token(&ca, "1h")?;
    // Trust by the pinned TLS fingerprint this time; refresh reuses it.
    let fingerprint = tls_fingerprint(&ca)?;
    let out = host.enroll(
        &ca,
        &token,
        &["--no-reload", "--ca-fingerprint", &fingerprint],
    )?;
    assert!(out.status.success(), "{}", text(&out));
    let cert_path = host.path().join("ssh_host_ed25519_key-cert.pub");
    let first = std::fs::read_to_string(&cert_path)?;

    // `--renew`: the host signs the request with its host key and current
    // certificate; the CA answers with a new certificate for the same key.
    let out = host.shiftkey(&["refresh", "--renew", "--no-reload"])?;
    assert!(out.status.success(), "{}", text(&out));
    let renewed = std::fs::read_to_string(&cert_path)?;
    assert_ne!(renewed, first);
    let row = ca.last_audit("host.renewed")?;
    assert_eq!(row["actor"], format!("host:{HOST_NAME}"), "{row}");
    let status: Value = serde_json::from_slice(&host.shiftkey(&["status", "--json"])?.stdout)?;
    assert_eq!(status["certificate"]["serial"], row["detail"]["serial"]);
    let keygen = run_ok(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&cert_path),
    )?;
    assert!(keygen.contains("host certificate"), "{keygen}");

    // The CA goes away: refresh fails loudly, and the KRL stays as it was.
    let krl = std::fs::read(host.krl())?;
    assert!(krl.starts_with(b"SSHKRL\n\0"));
    let before = host.snapshot()?;
    ca.stop()?;
    let out = host.shiftkey(&["refresh", "--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("cannot fetch the KRL"), "{stderr}");
    assert!(stderr.contains("is kept, never emptied"), "{stderr}");
    assert!(stderr.contains("cannot reach the CA"), "{stderr}");
    assert_eq!(std::fs::read(host.krl())?, krl);
    let mut after = host.snapshot()?;
    // Only the state file may change (it was not: nothing succeeded).
    after.remove(&host.path().join("shiftkey/host.toml"));
    let mut expected = before;
    expected.remove(&host.path().join("shiftkey/host.toml"));
    assert_eq!(after, expected);

    // A CA (or a proxy in front of it) that answers with an error page:
    // neither it nor the "user CA keys" beside it replace what is installed.
    let garbage = serve_garbage()?;
    let state_file = host.path().join("shiftkey/host.toml");
    let state = std::fs::read_to_string(&state_file)?;
    let state: String = state
        .lines()
        .map(|l| {
            if l.starts_with("ca = ") {
                format!("ca = \"http://127.0.0.1:{garbage}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&state_file, state)?;
    let user_ca = std::fs::read(host.path().join("shiftkey/user_ca.pub"))?;
    let out = host.shiftkey(&["refresh", "--no-reload"])?;
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("does not start with the KRL magic"),
        "{stderr}"
    );
    assert!(stderr.contains("is kept, never emptied"), "{stderr}");
    assert!(
        stderr.contains("the installed user CA keys are kept"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(host.krl())?, krl);
    assert_eq!(
        std::fs::read(host.path().join("shiftkey/user_ca.pub"))?,
        user_ca
    );

    // status still reads the installed files.
    let status = host.shiftkey(&["status"])?;
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("KRL          version"),
        "{}",
        text(&status)
    );
    Ok(())
}
