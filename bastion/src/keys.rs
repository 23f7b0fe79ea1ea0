//! The bastion's host key: made on first start (0600), kept in data_dir.
//! It is the bastion's SSH host key and its identity towards the CA (which
//! certifies it for a short time); it opens nothing on any target.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{}: mode {:o} lets others read the bastion's host key; run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
        return PrivateKey::from_openssh(text.as_bytes())
            .with_context(|| format!("{}: not an OpenSSH private key", path.display()));
    }
    let key = PrivateKey::random(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        Algorithm::Ed25519,
    )?;
    let text = key.to_openssh(LineEnding::LF)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}: cannot create the host key", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created the bastion's host key");
    Ok(key)
}
