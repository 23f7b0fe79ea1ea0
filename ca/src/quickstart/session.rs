//! One recorded session through the bastion, by plain OpenSSH `ssh` with an
//! ssh config written for the quickstart, and the CA's word that it was
//! recorded: the session sealed, and the typed line found by the search
//! index.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shiftkey_wire::{RecordingInfo, RecordingMatch};
use tokio::io::AsyncWriteExt;

use super::identity::Placed;
use super::local::Local;
use super::policy::{ROLE, TARGET};

/// What the quickstart types on the target: its output (`…-42`) differs
/// from the input, so seeing it proves the shell ran it.
pub(super) const TYPED: &str = "echo shiftkey-quickstart-$((6*7)) as $(id -un) on $(uname -n)";
/// What the search for the typed line asks for.
pub(super) const SEARCHED: &str = "echo shiftkey-quickstart";
/// The proof in the output.
const OUTPUT: &str = "shiftkey-quickstart-42";

/// How long the one session may take, end to end.
const SSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the CA may take to seal it after ssh returns.
const SEAL_TIMEOUT: Duration = Duration::from_secs(60);

/// `DIR/ssh_config` and `DIR/known_hosts`: the bastion as
/// `quickstart-bastion`, the target behind it, every host trusted only by
/// the CA's host keys (`@cert-authority`), the identity from the agent or
/// the files.
pub(super) fn write_config(
    dir: &Path,
    host_ca_keys: &str,
    bastion_port: u16,
    target_port: u16,
    login: &str,
    identity: &Placed,
) -> anyhow::Result<PathBuf> {
    let known = dir.join("known_hosts");
    let lines: String = host_ca_keys
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|key| format!("@cert-authority * {key}\n"))
        .collect();
    if lines.is_empty() {
        bail!("the CA published no host CA key at /v1/ca/host.pub");
    }
    super::target::write_file(&known, lines.as_bytes(), 0o644)?;
    let identity = match identity {
        Placed::Agent(_) => String::new(),
        Placed::Files {
            key, certificate, ..
        } => format!(
            "  IdentityFile {}\n  CertificateFile {}\n  IdentitiesOnly yes\n",
            key.display(),
            certificate.display()
        ),
    };
    let bastion = super::bastion::NAME;
    let config = dir.join("ssh_config");
    let text = format!(
        "# Written by `shiftkey-ca quickstart` on every run: ssh -F {path} {TARGET}\n\
         Host {TARGET}\n  Port {target_port}\n  ProxyJump {bastion}\n\n\
         Host {bastion}\n  HostName 127.0.0.1\n  Port {bastion_port}\n\n\
         Host {TARGET} {bastion}\n  User {login}\n{identity}  UserKnownHostsFile {known}\n\
         \x20 GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  ConnectTimeout 20\n",
        path = config.display(),
        known = known.display(),
    );
    super::target::write_file(&config, text.as_bytes(), 0o644)?;
    Ok(config)
}

/// What `ssh` printed.
#[derive(Debug)]
pub(super) struct Ran {
    /// The typed line's output, from where it starts (a terminal's control
    /// sequences before it cut off).
    pub(super) line: String,
}

/// `ssh -F CONFIG -tt quickstart-target` (`-T` when the target gives no
/// terminal) with the typed line and `exit` on its input, as someone at a
/// terminal would type them.
pub(super) async fn run_ssh(ssh: &Path, config: &Path, pty: bool) -> anyhow::Result<Ran> {
    let mut child = tokio::process::Command::new(ssh)
        .arg("-F")
        .arg(config)
        .arg(if pty { "-tt" } else { "-T" })
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", TARGET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", ssh.display()))?;
    let mut stdin = child.stdin.take().context("ssh's stdin")?;
    stdin
        .write_all(format!("{TYPED}\nexit\n").as_bytes())
        .await?;
    // stdin stays open until ssh is done: the shell's `exit` ends it.
    let out = tokio::time::timeout(SSH_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("ssh did not finish within {SSH_TIMEOUT:?}"))??;
    drop(stdin);
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = output
        .lines()
        .find_map(|l| l.find(OUTPUT).map(|i| l[i..].trim_end().to_owned()));
    let Some(line) = line.filter(|_| out.status.success()) else {
        bail!(
            "ssh through the bastion did not run the command ({}):\n{}{}",
            out.status,
            output.trim_end(),
            stderr.trim_end()
        );
    };
    Ok(Ran { line })
}

/// The session the CA recorded for certificate `serial`, once sealed, and
/// the search hit for the typed line in it; an error unless both.
pub(super) async fn recorded(
    local: Local<'_>,
    serial: u64,
    since: i64,
) -> anyhow::Result<(RecordingInfo, RecordingMatch)> {
    let deadline = Instant::now() + SEAL_TIMEOUT;
    let session = loop {
        let list: Vec<RecordingInfo> = local
            .get(&format!(
                "/v1/recordings?role={ROLE}&since={since}&limit=100"
            ))
            .await?;
        let mine = list.into_iter().find(|r| r.user_serial == serial);
        match mine {
            Some(r) if r.status != "live" && r.status != "ended" => break r,
            _ if Instant::now() > deadline => bail!(
                "the CA has no sealed recording for certificate {serial} after {SEAL_TIMEOUT:?}"
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    if session.status != "sealed" {
        bail!(
            "session {} ended {} at the CA, not sealed",
            session.session_id,
            session.status
        );
    }
    let query: String = url::form_urlencoded::byte_serialize(SEARCHED.as_bytes()).collect();
    let hits: Vec<RecordingMatch> = local
        .get(&format!("/v1/recordings/search?q={query}&limit=100"))
        .await?;
    let hit = hits
        .into_iter()
        .find(|h| h.session_id == session.session_id && h.source == "input")
        .with_context(|| {
            format!(
                "the CA's search finds no typed line {SEARCHED:?} in session {}",
                session.session_id
            )
        })?;
    Ok((session, hit))
}
