//! `ca.toml`: the CA service's own settings (not the access policy).
//!
//! Raw serde structs with `deny_unknown_fields` become a checked [`Config`];
//! relative paths are resolved against the directory holding `ca.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    policy: RawPolicy,
    oidc: Option<RawOidc>,
    #[serde(default)]
    webhooks: RawWebhooks,
    notifications: Option<RawNotifications>,
    ui: Option<RawUi>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    recordings: RawRecordings,
    #[serde(default)]
    keys: RawKeys,
}

/// `[keys]`: where the CA's two signing keys live (docs/configuration.md#keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    /// `file` (DATA_DIR/keys/user_ca) or a `pkcs11:` URI [default: file].
    user: Option<String>,
    /// `file` (DATA_DIR/keys/host_ca) or a `pkcs11:` URI [default: file].
    host: Option<String>,
    /// Keys generated on a token: `ed25519` or `ecdsa-p256` [default: ed25519].
    algorithm: Option<String>,
    /// Logged-in sessions per token key [default: 4].
    pkcs11_sessions: Option<usize>,
}

impl RawKeys {
    fn check(self) -> Result<crate::keys::KeySettings, String> {
        let defaults = crate::keys::KeySettings::default();
        let location = |key: &str, text: Option<String>| match text {
            Some(text) => text
                .parse::<crate::signer::KeyLocation>()
                .map_err(|e| format!("keys.{key}: {e}")),
            None => Ok(crate::signer::KeyLocation::File),
        };
        Ok(crate::keys::KeySettings {
            user: location("user", self.user)?,
            host: location("host", self.host)?,
            algorithm: match self.algorithm {
                Some(text) => text.parse().map_err(|e| format!("keys.algorithm: {e}"))?,
                None => defaults.algorithm,
            },
            pkcs11_sessions: match self.pkcs11_sessions {
                Some(n) => std::num::NonZeroUsize::new(n)
                    .filter(|n| n.get() <= MAX_PKCS11_SESSIONS)
                    .ok_or_else(|| {
                        format!(
                            "keys.pkcs11_sessions {n} must be between 1 and {MAX_PKCS11_SESSIONS}"
                        )
                    })?,
                None => defaults.pkcs11_sessions,
            },
        })
    }
}

/// More logged-in sessions than this per key is a typo, not a token.
const MAX_PKCS11_SESSIONS: usize = 64;

/// The `[keys]` section `init` writes for keys that are not files.
pub(crate) fn keys_section(settings: &crate::keys::KeySettings) -> String {
    format!(
        "\n[keys]\n# Written by `shiftkey-ca init`. Reference: docs/configuration.md#keys\nuser = {:?}\nhost = {:?}\nalgorithm = \"{}\"\npkcs11_sessions = {}\n",
        settings.user.to_string(),
        settings.host.to_string(),
        settings.algorithm,
        settings.pkcs11_sessions,
    )
}

/// `[recordings]`: the CA's limits on session recordings (docs/configuration.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordings {
    /// All files of one session together, e.g. "16GiB" [default: 16GiB].
    max_session_size: Option<String>,
    /// A live session its bastion has not named for this long is sealed as
    /// lost [default: 30s].
    lost_after: Option<String>,
    /// Sealed recordings older than this are deleted, e.g. "365days"
    /// [default: kept].
    retention: Option<String>,
    /// Where the bytes live: `s3://BUCKET/PREFIX` or `file:DIR`
    /// [default: DATA_DIR/recordings].
    url: Option<String>,
    /// An S3-compatible server's URL; AWS when left out.
    endpoint: Option<String>,
    /// [default: us-east-1]
    region: Option<String>,
    /// TOML with `access_key_id`, `secret_access_key` (0600).
    credentials_file: Option<PathBuf>,
}

impl RawRecordings {
    /// Where the bytes live (the S3 half of this table).
    fn storage(&self) -> crate::recording_store::RawSettings {
        crate::recording_store::RawSettings {
            url: self.url.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            credentials_file: self.credentials_file.clone(),
        }
    }

    fn check(self) -> Result<crate::recordings::Limits, String> {
        let defaults = crate::recordings::Limits::default();
        let duration = |key: &str, text: &str| {
            humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    format!("recordings.{key} {text:?} is not a duration such as 30s or 90days")
                })
        };
        let lost_after = match &self.lost_after {
            Some(text) => duration("lost_after", text)?,
            None => defaults.lost_after,
        };
        if lost_after < std::time::Duration::from_secs(2) {
            return Err(format!(
                "recordings.lost_after {:?} is shorter than 2s: bastions name their sessions every few seconds",
                self.lost_after.unwrap_or_default()
            ));
        }
        Ok(crate::recordings::Limits {
            max_session_size: match &self.max_session_size {
                Some(text) => parse_size(text).ok_or_else(|| {
                    format!(
                        "recordings.max_session_size {text:?} is not a size such as \"16GiB\", \"512MiB\" or a number of bytes"
                    )
                })?,
                None => defaults.max_session_size,
            },
            lost_after,
            retention: self
                .retention
                .as_deref()
                .map(|text| duration("retention", text))
                .transpose()?,
        })
    }
}

/// `16GiB`, `512MiB`, `64KiB`, `1000` (bytes); more than zero.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let unit: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(unit).filter(|n| *n > 0)
}

/// `[store]`: where the CA keeps its rows: a SQLite file (the default), or
/// a PostgreSQL database that several replicas share. A relative SQLite
/// path is resolved against the data directory (not this file's), so
/// `shiftkey-ca revoke --data-dir DIR` finds the same store as `serve`;
/// `password_file` and `sslrootcert` against this file's directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// The SQLite file [default: DATA_DIR/shiftkey.db].
    path: Option<PathBuf>,
    /// `postgresql://USER@HOST:PORT/DB?sslmode=verify-full&sslrootcert=CA.pem`,
    /// or `sqlite:PATH`.
    url: Option<String>,
    /// PostgreSQL: a file holding the password (0600).
    password_file: Option<PathBuf>,
    /// PostgreSQL: connections this replica keeps at most [default: 16].
    max_connections: Option<usize>,
}

impl RawStore {
    fn check(self, data_dir: &Path, base: &Path) -> Result<crate::store::Settings, String> {
        let sqlite_only = |path: PathBuf| {
            if self.password_file.is_some() || self.max_connections.is_some() {
                return Err(
                    "store.password_file and store.max_connections are for PostgreSQL".to_owned(),
                );
            }
            Ok(crate::store::Settings::Sqlite {
                path: data_dir.join(path),
            })
        };
        match (self.path.clone(), self.url.as_deref()) {
            (Some(_), Some(_)) => Err("give store.path or store.url, not both".into()),
            (Some(path), None) => sqlite_only(path),
            (None, None) => sqlite_only(PathBuf::from(DEFAULT_DB)),
            (None, Some(url)) => match url.strip_prefix("sqlite:") {
                Some(path) => sqlite_only(PathBuf::from(path)),
                None => crate::store::PostgresSettings::parse(
                    url,
                    self.password_file.clone(),
                    self.max_connections,
                    base,
                )
                .map(crate::store::Settings::Postgres)
                .map_err(|e| format!("store.url: {e}")),
            },
        }
    }
}

/// `[ui]`: the web review UI at `/ui/` (docs/ui.md). Needs `[oidc]`: the CA
/// signs reviewers in as a relying party of the same provider and client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    /// Where browsers reach this CA; the redirect URI is `{public_url}/ui/callback`.
    public_url: String,
    /// A file holding the client secret, for a confidential client (0600).
    client_secret_file: Option<PathBuf>,
    /// The asciinema-player bundle (`asciinema-player.min.js` and `.css`).
    assets_dir: Option<PathBuf>,
    #[serde(default = "default_ui_session")]
    session_ttl: String,
}

/// `[notifications]`: where the CA announces incidents and break-glass use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    url: String,
    secret_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_tls_cert")]
    tls_cert: PathBuf,
    #[serde(default = "default_tls_key")]
    tls_key: PathBuf,
    #[serde(default)]
    danger_plain_http: bool,
    #[serde(default = "default_socket")]
    socket: PathBuf,
    #[serde(default = "default_request_timeout")]
    request_timeout: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls_cert: default_tls_cert(),
            tls_key: default_tls_key(),
            danger_plain_http: false,
            socket: default_socket(),
            request_timeout: default_request_timeout(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default = "default_policy_path")]
    path: PathBuf,
}

impl Default for RawPolicy {
    fn default() -> Self {
        Self {
            path: default_policy_path(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: String,
    client_id: String,
    #[serde(default = "default_groups_claim")]
    groups_claim: String,
    #[serde(default = "default_algs")]
    allowed_algs: Vec<String>,
    #[serde(default = "default_skew")]
    clock_skew: String,
    #[serde(default)]
    danger_allow_http_issuer: bool,
    #[serde(default)]
    danger_accept_unverified_email: bool,
}

/// `[webhooks]`: where the incoming webhooks' shared secrets live. A source
/// without a file is not configured and its endpoint answers 404.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    alertmanager_token_file: Option<PathBuf>,
    pagerduty_secret_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_tls_cert() -> PathBuf {
    "tls/cert.pem".into()
}
fn default_tls_key() -> PathBuf {
    "tls/key.pem".into()
}
fn default_socket() -> PathBuf {
    "ca.sock".into()
}
fn default_request_timeout() -> String {
    "10s".into()
}
fn default_policy_path() -> PathBuf {
    "policy.toml".into()
}
fn default_ui_session() -> String {
    "8h".into()
}
fn default_groups_claim() -> String {
    crate::oidc::DEFAULT_GROUPS_CLAIM.into()
}
fn default_algs() -> Vec<String> {
    crate::oidc::DEFAULT_ALLOWED_ALGS
        .iter()
        .map(|a| (*a).to_owned())
        .collect()
}
fn default_skew() -> String {
    humantime::format_duration(crate::oidc::DEFAULT_CLOCK_SKEW).to_string()
}

/// Checked configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) tls: Option<TlsFiles>,
    /// `None` disables the local socket.
    pub(crate) socket: Option<PathBuf>,
    pub(crate) request_timeout: Duration,
    pub(crate) policy_path: PathBuf,
    pub(crate) oidc: Option<crate::oidc::OidcSettings>,
    pub(crate) webhooks: WebhookFiles,
    pub(crate) notifications: Option<NotifySettings>,
    pub(crate) ui: Option<UiSettings>,
    /// Where the rows live.
    pub(crate) store: crate::store::Settings,
    /// Where recordings' bytes live: `DATA_DIR/recordings`, or S3.
    pub(crate) recordings: crate::recording_store::Settings,
    /// `[recordings]`: size limit, lost sessions, retention.
    pub(crate) recording_limits: crate::recordings::Limits,
    /// `[keys]`: where the CA keys live.
    pub(crate) keys: crate::keys::KeySettings,
}

/// The SQLite file when `[store]` names none.
pub(crate) const DEFAULT_DB: &str = "shiftkey.db";

/// Why the store a data directory's `ca.toml` names could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenStoreError {
    #[error(transparent)]
    Config(#[from] Error),
    #[error(transparent)]
    Store(#[from] crate::store::OpenError),
}

/// The one way every command reaches the store: the one that `config`
/// (default: `DATA_DIR/ca.toml`) names, so `serve`, `revoke`, `audit
/// verify` and the rest on this data directory all use the same rows (on
/// PostgreSQL, the rows every replica shares). A data directory without
/// its own `ca.toml` (the config lives in /etc, and `--config` was not
/// given) uses the default, `DATA_DIR/shiftkey.db`.
pub(crate) async fn open_store(
    data_dir: &Path,
    config: Option<&Path>,
    access: crate::store::Access,
) -> Result<std::sync::Arc<dyn crate::store::Store>, OpenStoreError> {
    let settings = store_settings(data_dir, config)?;
    Ok(crate::store::open(&settings, access).await?)
}

/// The store `config` (default: `DATA_DIR/ca.toml`) names.
pub(crate) fn store_settings(
    data_dir: &Path,
    config: Option<&Path>,
) -> Result<crate::store::Settings, Error> {
    Ok(match config {
        Some(path) => Config::load(path, data_dir)?.store,
        None => match Config::load(&data_dir.join("ca.toml"), data_dir) {
            Ok(config) => config.store,
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                default_store(data_dir)
            }
            Err(e) => return Err(e),
        },
    })
}

/// The policy file the data directory's `ca.toml` (or `config`) names, as
/// `serve` reads it; `DATA_DIR/policy.toml` without a `ca.toml`.
pub(crate) fn policy_path(data_dir: &Path, config: Option<&Path>) -> Result<PathBuf, Error> {
    match config {
        Some(path) => Ok(Config::load(path, data_dir)?.policy_path),
        None => match Config::load(&data_dir.join("ca.toml"), data_dir) {
            Ok(config) => Ok(config.policy_path),
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(data_dir.join(default_policy_path()))
            }
            Err(e) => Err(e),
        },
    }
}

/// Where the CA keys of this data directory live, as `serve` reads it from
/// `config` (default `DATA_DIR/ca.toml`); key files without a `ca.toml`.
pub(crate) fn key_settings(
    data_dir: &Path,
    config: Option<&Path>,
) -> Result<crate::keys::KeySettings, Error> {
    match config {
        Some(path) => Ok(Config::load(path, data_dir)?.keys),
        None => match Config::load(&data_dir.join("ca.toml"), data_dir) {
            Ok(config) => Ok(config.keys),
            Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(crate::keys::KeySettings::default())
            }
            Err(e) => Err(e),
        },
    }
}

fn default_store(data_dir: &Path) -> crate::store::Settings {
    crate::store::Settings::Sqlite {
        path: data_dir.join(DEFAULT_DB),
    }
}

/// Checked `[ui]` settings, with what the UI needs from `[oidc]`.
#[derive(Debug, Clone)]
pub(crate) struct UiSettings {
    /// `https://HOST[:PORT]` without a trailing slash.
    pub(crate) public_url: String,
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret_file: Option<PathBuf>,
    pub(crate) assets_dir: Option<PathBuf>,
    pub(crate) session_ttl: Duration,
    pub(crate) danger_allow_http_issuer: bool,
}

/// Where notifications go, and the file with the secret that signs them.
#[derive(Debug, Clone)]
pub(crate) struct NotifySettings {
    pub(crate) url: String,
    pub(crate) secret_file: PathBuf,
}

/// `https://` anywhere, `http://` only to this machine (tests, a local relay).
fn url_is_safe(text: &str) -> Option<String> {
    let url = reqwest::Url::parse(text).ok()?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => return None,
    };
    (url.scheme() == "https" || (url.scheme() == "http" && loopback)).then(|| url.to_string())
}

/// The files holding the incoming webhooks' secrets (read at start by
/// `http::webhooks::Webhooks::load`, which checks their permissions).
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookFiles {
    /// Alertmanager's shared bearer token.
    pub(crate) alertmanager_token: Option<PathBuf>,
    /// The PagerDuty webhook subscription's signing secret.
    pub(crate) pagerduty_secret: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Config {
    /// Reads `path`; relative paths in `[store]` and the recordings resolve
    /// against `data_dir`, the others against `path`'s directory.
    pub(crate) fn load(path: &Path, data_dir: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, data_dir)
    }

    pub(crate) fn parse(text: &str, path: &Path, data_dir: &Path) -> Result<Self, Error> {
        let invalid = |message: String| Error::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            invalid(format!(
                "server.listen {:?} is not an address such as 127.0.0.1:8443",
                raw.server.listen
            ))
        })?;
        let tls = if raw.server.danger_plain_http {
            if !listen.ip().is_loopback() {
                return Err(invalid(format!(
                    "server.danger_plain_http is only allowed on a loopback address, not {listen}; remove it to serve HTTPS"
                )));
            }
            None
        } else {
            Some(TlsFiles {
                cert: base.join(&raw.server.tls_cert),
                key: base.join(&raw.server.tls_key),
            })
        };
        let socket = if raw.server.socket.as_os_str().is_empty() {
            None
        } else {
            Some(base.join(&raw.server.socket))
        };
        let request_timeout =
            humantime::parse_duration(&raw.server.request_timeout).map_err(|_| {
                invalid(format!(
                    "server.request_timeout {:?} is not a duration such as 10s",
                    raw.server.request_timeout
                ))
            })?;
        let oidc = match raw.oidc {
            Some(o) => {
                let clock_skew = humantime::parse_duration(&o.clock_skew).map_err(|_| {
                    invalid(format!(
                        "oidc.clock_skew {:?} is not a duration such as 60s",
                        o.clock_skew
                    ))
                })?;
                if clock_skew > Duration::from_secs(300) {
                    return Err(invalid("oidc.clock_skew may be at most 5m".into()));
                }
                for alg in &o.allowed_algs {
                    if alg.eq_ignore_ascii_case("none")
                        || alg.to_ascii_uppercase().starts_with("HS")
                    {
                        return Err(invalid(format!(
                            "oidc.allowed_algs: {alg} is never allowed (no signature, or a secret shared with every client)"
                        )));
                    }
                }
                Some(crate::oidc::OidcSettings {
                    issuer: o.issuer,
                    audience: o.client_id,
                    groups_claim: o.groups_claim,
                    allowed_algs: o.allowed_algs,
                    clock_skew,
                    danger_allow_http_issuer: o.danger_allow_http_issuer,
                    danger_accept_unverified_email: o.danger_accept_unverified_email,
                })
            }
            None => None,
        };
        let webhooks = WebhookFiles {
            alertmanager_token: raw.webhooks.alertmanager_token_file.map(|p| base.join(p)),
            pagerduty_secret: raw.webhooks.pagerduty_secret_file.map(|p| base.join(p)),
        };
        let notifications = match raw.notifications {
            Some(n) => {
                let url = url_is_safe(&n.url).ok_or_else(|| {
                    invalid(format!(
                        "notifications.url {:?} must be an https:// URL (plain http only to 127.0.0.1 or localhost)",
                        n.url
                    ))
                })?;
                Some(NotifySettings {
                    url,
                    secret_file: base.join(n.secret_file),
                })
            }
            None => None,
        };
        let ui = match raw.ui {
            Some(u) => {
                let Some(oidc) = &oidc else {
                    return Err(invalid(
                        "[ui] needs [oidc]: reviewers sign in through the OIDC provider".into(),
                    ));
                };
                let url = reqwest::Url::parse(&u.public_url)
                    .ok()
                    .filter(|url| {
                        url.scheme() == "https"
                            && url.host().is_some()
                            && url.path() == "/"
                            && url.query().is_none()
                    })
                    .ok_or_else(|| {
                        invalid(format!(
                            "ui.public_url {:?} must be https://HOST[:PORT] without a path (the session cookie is Secure)",
                            u.public_url
                        ))
                    })?;
                let session_ttl = humantime::parse_duration(&u.session_ttl)
                    .ok()
                    .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(86_400))
                    .ok_or_else(|| {
                        invalid(format!(
                            "ui.session_ttl {:?} is not a duration between 1m and 24h",
                            u.session_ttl
                        ))
                    })?;
                Some(UiSettings {
                    public_url: url.as_str().trim_end_matches('/').to_owned(),
                    issuer: oidc.issuer.clone(),
                    client_id: oidc.audience.clone(),
                    client_secret_file: u.client_secret_file.map(|p| base.join(p)),
                    assets_dir: u.assets_dir.map(|p| base.join(p)),
                    session_ttl,
                    danger_allow_http_issuer: oidc.danger_allow_http_issuer,
                })
            }
            None => None,
        };
        let store = raw.store.check(data_dir, base).map_err(invalid)?;
        let recordings = raw
            .recordings
            .storage()
            .check(data_dir, base)
            .map_err(|e| invalid(format!("recordings: {e}")))?;
        Ok(Config {
            store,
            recordings,
            recording_limits: raw.recordings.check().map_err(invalid)?,
            keys: raw.keys.check().map_err(invalid)?,
            ui,
            listen,
            tls,
            socket,
            request_timeout,
            policy_path: base.join(raw.policy.path),
            oidc,
            webhooks,
            notifications,
        })
    }
}

/// The `ca.toml` that `init` writes: every setting, with its default, explained.
pub(crate) const EXAMPLE: &str = r#"# Shiftkey CA configuration. Paths are relative to this file's directory.
# Reference: docs/configuration.md

[server]
# HTTPS API. Clients, hosts and the bastion talk to this address.
listen = "127.0.0.1:8443"
tls_cert = "tls/cert.pem"   # replace with your own certificate and key if you have them
tls_key = "tls/key.pem"
# Local Unix socket: callers are identified as local:USER from the kernel.
# Serves break-glass and quickstart on the CA host. "" disables it.
socket = "ca.sock"
request_timeout = "10s"
# danger_plain_http = true  # plain HTTP, loopback only; for tests and benchmarks

[policy]
# A file, or a directory of *.toml files. Reloaded on SIGHUP.
path = "policy.toml"

# Where the CA keeps certificates, incidents, requests, hosts, sessions and
# the audit log. Every shiftkey-ca command given this data directory uses it.
# [store]
# path = "shiftkey.db"   # SQLite; relative to the data directory
# Several replicas share one PostgreSQL database instead (docs/install.md#high-availability):
# url = "postgresql://shiftkey@db.example.com/shiftkey?sslmode=verify-full&sslrootcert=db-ca.pem"
# password_file = "secrets/db.password"   # mode 0600
# max_connections = 16

# Session recordings. Reference: docs/configuration.md#recordings
# Their bytes live in the data directory's recordings/ by default, or in
# S3-compatible object storage that replicas share.
# [recordings]
# url = "s3://shiftkey-recordings/prod"
# endpoint = "https://s3.example.com"   # S3-compatible servers; AWS when left out
# region = "us-east-1"
# credentials_file = "secrets/s3.credentials"   # or SHIFTKEY_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY
# max_session_size = "16GiB"   # all files of one session; past it the bastion ends the session
# lost_after = "30s"           # a session no heartbeat names this long is sealed as lost
# retention = "365days"        # delete sealed recordings older than this (held ones and
#                              # those under an open incident are kept); default: keep

# Where the CA's signing keys live. Reference: docs/configuration.md#keys
# [keys]
# user = "file"   # DATA_DIR/keys/user_ca, or a PKCS#11 URI such as
#                 # "pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/shiftkey/pin"
# host = "file"   # DATA_DIR/keys/host_ca, or a PKCS#11 URI
# algorithm = "ed25519"   # keys generated on a token: ed25519 or ecdsa-p256
# pkcs11_sessions = 4     # signatures in flight per token key

# OIDC sign-in for `shiftkey login` users. Uncomment and fill in.
# [oidc]
# issuer = "https://login.example.com"
# client_id = "shiftkey"
# groups_claim = "groups"
# allowed_algs = ["RS256", "ES256", "EdDSA"]
# clock_skew = "60s"
# Tokens must say email_verified = true. Only for a provider that never sends
# the claim and only hands out addresses it verified:
# danger_accept_unverified_email = true

# Incoming webhooks that open and resolve incidents. Each file holds one
# secret, mode 0600 (refused if group or others may read it). A source left
# out answers 404. Reference: docs/configuration.md#webhooks
# [webhooks]
# alertmanager_token_file = "secrets/alertmanager.token"
# pagerduty_secret_file = "secrets/pagerduty.secret"

# The web review UI at /ui/ for the policy's reviewers and approvers; it
# signs them in through the OIDC section above. Reference: docs/ui.md
# [ui]
# public_url = "https://ca.example.com:8443"   # redirect URI: {public_url}/ui/callback
# client_secret_file = "secrets/ui-client.secret"   # only for a confidential client
# assets_dir = "/usr/share/shiftkey/asciinema-player"   # asciinema-player.min.js and .css
# session_ttl = "8h"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_with_defaults() {
        let c = Config::parse(
            EXAMPLE,
            Path::new("/etc/shiftkey/ca.toml"),
            Path::new("/var/lib/shiftkey"),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.policy_path, Path::new("/etc/shiftkey/policy.toml"));
        assert_eq!(
            c.socket.as_deref(),
            Some(Path::new("/etc/shiftkey/ca.sock"))
        );
        assert!(c.tls.is_some() && c.oidc.is_none());
        assert!(c.webhooks.alertmanager_token.is_none() && c.webhooks.pagerduty_secret.is_none());
    }

    #[test]
    fn webhook_secret_files_resolve_against_the_config_directory() {
        let example = EXAMPLE
            .replace("# [webhooks]", "[webhooks]")
            .replace("# alertmanager_token_file", "alertmanager_token_file")
            .replace("# pagerduty_secret_file", "pagerduty_secret_file");
        let c = Config::parse(
            &example,
            Path::new("/etc/shiftkey/ca.toml"),
            Path::new("/var/lib/shiftkey"),
        )
        .unwrap();
        assert_eq!(
            c.webhooks.alertmanager_token.as_deref(),
            Some(Path::new("/etc/shiftkey/secrets/alertmanager.token"))
        );
        assert_eq!(
            c.webhooks.pagerduty_secret.as_deref(),
            Some(Path::new("/etc/shiftkey/secrets/pagerduty.secret"))
        );
        // A misspelt key is refused, not silently ignored.
        let text = "[webhooks]\npagerduty_secret = \"x\"\n";
        assert!(Config::parse(text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey")).is_err());
    }

    #[test]
    fn recordings_limits_have_defaults_and_are_checked() {
        let parse = |text: &str| Config::parse(text, Path::new("ca.toml"), Path::new("/d"));
        let c = parse("").unwrap();
        assert_eq!(c.recording_limits, crate::recordings::Limits::default());
        assert_eq!(c.recording_limits.lost_after, Duration::from_secs(30));
        assert_eq!(c.recording_limits.retention, None);
        let c = parse(
            "[recordings]\nmax_session_size = \"512MiB\"\nlost_after = \"5s\"\nretention = \"90days\"\n",
        )
        .unwrap();
        assert_eq!(c.recording_limits.max_session_size, 512 << 20);
        assert_eq!(c.recording_limits.lost_after, Duration::from_secs(5));
        assert_eq!(
            c.recording_limits.retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        for bad in [
            "[recordings]\nmax_session_size = \"lots\"\n",
            "[recordings]\nmax_session_size = \"0\"\n",
            "[recordings]\nlost_after = \"1s\"\n",
            "[recordings]\nretention = \"0s\"\n",
            "[recordings]\nretention_days = 3\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// Where the bytes live and the limits share one `[recordings]` table
    /// (TOML allows a table once): each half is read, neither refuses the
    /// other's keys, and the example's keys all parse together.
    #[test]
    fn one_recordings_table_holds_the_bucket_and_the_limits() {
        let parse =
            |text: &str| Config::parse(text, Path::new("/etc/shiftkey/ca.toml"), Path::new("/d"));
        let c = parse(
            "[recordings]\nurl = \"s3://shiftkey-recordings/prod\"\nendpoint = \"https://s3.example.com\"\n\
             region = \"eu-west-1\"\ncredentials_file = \"s3.toml\"\nlost_after = \"5s\"\nretention = \"90days\"\n",
        )
        .unwrap();
        assert_eq!(
            c.recordings,
            crate::recording_store::Settings::S3(crate::recording_store::S3Settings {
                bucket: "shiftkey-recordings".into(),
                prefix: "prod".into(),
                endpoint: Some("https://s3.example.com".into()),
                region: "eu-west-1".into(),
                credentials_file: Some(PathBuf::from("/etc/shiftkey/s3.toml")),
            })
        );
        assert_eq!(c.recording_limits.lost_after, Duration::from_secs(5));
        assert_eq!(
            c.recording_limits.retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        let c = parse("[recordings]\nmax_session_size = \"1GiB\"\n").unwrap();
        assert_eq!(
            c.recordings,
            crate::recording_store::Settings::Local {
                dir: PathBuf::from("/d/recordings")
            }
        );
        assert!(parse("[recordings]\nregion = \"eu-west-1\"\nretention = \"1day\"\n").is_err());
        // The example's commented-out table, uncommented.
        let example: String = EXAMPLE
            .lines()
            .skip_while(|l| *l != "# [recordings]")
            .take_while(|l| !l.is_empty())
            .map(|l| format!("{}\n", l.strip_prefix('#').unwrap_or(l)))
            .collect();
        let c = parse(&example).unwrap();
        assert!(
            matches!(c.recordings, crate::recording_store::Settings::S3(_)),
            "{example}"
        );
        assert_eq!(c.recording_limits.max_session_size, 16 << 30);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let text = "[server]\nlisten = \"0.0.0.0:80\"\ndanger_plain_http = true\n";
        let err = Config::parse(text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only allowed on a loopback address"), "{err}");
    }

    #[test]
    fn unverified_email_is_refused_unless_the_danger_setting_says_so() {
        let base = "[oidc]\nissuer = \"https://login.example.com\"\nclient_id = \"c\"\n";
        let c = Config::parse(base, Path::new("ca.toml"), Path::new("/var/lib/shiftkey")).unwrap();
        assert!(!c.oidc.unwrap().danger_accept_unverified_email);
        let text = format!("{base}danger_accept_unverified_email = true\n");
        let c = Config::parse(&text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey")).unwrap();
        assert!(c.oidc.unwrap().danger_accept_unverified_email);
        // Misspelt: refused, not silently ignored.
        let text = format!("{base}accept_unverified_email = true\n");
        assert!(
            Config::parse(&text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey")).is_err()
        );
        // The commented-out line in the example is the real setting.
        let example = EXAMPLE
            .replace("# [oidc]", "[oidc]")
            .replace("# issuer", "issuer")
            .replace("# client_id", "client_id")
            .replace(
                "# danger_accept_unverified_email",
                "danger_accept_unverified_email",
            );
        let c = Config::parse(
            &example,
            Path::new("ca.toml"),
            Path::new("/var/lib/shiftkey"),
        )
        .unwrap();
        assert!(c.oidc.unwrap().danger_accept_unverified_email);
    }

    #[test]
    fn ui_needs_oidc_and_an_https_public_url() {
        let oidc = "[oidc]\nissuer = \"https://login.example.com\"\nclient_id = \"c\"\n";
        let ui = "[ui]\npublic_url = \"https://ca.example.com:8443/\"\nassets_dir = \"player\"\n";
        let c = Config::parse(
            &format!("{oidc}{ui}"),
            Path::new("/etc/shiftkey/ca.toml"),
            Path::new("/var/lib/shiftkey"),
        )
        .unwrap();
        let ui_settings = c.ui.unwrap();
        assert_eq!(ui_settings.public_url, "https://ca.example.com:8443");
        assert_eq!(ui_settings.client_id, "c");
        assert_eq!(
            ui_settings.assets_dir.as_deref(),
            Some(Path::new("/etc/shiftkey/player"))
        );
        assert!(
            Config::parse(ui, Path::new("ca.toml"), Path::new("/var/lib/shiftkey")).is_err(),
            "no [oidc]"
        );
        let plain = format!("{oidc}[ui]\npublic_url = \"http://ca.example.com\"\n");
        assert!(
            Config::parse(&plain, Path::new("ca.toml"), Path::new("/var/lib/shiftkey")).is_err()
        );
        let example = EXAMPLE
            .replace("# [oidc]", "[oidc]")
            .replace("# issuer", "issuer")
            .replace("# client_id", "client_id")
            .replace("# [ui]", "[ui]")
            .replace("# public_url", "public_url")
            .replace("# client_secret_file", "client_secret_file")
            .replace("# assets_dir", "assets_dir")
            .replace("# session_ttl", "session_ttl");
        assert!(
            Config::parse(
                &example,
                Path::new("ca.toml"),
                Path::new("/var/lib/shiftkey")
            )
            .unwrap()
            .ui
            .is_some()
        );
    }

    #[test]
    fn the_store_is_in_the_data_directory_unless_store_path_says_otherwise() {
        let data = Path::new("/var/lib/shiftkey");
        let sqlite = |path: &str| crate::store::Settings::Sqlite {
            path: PathBuf::from(path),
        };
        let c = Config::parse(EXAMPLE, Path::new("/etc/shiftkey/ca.toml"), data).unwrap();
        assert_eq!(c.store, sqlite("/var/lib/shiftkey/shiftkey.db"));
        let moved = format!("{EXAMPLE}\n[store]\npath = \"db/ca.db\"\n");
        let c = Config::parse(&moved, Path::new("/etc/shiftkey/ca.toml"), data).unwrap();
        assert_eq!(
            c.store,
            sqlite("/var/lib/shiftkey/db/ca.db"),
            "relative to the data directory"
        );
        let absolute = format!("{EXAMPLE}\n[store]\npath = \"/srv/ca.db\"\n");
        let c = Config::parse(&absolute, Path::new("ca.toml"), data).unwrap();
        assert_eq!(c.store, sqlite("/srv/ca.db"));
        let misspelt = format!("{EXAMPLE}\n[store]\nfile = \"x.db\"\n");
        assert!(Config::parse(&misspelt, Path::new("ca.toml"), data).is_err());
    }

    #[tokio::test]
    async fn commands_open_the_store_ca_toml_names_or_the_default_without_one() {
        use crate::store::Access;
        let dir = tempfile::tempdir().unwrap();
        // No ca.toml in the data directory (it lives in /etc): the default.
        drop(
            open_store(dir.path(), None, Access::ReadWrite)
                .await
                .unwrap(),
        );
        assert!(dir.path().join(DEFAULT_DB).exists());
        std::fs::write(dir.path().join("ca.toml"), "[store]\npath = \"other.db\"\n").unwrap();
        drop(
            open_store(dir.path(), None, Access::ReadWrite)
                .await
                .unwrap(),
        );
        assert!(dir.path().join("other.db").exists());
        std::fs::write(
            dir.path().join("ca.toml"),
            "[store]\nurl = \"sqlite:third.db\"\n",
        )
        .unwrap();
        drop(
            open_store(dir.path(), None, Access::ReadWrite)
                .await
                .unwrap(),
        );
        assert!(dir.path().join("third.db").exists());
        // A --config that is not there is an error, never a silent default.
        assert!(matches!(
            open_store(
                dir.path(),
                Some(&dir.path().join("absent.toml")),
                Access::ReadWrite
            )
            .await,
            Err(OpenStoreError::Config(Error::Read { .. }))
        ));
        // A broken ca.toml is an error too.
        std::fs::write(dir.path().join("ca.toml"), "[store]\nfile = 1\n").unwrap();
        assert!(
            open_store(dir.path(), None, Access::ReadOnly)
                .await
                .is_err()
        );
    }

    #[test]
    fn store_url_names_postgresql_and_its_files_resolve_against_the_config() {
        let data = Path::new("/var/lib/shiftkey");
        let text = format!(
            "{EXAMPLE}\n[store]\nurl = \"postgresql://ca@db.example.com/shiftkey?sslrootcert=db-ca.pem\"\npassword_file = \"secrets/db.password\"\nmax_connections = 4\n"
        );
        let c = Config::parse(&text, Path::new("/etc/shiftkey/ca.toml"), data).unwrap();
        let crate::store::Settings::Postgres(pg) = &c.store else {
            panic!("{:?}", c.store)
        };
        assert_eq!(
            pg.root_cert.as_deref(),
            Some(Path::new("/etc/shiftkey/db-ca.pem"))
        );
        assert_eq!(
            pg.password_file.as_deref(),
            Some(Path::new("/etc/shiftkey/secrets/db.password"))
        );
        assert_eq!(pg.max_connections, 4);
        for refused in [
            "[store]\npath = \"a.db\"\nurl = \"sqlite:b.db\"\n",
            "[store]\npath = \"a.db\"\nmax_connections = 2\n",
            "[store]\nurl = \"postgresql://ca@db.example.com/x?sslmode=disable\"\n",
        ] {
            let text = format!("{EXAMPLE}\n{refused}");
            assert!(
                Config::parse(&text, Path::new("ca.toml"), data).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_none_alg_are_refused() {
        assert!(
            Config::parse(
                "[server]\nlisen = \"x\"\n",
                Path::new("ca.toml"),
                Path::new("/var/lib/shiftkey")
            )
            .is_err()
        );
        let text = "[oidc]\nissuer = \"https://x\"\nclient_id = \"c\"\nallowed_algs = [\"none\"]\n";
        assert!(
            Config::parse(text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey"))
                .unwrap_err()
                .to_string()
                .contains("never allowed")
        );
    }

    #[test]
    fn keys_default_to_files_and_name_token_keys_by_uri() {
        let parse =
            |text: &str| Config::parse(text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey"));
        let c = parse("").unwrap();
        assert_eq!(c.keys, crate::keys::KeySettings::default());
        let uri = "pkcs11:token=shiftkey;object=user-ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/shiftkey/pin";
        let c = parse(&format!(
            "[keys]\nuser = \"{uri}\"\nalgorithm = \"ecdsa-p256\"\npkcs11_sessions = 2\n"
        ))
        .unwrap();
        assert!(matches!(c.keys.user, crate::signer::KeyLocation::Pkcs11(_)));
        assert_eq!(c.keys.host, crate::signer::KeyLocation::File);
        assert_eq!(c.keys.algorithm, crate::signer::KeyAlgorithm::EcdsaP256);
        assert_eq!(c.keys.pkcs11_sessions.get(), 2);
        // What `init` writes reads back as the same settings.
        let written = keys_section(&c.keys);
        assert_eq!(parse(&written).unwrap().keys, c.keys);
    }

    #[test]
    fn bad_key_settings_say_what_to_write() {
        let error = |text: &str| {
            Config::parse(text, Path::new("ca.toml"), Path::new("/var/lib/shiftkey"))
                .unwrap_err()
                .to_string()
        };
        assert!(error("[keys]\nuser = \"/etc/ca.key\"\n").contains("keys.user"));
        let pin_in_uri =
            "[keys]\nhost = \"pkcs11:token=t;object=o?module-path=/m.so&pin-value=1234\"\n";
        let e = error(pin_in_uri);
        assert!(e.contains("keys.host") && e.contains("pin-value"), "{e}");
        assert!(!e.contains("1234"), "{e}");
        assert!(error("[keys]\nalgorithm = \"rsa\"\n").contains("keys.algorithm"));
        assert!(error("[keys]\npkcs11_sessions = 0\n").contains("between 1 and 64"));
        assert!(error("[keys]\nuser_key = \"file\"\n").contains("unknown field"));
    }
}
