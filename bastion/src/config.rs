//! `bastion.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The bastion's configuration file, checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Where users' ssh connects (`0.0.0.0:2222`).
    pub(crate) listen: SocketAddr,
    /// The CA's URL (`https://ca.example.com:8443`).
    pub(crate) ca_url: String,
    /// PEM file with the certificate(s) to trust for the CA's TLS; the
    /// system's roots when absent.
    #[serde(default)]
    pub(crate) ca_bundle: Option<PathBuf>,
    /// The bastion's state: its host key and its certificate from the CA.
    pub(crate) data_dir: PathBuf,
    /// Where recordings are written while sessions run (also shipped to the CA).
    #[serde(default)]
    pub(crate) recordings_dir: Option<PathBuf>,
    /// A join token from `shiftkey-ca hosts token --bastion`, read on the
    /// first start (or when the bastion's certificate has expired).
    #[serde(default)]
    pub(crate) enroll_token_file: Option<PathBuf>,
    /// Prometheus `/metrics` and `/healthz` (loopback by default).
    #[serde(default)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Fixed addresses for target names (`"db-1.prod.example.com" =
    /// "10.0.0.5:22"`); otherwise names are resolved by DNS.
    #[serde(default)]
    pub(crate) targets: std::collections::BTreeMap<String, String>,
}

impl Config {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the bastion configuration: {e}\nhint: see docs/install.md for an example bastion.toml",
                path.display()
            )
        })?;
        let config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if !config.ca_url.starts_with("https://") && !is_loopback_http(&config.ca_url) {
            anyhow::bail!(
                "{}: ca_url must be https:// (plain http only to 127.0.0.1 or localhost)",
                path.display()
            );
        }
        Ok(config)
    }

    pub(crate) fn recordings_dir(&self) -> PathBuf {
        self.recordings_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }
}

fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| url.starts_with(p))
}
