//! What enrollment remembers for `refresh` and `status`
//! (SSH_DIR/shiftkey/host.toml): the CA, how to trust it, how to check and
//! reload sshd, and when the KRL was last confirmed. No secret: the host's
//! credential is its host key, which sshd holds anyway.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Layout;
use crate::ca_client::{CaClient, Trust};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct State {
    /// The CA's API URL.
    pub(crate) ca: String,
    /// PEM bundle trusted for the CA's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_bundle: Option<PathBuf>,
    /// SHA-256 (hex) of the CA's TLS certificate, when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_fingerprint: Option<String>,
    /// The host's name in the CA, and `host` or `bastion`.
    pub(crate) name: String,
    pub(crate) kind: String,
    /// The host CA keys, for clients' `@cert-authority` lines.
    #[serde(default)]
    pub(crate) host_ca_keys: Vec<String>,
    pub(crate) sshd: PathBuf,
    pub(crate) sshd_config: PathBuf,
    /// SIGHUP this pid file's process instead of the default reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reload_pid_file: Option<PathBuf>,
    /// Unix seconds.
    pub(crate) enrolled_at: u64,
    /// When a KRL was last fetched and checked (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) krl_fetched_at: Option<u64>,
    /// When the host certificate was last renewed (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) renewed_at: Option<u64>,
}

impl State {
    pub(crate) fn load(layout: &Layout) -> anyhow::Result<Self> {
        let path = layout.state();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "this host is not enrolled: {} does not exist\nhint: shiftkey host enroll --ca URL --token TOKEN{}",
                path.display(),
                if layout.ssh_dir() == std::path::Path::new("/etc/ssh") {
                    String::new()
                } else {
                    format!(" --ssh-dir {}", layout.ssh_dir().display())
                }
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| {
            format!(
                "{} is damaged\nhint: enroll again with a new join token",
                path.display()
            )
        })
    }

    pub(crate) fn to_toml(&self) -> anyhow::Result<String> {
        Ok(format!(
            "# Written by `shiftkey host enroll`; read by `shiftkey host refresh`.\n{}",
            toml::to_string(self).context("encoding the host state")?
        ))
    }

    /// A client for the CA, trusting it as enrollment did.
    pub(crate) fn client(&self) -> anyhow::Result<CaClient> {
        let trust = Trust {
            bundle: self.ca_bundle.clone(),
            fingerprint: self.ca_fingerprint.clone(),
        };
        Ok(CaClient::new(&self.ca, &trust)?)
    }
}

/// `SHA256:AB:CD..`, `sha256 Fingerprint=AB:CD..` (openssl's output) or
/// plain hex: the hex the CA client pins.
pub(crate) fn normalize_fingerprint(text: &str) -> String {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    for prefix in ["sha256 fingerprint=", "sha256:"] {
        if lower.starts_with(prefix) {
            return text[prefix.len()..].trim().to_owned();
        }
    }
    text.to_owned()
}
