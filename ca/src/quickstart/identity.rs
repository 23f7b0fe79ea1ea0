//! Where the quickstart puts the certificate it got: into the invoking
//! user's ssh-agent (key and certificate, with a lifetime that ends with
//! the certificate) when `SSH_AUTH_SOCK` names one that takes it, else into
//! `DIR/id_ed25519` and `DIR/id_ed25519-cert.pub`, both 0600.
//!
//! The agent messages are those of `shiftkey access` (agent-helper's
//! `agent` module, OpenSSH `PROTOCOL.agent`): one `ADD_ID_CONSTRAINED` with
//! the certificate and a lifetime. The buffer holding the private key is
//! sized up front and zeroized.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ssh_key::encoding::{CheckedSum, Encode};
use ssh_key::{Certificate, LineEnding, PrivateKey};
use zeroize::Zeroizing;

use super::target::write_file;

const SSH_AGENT_SUCCESS: u8 = 6;
const SSH_AGENTC_ADD_ID_CONSTRAINED: u8 = 25;
const SSH_AGENT_CONSTRAIN_LIFETIME: u8 = 1;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the identity went.
#[derive(Debug)]
pub(super) enum Placed {
    /// In the agent at this socket.
    Agent(PathBuf),
    /// In these files (key, certificate); `why` says why not the agent.
    Files {
        key: PathBuf,
        certificate: PathBuf,
        why: String,
    },
}

/// Puts `key` and `cert` into the agent `auth_sock` names, or into files
/// under `dir`.
pub(super) fn place(
    auth_sock: Option<OsString>,
    dir: &Path,
    key: &PrivateKey,
    cert: &Certificate,
    lifetime: Duration,
) -> anyhow::Result<Placed> {
    let why = match auth_sock.filter(|s| !s.is_empty()) {
        None => "SSH_AUTH_SOCK is not set".to_owned(),
        Some(sock) => match add_to_agent(Path::new(&sock), key, cert, lifetime) {
            Ok(()) => return Ok(Placed::Agent(PathBuf::from(sock))),
            Err(e) => format!("the agent at SSH_AUTH_SOCK did not take it: {e:#}"),
        },
    };
    let key_path = dir.join("id_ed25519");
    let cert_path = dir.join("id_ed25519-cert.pub");
    write_file(&key_path, key.to_openssh(LineEnding::LF)?.as_bytes(), 0o600)?;
    write_file(
        &cert_path,
        format!("{}\n", cert.to_openssh()?).as_bytes(),
        0o600,
    )?;
    Ok(Placed::Files {
        key: key_path,
        certificate: cert_path,
        why,
    })
}

fn add_to_agent(
    socket: &Path,
    key: &PrivateKey,
    cert: &Certificate,
    lifetime: Duration,
) -> anyhow::Result<()> {
    let keypair = key.key_data().ed25519().context("not an ed25519 key")?;
    if cert.public_key() != key.public_key().key_data() {
        bail!("the certificate is for another key");
    }
    let seconds = u32::try_from(lifetime.as_secs().max(1)).unwrap_or(u32::MAX);
    let key_type = cert.algorithm().to_certificate_type();
    let comment = cert.key_id();
    let body_len = [
        1,
        key_type.encoded_len()?,
        cert.encoded_len_prefixed()?,
        keypair.encoded_len()?,
        comment.encoded_len()?,
        1,
        4,
    ]
    .checked_sum()?;
    let total = body_len + 4;
    // Sized exactly, so no write reallocates and leaves a copy of the key.
    let mut message = Zeroizing::new(Vec::with_capacity(total));
    let buf: &mut Vec<u8> = &mut message;
    u32::try_from(body_len)?.encode(buf)?;
    SSH_AGENTC_ADD_ID_CONSTRAINED.encode(buf)?;
    key_type.as_str().encode(buf)?;
    cert.encode_prefixed(buf)?;
    keypair.encode(buf)?;
    comment.encode(buf)?;
    SSH_AGENT_CONSTRAIN_LIFETIME.encode(buf)?;
    seconds.encode(buf)?;
    if message.len() != total {
        bail!("the agent message outgrew its buffer");
    }
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(&message)?;
    drop(message);
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix)?;
    let len = u32::from_be_bytes(prefix);
    if len == 0 || len > 1024 {
        bail!("the agent's answer is {len} bytes long");
    }
    let mut reply = vec![0u8; usize::try_from(len)?];
    stream.read_exact(&mut reply)?;
    match reply.first() {
        Some(&SSH_AGENT_SUCCESS) => Ok(()),
        Some(other) => bail!("the agent answered message type {other} (refused)"),
        None => bail!("the agent's answer is empty"),
    }
}
