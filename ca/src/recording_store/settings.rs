//! `[recordings]` in `ca.toml`: the data directory's `recordings/` (the
//! default), or S3-compatible object storage that several replicas share.
//!
//! S3 credentials come from `credentials_file` (0600, TOML with
//! `access_key_id` and `secret_access_key`, optionally `session_token`) or,
//! when no file is named, from `SHIFTKEY_S3_ACCESS_KEY_ID` and
//! `SHIFTKEY_S3_SECRET_ACCESS_KEY` (and `SHIFTKEY_S3_SESSION_TOKEN`). They
//! are read when the store opens, never logged, and zeroized on drop.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::env_vars;

/// `[recordings]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    /// `s3://BUCKET/PREFIX`, or `file:DIR` [default: DATA_DIR/recordings].
    pub(crate) url: Option<String>,
    /// An S3-compatible server's URL (`https://s3.example.com`); AWS when
    /// left out. Plain `http://` only to a loopback address.
    pub(crate) endpoint: Option<String>,
    /// [default: us-east-1]
    pub(crate) region: Option<String>,
    /// TOML with `access_key_id`, `secret_access_key` (0600).
    pub(crate) credentials_file: Option<PathBuf>,
}

/// Which recording store to open (from `ca.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settings {
    /// A directory: `DIR/SESSION/NAME`.
    Local { dir: PathBuf },
    /// A bucket and a prefix in S3-compatible storage.
    S3(S3Settings),
}

/// Checked S3 settings; the credentials are read at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Settings {
    pub(crate) bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub(crate) prefix: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) region: String,
    pub(crate) credentials_file: Option<PathBuf>,
}

impl RawSettings {
    /// Relative paths resolve: a `file:` directory against the data
    /// directory, the credentials file against `base` (the config's).
    pub(crate) fn check(self, data_dir: &Path, base: &Path) -> Result<Settings, String> {
        let s3_only =
            self.endpoint.is_some() || self.region.is_some() || self.credentials_file.is_some();
        let Some(url) = self.url else {
            if s3_only {
                return Err("endpoint, region and credentials_file need url = \"s3://…\"".into());
            }
            return Ok(Settings::Local {
                dir: data_dir.join("recordings"),
            });
        };
        if let Some(dir) = url.strip_prefix("file:") {
            if s3_only {
                return Err("endpoint, region and credentials_file are for s3:// URLs".into());
            }
            return Ok(Settings::Local {
                dir: data_dir.join(dir),
            });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(format!(
                "url {url:?} is neither s3://BUCKET/PREFIX nor file:DIR"
            ));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3 to 63 of a-z, 0-9, '-', '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
        {
            return Err(format!("the prefix {prefix:?} has an empty, . or .. part"));
        }
        let endpoint = match self.endpoint {
            None => None,
            Some(text) => Some(check_endpoint(&text)?),
        };
        Ok(Settings::S3(S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint,
            region: self.region.unwrap_or_else(|| "us-east-1".to_owned()),
            credentials_file: self.credentials_file.map(|p| base.join(p)),
        }))
    }
}

/// `https://` anywhere, `http://` only to this machine.
fn check_endpoint(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("endpoint {text:?}: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => return Err(format!("endpoint {text:?} names no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "endpoint {text:?}: recordings go over https:// (plain http:// only to a loopback address)"
            ));
        }
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// S3 credentials, zeroized on drop, never shown.
pub(crate) struct Credentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: Zeroizing<String>,
    pub(crate) session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl S3Settings {
    /// The credentials from the file, or else from the environment.
    pub(crate) fn credentials(&self) -> Result<Credentials, String> {
        if let Some(path) = &self.credentials_file {
            return read_credentials(path);
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (
            var(env_vars::S3_ACCESS_KEY_ID),
            var(env_vars::S3_SECRET_ACCESS_KEY),
        ) {
            (Some(access_key_id), Some(secret)) => Ok(Credentials {
                access_key_id,
                secret_access_key: Zeroizing::new(secret),
                session_token: var(env_vars::S3_SESSION_TOKEN).map(Zeroizing::new),
            }),
            _ => Err(format!(
                "no S3 credentials\nhint: set [recordings] credentials_file, or {} and {}",
                env_vars::S3_ACCESS_KEY_ID,
                env_vars::S3_SECRET_ACCESS_KEY
            )),
        }
    }
}

fn read_credentials(path: &Path) -> Result<Credentials, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: cannot read the S3 credentials: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown}: the S3 credentials may be read by group or others (mode {:o})\nhint: chmod 600 {shown}",
            mode & 0o777
        ));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("{shown}: cannot read the S3 credentials: {e}"))?,
    );
    // The parser's message may quote the file: say only where it failed.
    let raw: RawCredentials = toml::from_str(&text).map_err(|e| {
        format!(
            "{shown}: not access_key_id = \"…\" and secret_access_key = \"…\" (at {:?})",
            e.span()
        )
    })?;
    Ok(Credentials {
        access_key_id: raw.access_key_id,
        secret_access_key: Zeroizing::new(raw.secret_access_key),
        session_token: raw.session_token.map(Zeroizing::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Settings, String> {
        let raw: RawSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.check(Path::new("/var/lib/shiftkey"), Path::new("/etc/shiftkey"))
    }

    #[test]
    fn s3_urls_name_a_bucket_and_a_prefix() {
        assert_eq!(
            check("").unwrap(),
            Settings::Local {
                dir: "/var/lib/shiftkey/recordings".into()
            }
        );
        let Settings::S3(s3) = check(
            "url = \"s3://rec-1/prod/ca/\"\nendpoint = \"http://127.0.0.1:9000\"\ncredentials_file = \"s3.toml\"",
        )
        .unwrap() else {
            panic!("not S3")
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("rec-1", "prod/ca")
        );
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(
            s3.credentials_file.as_deref(),
            Some(Path::new("/etc/shiftkey/s3.toml"))
        );
        for refused in [
            "url = \"s3://UPPER/x\"",
            "url = \"s3://ok-bucket/a/../b\"",
            "url = \"s3://ok-bucket/x\"\nendpoint = \"http://s3.example.com\"",
            "url = \"ftp://x\"",
            "endpoint = \"https://s3.example.com\"",
            "url = \"s3://ok-bucket\"\nsecret = \"x\"",
        ] {
            assert!(check(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn credentials_files_must_be_private_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3.toml");
        std::fs::write(
            &path,
            "access_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"wJalrXUtnFEMI-secret\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_credentials(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let credentials = read_credentials(&path).unwrap();
        assert_eq!(credentials.access_key_id, "AKIDEXAMPLE");
        assert!(!format!("{credentials:?}").contains("wJalr"));
        std::fs::write(
            &path,
            "access_key_id = \"A\"\nsecret_access_key = wJalr-unquoted\n",
        )
        .unwrap();
        let refused = read_credentials(&path).unwrap_err();
        assert!(!refused.contains("wJalr"), "{refused}");
    }

    use std::os::unix::fs::PermissionsExt;
}
