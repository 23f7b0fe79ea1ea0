//! `[store] url = "postgresql://…"`: what the URL may say, checked when
//! `ca.toml` is read, and the driver's configuration made from it.
//!
//! `sslmode` (libpq's names, our semantics, fail closed):
//! - `verify-full` (the default over TCP): TLS, the server's certificate
//!   chain checked against `sslrootcert` (a PEM file) or the web roots, and
//!   its name against the URL's host;
//! - `verify-ca`: TLS, the chain checked but not the name;
//! - `require`: as `verify-full` (libpq would not check the certificate at
//!   all; we never send the password to a server we have not identified);
//! - `disable`: no TLS, only to a loopback address or a Unix socket (the
//!   default for a Unix socket);
//! - `prefer` and `allow` are refused: they fall back to clear text.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio_postgres::config::Host;

use super::SESSION_OPTIONS;
use super::tls;
use crate::store::OpenError;

/// Connections per replica when `[store] max_connections` is not given.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// How the connection to the database is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    VerifyCa,
    VerifyFull,
}

/// The checked `[store]` settings for PostgreSQL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The URL without our own parameters (the driver reads the rest). May
    /// hold a password: never shown (see `Debug` and `display`).
    driver_url: String,
    pub(crate) ssl_mode: SslMode,
    /// PEM file of the certificates that may sign the server's.
    pub(crate) root_cert: Option<PathBuf>,
    /// A file holding the database password (0600), instead of the URL.
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) max_connections: usize,
    /// `user@host:port/database`, for messages and logs.
    display: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.display)
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .field("password_file", &self.password_file)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// What the pool and the LISTEN connection connect with.
pub(super) struct Connect {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub(super) display: String,
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

impl Settings {
    /// Checks `url`; relative `sslrootcert` and `password_file` paths
    /// resolve against `base`.
    pub(crate) fn parse(
        url: &str,
        password_file: Option<PathBuf>,
        max_connections: Option<usize>,
        base: &Path,
    ) -> Result<Self, String> {
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            return Err("the store URL must start with postgresql://".into());
        }
        let (head, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut ssl_mode = None;
        let mut root_cert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = url::form_urlencoded::parse(pair.as_bytes()).next() else {
                continue;
            };
            match key.as_ref() {
                "sslmode" => ssl_mode = Some(value.into_owned()),
                "sslrootcert" => root_cert = Some(base.join(value.as_ref())),
                "sslcert" | "sslkey" | "sslpassword" => {
                    return Err(format!(
                        "{key}: client certificates are not supported\nhint: authenticate with a password (password_file in [store]) over TLS"
                    ));
                }
                _ => kept.push(pair),
            }
        }
        let driver_url = if kept.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", kept.join("&"))
        };
        let config = tokio_postgres::Config::from_str(&driver_url)
            .map_err(|e| format!("the store URL is not a PostgreSQL URL: {e}"))?;
        let hosts = config.get_hosts();
        if hosts.is_empty() {
            return Err("the store URL names no host".into());
        }
        let all_unix = hosts.iter().all(|h| matches!(h, Host::Unix(_)));
        let any_unix = hosts.iter().any(|h| matches!(h, Host::Unix(_)));
        let ssl_mode = match ssl_mode.as_deref() {
            None if all_unix => SslMode::Disable,
            None | Some("verify-full" | "require") => SslMode::VerifyFull,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("disable") => SslMode::Disable,
            Some(other @ ("prefer" | "allow")) => {
                return Err(format!(
                    "sslmode={other} falls back to an unencrypted connection\nhint: use sslmode=verify-full (the default), or disable for a loopback address or a Unix socket"
                ));
            }
            Some(other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, require, verify-ca, verify-full"
                ));
            }
        };
        if ssl_mode == SslMode::Disable && !hosts.iter().all(is_loopback) {
            return Err(
                "sslmode=disable would send the rows and the password in clear over the network\nhint: only a loopback address or a Unix socket may go without TLS; use sslmode=verify-full with sslrootcert=CA.pem"
                    .into(),
            );
        }
        if ssl_mode != SslMode::Disable && any_unix {
            return Err(
                "a Unix socket takes no TLS\nhint: use sslmode=disable with a Unix socket host"
                    .into(),
            );
        }
        if max_connections == Some(0) {
            return Err("max_connections must be at least 1".into());
        }
        let display = describe(&config);
        Ok(Self {
            driver_url,
            ssl_mode,
            root_cert,
            password_file: password_file.map(|p| base.join(p)),
            max_connections: max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            display,
        })
    }

    /// `user@host:port/database`: no password, whatever the URL holds.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The driver's configuration and TLS connector; reads the password
    /// and root certificate files.
    pub(super) fn connect(&self) -> Result<Connect, OpenError> {
        let open_err = |message: String| OpenError::Open {
            path: self.display.clone().into(),
            message,
        };
        let mut config = tokio_postgres::Config::from_str(&self.driver_url)
            .map_err(|e| open_err(e.to_string()))?;
        if let Some(path) = &self.password_file {
            let password = read_password(path).map_err(open_err)?;
            config.password(password.as_bytes());
        }
        config.ssl_mode(match self.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        let options = format!(
            "{} {SESSION_OPTIONS}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        if config.get_application_name().is_none() {
            config.application_name("shiftkey-ca");
        }
        config.connect_timeout(super::POOL_WAIT);
        config.keepalives_idle(std::time::Duration::from_secs(30));
        let tls = tls::connector(self.ssl_mode, self.root_cert.as_deref()).map_err(open_err)?;
        Ok(Connect {
            config,
            tls,
            display: self.display.clone(),
        })
    }
}

/// The password file's first line; refused if group or others may read it.
fn read_password(path: &Path) -> Result<zeroize::Zeroizing<String>, String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| format!("{shown}: cannot read the database password: {e}"))?;
    let mode = file
        .metadata()
        .map_err(|e| format!("{shown}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown}: the database password may be read by group or others (mode {:o})\nhint: chmod 600 {shown}",
            mode & 0o777
        ));
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| format!("{shown}: {e}"))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(format!("{shown}: the database password file is empty"));
    }
    Ok(zeroize::Zeroizing::new(line))
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map_or_else(|| "5432".to_owned(), u16::to_string);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Settings, String> {
        Settings::parse(url, None, None, Path::new("/etc/shiftkey"))
    }

    #[test]
    fn tls_is_verified_by_default_and_clear_text_only_on_loopback() {
        let s = parse("postgresql://ca@db.example.com/shiftkey").unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyFull);
        let s = parse("postgresql://ca@db.example.com/shiftkey?sslmode=require").unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyFull, "require checks too");
        let s =
            parse("postgresql://ca@db.example.com/x?sslmode=verify-ca&sslrootcert=ca.pem").unwrap();
        assert_eq!(s.ssl_mode, SslMode::VerifyCa);
        assert_eq!(
            s.root_cert.as_deref(),
            Some(Path::new("/etc/shiftkey/ca.pem"))
        );
        for refused in [
            "postgresql://ca@db.example.com/x?sslmode=disable",
            "postgresql://ca@db.example.com/x?sslmode=prefer",
            "postgresql://ca@db.example.com/x?sslmode=allow",
            "postgresql://ca@db.example.com/x?sslmode=bogus",
            "postgresql://ca@db.example.com/x?sslcert=c.pem",
            "postgresql://ca@%2Frun%2Fpostgresql/x?sslmode=verify-full",
            "mysql://ca@db/x",
        ] {
            assert!(parse(refused).is_err(), "{refused} is refused");
        }
        let s = parse("postgresql://ca@127.0.0.1:5433/x?sslmode=disable").unwrap();
        assert_eq!(s.ssl_mode, SslMode::Disable);
        let s = parse("postgresql://ca@%2Frun%2Fpostgresql/x").unwrap();
        assert_eq!(s.ssl_mode, SslMode::Disable, "a Unix socket needs no TLS");
    }

    #[test]
    fn the_password_is_never_shown() {
        let s = parse("postgresql://ca:hunter2-secret@db.example.com:6432/shiftkey").unwrap();
        assert_eq!(s.display(), "postgresql://ca@db.example.com:6432/shiftkey");
        assert!(!format!("{s:?}").contains("hunter2"));
        // The driver still gets the other parameters.
        let s = parse("postgresql://ca@db.example.com/x?application_name=a&sslmode=verify-full")
            .unwrap();
        assert!(s.driver_url.ends_with("?application_name=a"));
    }
}
