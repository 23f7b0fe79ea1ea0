//! CA key files: creating them once, loading them at start.
//!
//! Layout under the data directory: `keys/user_ca` and `keys/host_ca`
//! (OpenSSH private key format, mode 0600, optionally passphrase-encrypted),
//! with `.pub` files beside them. This module never overwrites a key file and
//! never writes a private key anywhere else.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ssh_key::getrandom::SysRng;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::secret::{CaKey, Secret};
use crate::signer::{self, CaSigner, KeyAlgorithm, KeyLocation, Pkcs11Options};

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

/// Which CA a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaKind {
    User,
    Host,
}

impl CaKind {
    fn file_name(self) -> &'static str {
        match self {
            CaKind::User => "user_ca",
            CaKind::Host => "host_ca",
        }
    }
}

pub(crate) fn key_path(data_dir: &Path, kind: CaKind) -> PathBuf {
    data_dir.join("keys").join(kind.file_name())
}

/// The CA's two signers: the one place every signature the CA makes comes
/// from. Built once at start ([`open_both`]) and passed down as application
/// state; never a static.
#[derive(Debug, Clone)]
pub(crate) struct CaKeys {
    pub(crate) user: CaSigner,
    pub(crate) host: CaSigner,
}

/// Where the two CA keys live (`[keys]` in ca.toml, `init --user-key`/
/// `--host-key`) and how token keys are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySettings {
    pub(crate) user: KeyLocation,
    pub(crate) host: KeyLocation,
    /// The algorithm of keys generated on a token (key files are ed25519).
    pub(crate) algorithm: KeyAlgorithm,
    /// Logged-in sessions per token key.
    pub(crate) pkcs11_sessions: std::num::NonZeroUsize,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            user: KeyLocation::File,
            host: KeyLocation::File,
            algorithm: KeyAlgorithm::Ed25519,
            pkcs11_sessions: crate::signer::DEFAULT_SESSIONS,
        }
    }
}

impl KeySettings {
    pub(crate) fn location(&self, kind: CaKind) -> &KeyLocation {
        match kind {
            CaKind::User => &self.user,
            CaKind::Host => &self.host,
        }
    }

    /// How token keys are used: the configured pool size, the PIN from the
    /// environment for URIs without `pin-source`.
    pub(crate) fn pkcs11_options(&self) -> Pkcs11Options {
        Pkcs11Options {
            sessions: self.pkcs11_sessions,
            ..Pkcs11Options::from_env()
        }
    }
}

/// Creates a new ed25519 CA key at its place under `data_dir`, refusing to
/// overwrite. Returns the public line.
pub(crate) fn create(
    data_dir: &Path,
    kind: CaKind,
    passphrase: Option<&Secret>,
) -> Result<String, Error> {
    let path = key_path(data_dir, kind);
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
    let path = key_path(data_dir, kind);
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

/// Opens both CA keys where `settings` say they are (key files are
/// decrypted with `passphrase`; token keys are found and logged into).
/// Creates nothing. Blocks on token calls: call it off the async workers.
pub(crate) fn open_both(
    data_dir: &Path,
    settings: &KeySettings,
    passphrase: Option<&Secret>,
) -> Result<CaKeys, signer::Error> {
    let options = settings.pkcs11_options();
    let open = |kind| {
        signer::open(
            data_dir,
            kind,
            settings.location(kind),
            passphrase,
            &options,
        )
    };
    Ok(CaKeys {
        user: open(CaKind::User)?,
        host: open(CaKind::Host)?,
    })
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
