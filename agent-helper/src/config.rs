//! `~/.config/shiftkey/config.toml`: which CA to talk to and how to trust it.
//!
//! Written by `shiftkey login --ca URL` from what the CA serves at
//! `/v1/config`; flags override it per command.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env_vars;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{path}: cannot read the config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}\nhint: fix it, or run `shiftkey login --ca URL` to write a new one")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: cannot write the config: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no home directory: set HOME or {}", env_vars::CONFIG)]
    NoHome,
}

/// The client's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// `https://ca.example.com:8443`, or `unix:/var/lib/shiftkey/ca.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<String>,
    /// PEM bundle to trust for the CA's TLS certificate (instead of the
    /// system's web roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// SHA-256 of the CA's TLS certificate (hex, `:` optional): trust that
    /// certificate and no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_fingerprint: Option<String>,
    /// OIDC issuer and client ID, from the CA's `/v1/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    /// The user CA keys, from the CA's `/v1/config`: how `status` tells our
    /// certificates from others in the agent without asking the CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) user_ca_keys: Vec<String>,
}

/// Where the config lives: `$SHIFTKEY_CONFIG`, else
/// `$XDG_CONFIG_HOME/shiftkey/config.toml`, else `~/.config/shiftkey/config.toml`.
pub(crate) fn default_path() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os(env_vars::CONFIG) {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os(env_vars::XDG_CONFIG_HOME).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("shiftkey/config.toml"));
    }
    let home = std::env::var_os(env_vars::HOME)
        .filter(|h| !h.is_empty())
        .ok_or(Error::NoHome)?;
    Ok(PathBuf::from(home).join(".config/shiftkey/config.toml"))
}

impl Config {
    /// Reads the config; a missing file is an empty config.
    pub(crate) fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| Error::Invalid {
                path: path.to_owned(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the config (0600: it is not secret, but it says whom to trust).
    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        let write = |source| Error::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let text = toml::to_string(self).map_err(|e| Error::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(
            &tmp,
            format!("# Written by `shiftkey login`; see docs/client.md.\n{text}"),
        )
        .map_err(write)?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        assert_eq!(Config::load(&path).unwrap(), Config::default());
        let config = Config {
            ca: Some("https://ca.example.com:8443".into()),
            ca_fingerprint: Some("ab:cd".into()),
            issuer: Some("https://login.example.com".into()),
            client_id: Some("shiftkey".into()),
            user_ca_keys: vec!["ssh-ed25519 AAAA".into()],
            ..Config::default()
        };
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        std::fs::write(&path, "ca = \"x\"\nsurprise = 1\n").unwrap();
        assert!(matches!(Config::load(&path), Err(Error::Invalid { .. })));
    }
}
