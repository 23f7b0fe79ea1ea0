//! Where the quickstart puts the certificate it got: into the invoking
//! user's ssh-agent (key and certificate, with a lifetime that ends with
//! the certificate) when `SSH_AUTH_SOCK` names one that takes it, else into
//! `DIR/id_ed25519` and `DIR/id_ed25519-cert.pub`, both 0600.
//!
//! The agent client is the one `shiftkey access` uses (`shiftkey-ssh-agent`):
//! one `ADD_ID_CONSTRAINED` with the certificate and a lifetime, the buffer
//! holding the private key sized up front and zeroized.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shiftkey_ssh_agent::Agent;
use ssh_key::{Certificate, LineEnding, PrivateKey};

use super::target::write_file;

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
        Some(sock) => match Agent::connect(Path::new(&sock))
            .and_then(|mut agent| agent.add_certificate(key, cert, lifetime, cert.key_id()))
        {
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
