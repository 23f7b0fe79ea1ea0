//! The quickstart's target: the system's OpenSSH `sshd`, run as a child with
//! `-D -e -f CONFIG` on a loopback port, enrolled with the CA as a host
//! would be. Everything it reads is under `DIR/target/`; it never touches
//! /etc/ssh or the machine's own sshd.
//!
//! Enrollment is the real one: a one-time join token (the `hosts token`
//! power, audited), spent at `POST /v1/hosts/enroll` for a fresh host key,
//! whose answer gives the host certificate, the user CA keys
//! (`TrustedUserCAKeys`) and the principals each login accepts
//! (`AuthorizedPrincipalsFile`); the KRL comes from `GET /v1/krl`. It is
//! what `shiftkey host enroll` installs, written here without a drop-in,
//! rollback or reload, which a throwaway sshd does not need.
//!
//! Login: the invoking user. sshd runs as that user too, so a non-root run
//! logs in only as itself, which is all it needs; run as root, sshd logs in
//! root only with `PermitRootLogin prohibit-password` (keys and
//! certificates, never a password), written explicitly below. An sshd run
//! as another user cannot hand out terminals, so there it has
//! `PermitTTY no` and sessions run without a pty.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use shiftkey_wire::{EnrollRequest, HostCertificateResponse};

use super::local::Local;
use super::policy::TARGET;

/// How long sshd may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running target sshd; dropping it stops sshd.
#[derive(Debug)]
pub(super) struct Target {
    _child: tokio::process::Child,
    pub(super) port: u16,
    pub(super) dir: PathBuf,
    /// Sessions get a terminal (sshd runs as root).
    pub(super) pty: bool,
    pub(super) enrolled: HostCertificateResponse,
    pub(super) token_id: String,
}

/// Where `sshd` is, or why it cannot run, with the fix.
pub(super) fn check_sshd(sshd: &Path) -> Result<(), String> {
    if !sshd.is_absolute() {
        return Err(format!(
            "--sshd {}: sshd needs an absolute path (it re-executes itself)\nhint: pass --sshd /usr/sbin/sshd",
            sshd.display()
        ));
    }
    match std::fs::metadata(sshd) {
        Ok(m) if m.is_file() => Ok(()),
        _ => Err(format!(
            "there is no sshd at {}, so the quickstart cannot start its target host\nhint: apt-get install openssh-server (the quickstart runs it on loopback only, never as the machine's sshd), or pass --sshd PATH",
            sshd.display()
        )),
    }
}

/// Enrolls a fresh target under `dir` with a new join token and starts sshd
/// for `login` on `port`.
pub(super) async fn start(
    data_dir: &Path,
    local: Local<'_>,
    sshd: &Path,
    login: &str,
    port: u16,
) -> anyhow::Result<Target> {
    let dir = data_dir.join("target");
    // Throwaway: a fresh host key and enrollment on every run.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("{}: cannot clear the old target", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("principals"))?;
    let host_key = PrivateKey::random(&mut crate::keys::rng(), Algorithm::Ed25519)?;
    let key_path = dir.join("ssh_host_ed25519_key");
    write_file(
        &key_path,
        host_key.to_openssh(LineEnding::LF)?.as_bytes(),
        0o600,
    )?;
    let public = host_key.public_key().to_openssh()?;
    drop(host_key);
    write_file(&key_path.with_extension("pub"), public.as_bytes(), 0o644)?;

    let (token, token_id) = super::join_token(data_dir, TARGET, &[TARGET], false).await?;
    let enrolled: HostCertificateResponse = local
        .post(
            "/v1/hosts/enroll",
            &EnrollRequest {
                token: token.to_string(),
                host_key: public,
            },
        )
        .await
        .context("enrolling the target with its join token")?;
    drop(token);
    let certificate = dir.join("ssh_host_ed25519_key-cert.pub");
    write_file(
        &certificate,
        format!("{}\n", enrolled.certificate.trim()).as_bytes(),
        0o644,
    )?;
    let user_ca = dir.join("user_ca.pub");
    let mut keys = enrolled.user_ca_keys.join("\n");
    keys.push('\n');
    write_file(&user_ca, keys.as_bytes(), 0o644)?;
    let krl = dir.join("revoked.krl");
    let krl_bytes = local.bytes("GET", "/v1/krl", None).await?;
    write_file(&krl, &krl_bytes, 0o644)?;
    for (name, principals) in &enrolled.authorized_principals {
        // The CA checked the logins; a path separator would still be a bug.
        if name.contains('/') || name.starts_with('.') {
            bail!("the CA named a login {name:?} that cannot be a file name");
        }
        let mut text = principals.join("\n");
        text.push('\n');
        write_file(&dir.join("principals").join(name), text.as_bytes(), 0o644)?;
    }
    if !enrolled.authorized_principals.contains_key(login) {
        bail!(
            "the CA lists no principals for login {login} on {TARGET}\nhint: the policy's role `{}` must name {login} in `principals` and {TARGET} in `hosts`",
            super::policy::ROLE
        );
    }

    let root = nix::unistd::Uid::current().is_root();
    if root {
        // sshd's privilege separation directory, when run as root.
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
    }
    let config = dir.join("sshd_config");
    let d = dir.display();
    let mut text = format!(
        "# The quickstart's throwaway target, enrolled with the CA as {TARGET}.\n\
         Port {port}\nListenAddress 127.0.0.1\nPidFile none\nUsePAM no\nStrictModes no\n\
         HostKey {d}/ssh_host_ed25519_key\nHostCertificate {d}/ssh_host_ed25519_key-cert.pub\n\
         AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\nTrustedUserCAKeys {d}/user_ca.pub\nRevokedKeys {d}/revoked.krl\n\
         AuthorizedPrincipalsFile {d}/principals/%u\nLogLevel VERBOSE\n"
    );
    if root {
        text.push_str("PermitRootLogin prohibit-password\n");
    } else {
        // An sshd that is not root cannot give a terminal to the login (it
        // cannot chown the pty and fails the shell request): sessions run
        // without one, and the client says "PTY allocation request failed".
        text.push_str("PermitTTY no\n");
    }
    write_file(&config, text.as_bytes(), 0o644)?;
    let log_path = dir.join("sshd.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", sshd.display()))?;
    let listening = format!("Server listening on 127.0.0.1 port {port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains(&listening) {
            break;
        }
        if let Some(status) = child.try_wait()? {
            if log.contains("Address already in use") {
                bail!(
                    "port {port} on 127.0.0.1, the target's, is taken by another process\nhint: stop it, or set the role `{}`'s `ports` in the policy to a free port",
                    super::policy::ROLE
                );
            }
            bail!(
                "sshd exited ({status}) before listening; its log {}:\n{}",
                log_path.display(),
                log.trim_end()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "sshd did not listen within {START_TIMEOUT:?}; see {}",
                log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Target {
        _child: child,
        port,
        dir,
        pty: root,
        enrolled,
        token_id,
    })
}

/// Writes `contents` to `path` (replacing it) with `mode`.
pub(super) fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("{}: cannot create it", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("{}: cannot write it", path.display()))?;
    Ok(())
}
