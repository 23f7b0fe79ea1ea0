//! `bastion.toml`: the raw file (`deny_unknown_fields`) becomes the checked
//! [`Config`], with target names canonical, limits in range and the env
//! allow-list compiled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::target::Targets;

/// Recording file names carry the channel number in at most four digits
/// (`9999.cast.gz`), which the CA checks: a connection's channels over its
/// whole life stay below this. One constant for both, so they agree.
pub(crate) const MAX_CHANNEL_NUMBER: u32 = shiftkey_wire::MAX_CHANNEL_NUMBER;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: SocketAddr,
    ca_url: String,
    #[serde(default)]
    ca_bundle: Option<PathBuf>,
    data_dir: PathBuf,
    #[serde(default)]
    recordings_dir: Option<PathBuf>,
    #[serde(default)]
    enroll_token_file: Option<PathBuf>,
    #[serde(default)]
    metrics_listen: Option<SocketAddr>,
    #[serde(default)]
    accept_env: Option<Vec<String>>,
    #[serde(default)]
    heartbeat_interval: Option<String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    targets: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_sessions: Option<u32>,
    max_channels_per_connection: Option<u32>,
    max_channels_per_source: Option<u32>,
    max_startups_per_source: Option<u32>,
    login_grace_time: Option<String>,
    max_recording_size: Option<String>,
}

/// The bastion's configuration, checked.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where users' ssh connects (`0.0.0.0:2222`).
    pub(crate) listen: SocketAddr,
    /// The CA's URL (`https://ca.example.com:8443`).
    pub(crate) ca_url: String,
    /// PEM file with the certificate(s) to trust for the CA's TLS; the
    /// system's roots when absent.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// The bastion's state: its host key and its certificate from the CA.
    pub(crate) data_dir: PathBuf,
    /// Where recordings are written while sessions run (also shipped to the CA).
    pub(crate) recordings_dir: PathBuf,
    /// A join token from `shiftkey-ca hosts token --bastion`, read on the
    /// first start (or when the bastion's certificate has expired).
    pub(crate) enroll_token_file: Option<PathBuf>,
    /// Prometheus `/metrics` and `/healthz` (loopback by default).
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Environment variables passed to targets; the rest are refused.
    pub(crate) accept_env: AcceptEnv,
    pub(crate) limits: Limits,
    /// How often the live sessions are named to the CA (keep it under half
    /// the CA's `[recordings] lost_after`).
    pub(crate) heartbeat_interval: Duration,
    /// Fixed addresses for target names; otherwise names are resolved by DNS.
    pub(crate) targets: Targets,
}

/// What one client may hold (OpenSSH's MaxSessions, MaxStartups and
/// LoginGraceTime, and what the recordings need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Session channels open at once on one connection.
    pub(crate) max_sessions: u32,
    /// Channels (session and forwarded) over one connection's whole life;
    /// at most [`MAX_CHANNEL_NUMBER`].
    pub(crate) max_channels_per_connection: u32,
    /// Channels open at once from one client address, all connections.
    pub(crate) max_channels_per_source: u32,
    /// Connections not yet authenticated from one client address.
    pub(crate) max_startups_per_source: u32,
    /// A connection not authenticated by then is dropped.
    pub(crate) login_grace_time: Duration,
    /// Bytes one session's recording files may take on disk; reaching it
    /// ends the session.
    pub(crate) max_recording_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sessions: 10,
            max_channels_per_connection: 1000,
            max_channels_per_source: 1024,
            max_startups_per_source: 10,
            login_grace_time: Duration::from_secs(60),
            max_recording_size: 16 * 1024 * 1024 * 1024,
        }
    }
}

impl Config {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the bastion configuration: {e}\nhint: see docs/install.md for an example bastion.toml",
                path.display()
            )
        })?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let raw: RawConfig = toml::from_str(text)?;
        if !raw.ca_url.starts_with("https://") && !is_loopback_http(&raw.ca_url) {
            anyhow::bail!("ca_url must be https:// (plain http only to 127.0.0.1 or localhost)");
        }
        let defaults = Limits::default();
        let l = raw.limits;
        let limits = Limits {
            max_sessions: positive("max_sessions", l.max_sessions, defaults.max_sessions)?,
            max_channels_per_connection: positive(
                "max_channels_per_connection",
                l.max_channels_per_connection,
                defaults.max_channels_per_connection,
            )?,
            max_channels_per_source: positive(
                "max_channels_per_source",
                l.max_channels_per_source,
                defaults.max_channels_per_source,
            )?,
            max_startups_per_source: positive(
                "max_startups_per_source",
                l.max_startups_per_source,
                defaults.max_startups_per_source,
            )?,
            login_grace_time: match l.login_grace_time {
                Some(t) => humantime::parse_duration(&t)
                    .map_err(|e| anyhow::anyhow!("[limits] login_grace_time {t:?}: {e}"))?,
                None => defaults.login_grace_time,
            },
            max_recording_size: match l.max_recording_size {
                Some(s) => parse_size(&s).ok_or_else(|| {
                    anyhow::anyhow!(
                        "[limits] max_recording_size {s:?}: a size such as \"16GiB\", \"512MiB\" or a number of bytes"
                    )
                })?,
                None => defaults.max_recording_size,
            },
        };
        if limits.max_channels_per_connection > MAX_CHANNEL_NUMBER {
            anyhow::bail!(
                "[limits] max_channels_per_connection is at most {MAX_CHANNEL_NUMBER}: recording file names carry the channel number in four digits"
            );
        }
        if limits.login_grace_time.is_zero() {
            anyhow::bail!("[limits] login_grace_time must be more than 0s");
        }
        let heartbeat_interval = match &raw.heartbeat_interval {
            Some(t) => humantime::parse_duration(t)
                .ok()
                .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(60)).contains(d))
                .ok_or_else(|| {
                    anyhow::anyhow!("heartbeat_interval {t:?}: a duration from 1s to 60s")
                })?,
            None => crate::heartbeat::DEFAULT_INTERVAL,
        };
        let accept_env = AcceptEnv::new(
            raw.accept_env
                .unwrap_or_else(|| vec!["LANG".into(), "LC_*".into(), "TERM".into()]),
        )?;
        Ok(Self {
            recordings_dir: raw
                .recordings_dir
                .unwrap_or_else(|| raw.data_dir.join("recordings")),
            listen: raw.listen,
            ca_url: raw.ca_url,
            ca_bundle: raw.ca_bundle,
            data_dir: raw.data_dir,
            enroll_token_file: raw.enroll_token_file,
            metrics_listen: raw.metrics_listen,
            accept_env,
            limits,
            heartbeat_interval,
            targets: Targets::from_config(&raw.targets)?,
        })
    }
}

fn positive(name: &str, value: Option<u32>, default: u32) -> anyhow::Result<u32> {
    match value {
        Some(0) => anyhow::bail!("[limits] {name} must be at least 1"),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// `16GiB`, `512MiB`, `64KiB`, `1000` (bytes).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        "TiB" => 1024 * 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(unit).filter(|n| *n > 0)
}

fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// `accept_env`: names of environment variables passed to targets, with
/// `*` (any run) and `?` (any one character) as in OpenSSH's AcceptEnv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcceptEnv(Vec<String>);

impl AcceptEnv {
    pub(crate) fn new(patterns: Vec<String>) -> anyhow::Result<Self> {
        for p in &patterns {
            let ok = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'*' | b'?'));
            if !ok {
                anyhow::bail!(
                    "accept_env {p:?}: a variable name, with * and ? as wildcards (\"LC_*\")"
                );
            }
        }
        Ok(Self(patterns))
    }

    pub(crate) fn accepts(&self, name: &str) -> bool {
        self.0.iter().any(|p| glob(p.as_bytes(), name.as_bytes()))
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            (0..=text.len()).any(|i| glob(rest, text.get(i..).unwrap_or_default()))
        }
        Some((b'?', rest)) => text.split_first().is_some_and(|(_, t)| glob(rest, t)),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, tail)| t == c && glob(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "listen = \"127.0.0.1:0\"\nca_url = \"https://ca.example\"\ndata_dir = \"/tmp/x\"\n";

    #[test]
    fn defaults_are_generous_and_openssh_like() {
        let c = Config::parse(BASE).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_sessions, 10);
        assert!(c.accept_env.accepts("LANG") && c.accept_env.accepts("LC_ALL"));
        assert!(c.accept_env.accepts("TERM") && !c.accept_env.accepts("LD_PRELOAD"));
        assert!(!c.accept_env.accepts("LC") && !c.accept_env.accepts("TERMCAP"));
        assert_eq!(c.recordings_dir, PathBuf::from("/tmp/x/recordings"));
    }

    #[test]
    fn limits_are_read_and_checked() {
        let c = Config::parse(&format!(
            "{BASE}accept_env = [\"LANG\", \"GIT_?\"]\n[limits]\nmax_sessions = 3\nlogin_grace_time = \"2s\"\nmax_recording_size = \"256KiB\"\n"
        ))
        .unwrap();
        assert_eq!(c.limits.max_sessions, 3);
        assert_eq!(c.limits.login_grace_time, Duration::from_secs(2));
        assert_eq!(c.limits.max_recording_size, 256 * 1024);
        assert!(c.accept_env.accepts("GIT_X") && !c.accept_env.accepts("GIT_XY"));
        // The highest channel a connection may reach names a file the CA
        // takes: one constant for both.
        let c = Config::parse(&format!(
            "{BASE}heartbeat_interval = \"2s\"\n[limits]\nmax_channels_per_connection = {}\n",
            shiftkey_wire::MAX_CHANNEL_NUMBER
        ))
        .unwrap();
        assert_eq!(c.limits.max_channels_per_connection, 9999);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(
            Config::parse(BASE).unwrap().heartbeat_interval,
            Duration::from_secs(10)
        );
        for bad in [
            "heartbeat_interval = \"0s\"\n",
            "heartbeat_interval = \"5m\"\n",
            "[limits]\nmax_sessions = 0\n",
            "[limits]\nmax_channels_per_connection = 10000\n",
            "[limits]\nmax_recording_size = \"lots\"\n",
            "[limits]\nlogin_grace_time = \"0s\"\n",
            "[limits]\nmax_session = 3\n",
            "accept_env = [\"A=B\"]\n",
            "[targets]\n\"a\" = \"b:c\"\n",
        ] {
            assert!(
                Config::parse(&format!("{BASE}{bad}")).is_err(),
                "{bad:?} was taken"
            );
        }
        assert!(Config::parse(&BASE.replace("https://ca.example", "http://ca.example")).is_err());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16GiB"), Some(16 << 30));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("2 MiB"), Some(2 << 20));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("1GB"), None);
    }
}
