//! The key-file signer's keys: CA keys as files under the data directory,
//! created once and loaded at start.
//!
//! Layout under the data directory: `keys/user_ca` and `keys/host_ca`
//! (OpenSSH private key format, mode 0600, optionally passphrase-encrypted),
//! with `.pub` files beside them; keys made by `shiftkey-ca keys rotate` sit
//! beside them under their own names (`keys/user_ca-2`). This module never
//! overwrites a key file and never writes a private key anywhere else.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ssh_key::getrandom::SysRng;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use super::CaKind;
use crate::secret::{CaKey, Secret};

/// The operating system's CSPRNG, as the ssh-key crate wants it.
pub(crate) fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "{path}: key file already exists; refusing to overwrite a CA key (move it away first if you really mean to replace it)"
    )]
    Exists { path: PathBuf },
    #[error("{path}: cannot read the CA key: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write the CA key: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an OpenSSH private key: {source}")]
    Parse {
        path: PathBuf,
        source: ssh_key::Error,
    },
    #[error("{path}: the key is encrypted; set {var} to its passphrase", var = crate::env_vars::CA_PASSPHRASE)]
    PassphraseNeeded { path: PathBuf },
    #[error("{path}: wrong passphrase for the CA key")]
    WrongPassphrase { path: PathBuf },
    #[error("{path}: CA keys must be ed25519, found {algorithm}")]
    NotEd25519 { path: PathBuf, algorithm: String },
    #[error("{path}: mode {mode:o} lets other users read the CA key; run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("cannot generate or encode a key: {0}")]
    Crypto(#[from] ssh_key::Error),
}

pub(crate) fn key_path(data_dir: &Path, kind: CaKind) -> PathBuf {
    named_path(data_dir, kind.file_name())
}

/// `keys/NAME` under `data_dir`: a key file `keys rotate` made.
pub(crate) fn named_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("keys").join(name)
}

/// Creates a new ed25519 CA key at its place under `data_dir`, refusing to
/// overwrite. Returns the public line.
pub(crate) fn create(
    data_dir: &Path,
    kind: CaKind,
    passphrase: Option<&Secret>,
) -> Result<String, Error> {
    create_named(data_dir, kind, kind.file_name(), passphrase)
}

/// Creates a new ed25519 CA key of `kind` at `keys/NAME` under `data_dir`
/// (`keys rotate`), refusing to overwrite. Returns the public line.
pub(crate) fn create_named(
    data_dir: &Path,
    kind: CaKind,
    name: &str,
    passphrase: Option<&Secret>,
) -> Result<String, Error> {
    let path = named_path(data_dir, name);
    let dir = data_dir.join("keys");
    fs::create_dir_all(&dir).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    set_mode(&dir, 0o700).map_err(|source| Error::Write {
        path: dir.clone(),
        source,
    })?;
    if path.exists() {
        return Err(Error::Exists { path });
    }
    let mut key = PrivateKey::random(&mut rng(), Algorithm::Ed25519)?;
    key.set_comment(format!(
        "shiftkey {} CA",
        match kind {
            CaKind::User => "user",
            CaKind::Host => "host",
        }
    ));
    let stored = match passphrase {
        Some(p) => key.encrypt(&mut rng(), p.expose())?,
        None => key.clone(),
    };
    let pem = stored.to_openssh(LineEnding::LF)?;
    write_new(&path, pem.as_bytes(), 0o600)?;
    let public = key.public_key().to_openssh()?;
    write_new(
        &path.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )?;
    Ok(public)
}

/// Loads and decrypts one CA key. Refuses group- or world-readable files.
pub(crate) fn load(
    data_dir: &Path,
    kind: CaKind,
    passphrase: Option<&Secret>,
) -> Result<CaKey, Error> {
    load_named(data_dir, kind.file_name(), passphrase)
}

/// Loads and decrypts the CA key at `keys/NAME` under `data_dir`.
pub(crate) fn load_named(
    data_dir: &Path,
    name: &str,
    passphrase: Option<&Secret>,
) -> Result<CaKey, Error> {
    let path = named_path(data_dir, name);
    let meta = fs::metadata(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions { path, mode });
    }
    let pem = zeroize::Zeroizing::new(fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?);
    let key = PrivateKey::from_openssh(pem.as_bytes()).map_err(|source| Error::Parse {
        path: path.clone(),
        source,
    })?;
    let key = if key.is_encrypted() {
        let Some(p) = passphrase else {
            return Err(Error::PassphraseNeeded { path });
        };
        key.decrypt(p.expose())
            .map_err(|_| Error::WrongPassphrase { path: path.clone() })?
    } else {
        key
    };
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(Error::NotEd25519 {
            path,
            algorithm: key.algorithm().to_string(),
        });
    }
    Ok(CaKey::new(key)?)
}

/// Writes a file that must not exist yet, with `mode` from the first byte on.
pub(crate) fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Exists {
                path: path.to_owned(),
            },
            _ => Error::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_to_overwrite_and_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let public = create(dir.path(), CaKind::User, None).unwrap();
        assert!(public.starts_with("ssh-ed25519 "));
        assert!(matches!(
            create(dir.path(), CaKind::User, None),
            Err(Error::Exists { .. })
        ));
        let key = load(dir.path(), CaKind::User, None).unwrap();
        let mut loaded = key.public_key().clone();
        loaded.set_comment("");
        assert!(public.starts_with(&loaded.to_openssh().unwrap()));
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let pass = Secret::new("correct horse".into());
        create(dir.path(), CaKind::Host, Some(&pass)).unwrap();
        assert!(matches!(
            load(dir.path(), CaKind::Host, None),
            Err(Error::PassphraseNeeded { .. })
        ));
        let wrong = Secret::new("wrong".into());
        assert!(matches!(
            load(dir.path(), CaKind::Host, Some(&wrong)),
            Err(Error::WrongPassphrase { .. })
        ));
        load(dir.path(), CaKind::Host, Some(&pass)).unwrap();
    }

    #[test]
    fn readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), CaKind::User, None).unwrap();
        set_mode(&key_path(dir.path(), CaKind::User), 0o644).unwrap();
        assert!(matches!(
            load(dir.path(), CaKind::User, None),
            Err(Error::Permissions { .. })
        ));
    }
}
