//! The ID token cache: one file per CA, `$XDG_RUNTIME_DIR/shiftkey/token-HASH`, holding
//! the compact JWT and nothing else, readable by its owner only, kept until
//! the token expires. Refresh tokens are never written here.
//!
//! Without `$XDG_RUNTIME_DIR` (a tmpfs per login session) there is no cache
//! and the CLI keeps the token in memory only: a home directory would
//! outlive the session and may be backed up.

use std::ffi::OsStr;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::token::MAX_TOKEN_LEN;
use super::{Error, IdToken};

/// Under the runtime directory.
const CACHE_DIR: &str = "shiftkey";
const CACHE_FILE: &str = "token";
/// The cache directory and file are their owner's alone.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// `$XDG_RUNTIME_DIR/shiftkey/token`, or `None` (keep the token in memory)
/// when the variable is unset, empty or not absolute.
pub(crate) fn cache_path() -> Option<PathBuf> {
    cache_path_in(std::env::var_os(crate::env_vars::XDG_RUNTIME_DIR).as_deref())
}

/// The cache file for the token of the CA at `ca`: one file per CA, so a
/// token obtained for one CA is never sent to another (a typo in `--ca`, or
/// a CA that would replay it).
pub(crate) fn cache_path_for(ca: &str) -> Option<PathBuf> {
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(ca.trim_end_matches('/').as_bytes()));
    cache_path().map(|path| path.with_file_name(format!("{CACHE_FILE}-{}", &digest[..16])))
}

/// [`cache_path`] for a given `$XDG_RUNTIME_DIR` value.
fn cache_path_in(runtime_dir: Option<&OsStr>) -> Option<PathBuf> {
    let dir = Path::new(runtime_dir?);
    // The spec says to ignore a relative path.
    dir.is_absolute()
        .then(|| dir.join(CACHE_DIR).join(CACHE_FILE))
}

/// Writes `token` to `path` atomically (temporary file, then rename), the
/// file 0600 and its directory 0700.
pub(crate) fn save(token: &IdToken, path: &Path) -> Result<(), Error> {
    let write_error = |source| Error::CacheWrite {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| write_error(ErrorKind::InvalidInput.into()))?;
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(write_error)?;
    // An existing directory keeps its mode: tighten it (fails unless ours).
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(write_error)?;

    let file_name = path
        .file_name()
        .ok_or_else(|| write_error(ErrorKind::InvalidInput.into()))?;
    let mut temp_name = file_name.to_owned();
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    // A leftover from a crashed run of this process ID.
    let _ = fs::remove_file(&temp);
    let written = write_new(&temp, token.secret()).and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(write_error)
}

fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// The cached token, or `None` when there is none usable. An expired (or
/// about to expire), unreadable, malformed or group/world-accessible cache
/// file is deleted.
pub(crate) fn load(path: &Path) -> Option<IdToken> {
    load_at(path, Utc::now())
}

/// [`load`] with the current time given.
fn load_at(path: &Path, now: DateTime<Utc>) -> Option<IdToken> {
    let meta = fs::symlink_metadata(path).ok()?;
    // Only a private regular file is trusted to be ours.
    let usable = meta.is_file() && meta.permissions().mode() & 0o077 == 0;
    let token = usable.then(|| read_token(path)).flatten();
    match token {
        Some(token) if !token.is_expired_at(now) => Some(token),
        _ => {
            let _ = remove(path);
            None
        }
    }
}

fn read_token(path: &Path) -> Option<IdToken> {
    let file = fs::File::open(path).ok()?;
    let mut text = Zeroizing::new(String::new());
    // One byte over the limit is enough to refuse an oversized file.
    let limit = u64::try_from(MAX_TOKEN_LEN + 2).unwrap_or(u64::MAX);
    file.take(limit).read_to_string(&mut text).ok()?;
    IdToken::parse_unverified(&text).ok()
}

/// Deletes the cached token (`shiftkey logout`); no cache is not an error.
pub(crate) fn remove(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(Error::CacheWrite {
            path: path.to_owned(),
            source: err,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn token(exp: i64, email: &str) -> Result<IdToken, Error> {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        IdToken::parse_unverified(&format!(
            "{}.{}.c2ln",
            b64(r#"{"alg":"ES256","kid":"k"}"#),
            b64(&format!(r#"{{"exp":{exp},"email":"{email}"}}"#))
        ))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_default()
    }

    #[test]
    fn cache_path_needs_an_absolute_runtime_dir() {
        assert_eq!(
            cache_path_in(Some(OsStr::new("/run/user/1000"))),
            Some(PathBuf::from("/run/user/1000/shiftkey/token"))
        );
        assert_eq!(cache_path_in(None), None);
        assert_eq!(cache_path_in(Some(OsStr::new(""))), None);
        assert_eq!(cache_path_in(Some(OsStr::new("run/user"))), None);
    }

    #[test]
    fn save_then_load_round_trips_with_private_modes() -> anyhow::Result<()> {
        let runtime = tempfile::tempdir()?;
        let path =
            cache_path_in(Some(runtime.path().as_os_str())).ok_or(anyhow::anyhow!("no path"))?;
        let saved = token(Utc::now().timestamp() + 600, "alice@example.com")?;
        save(&saved, &path)?;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().ok_or(anyhow::anyhow!("no dir"))?), 0o700);
        let loaded = load(&path).ok_or(anyhow::anyhow!("nothing loaded"))?;
        assert_eq!(loaded.secret(), saved.secret());
        assert_eq!(loaded.email.as_deref(), Some("alice@example.com"));
        assert_eq!(loaded.expires_at, saved.expires_at);

        // Saving again replaces the file and leaves no temporary behind.
        let newer = token(Utc::now().timestamp() + 900, "alice@example.com")?;
        save(&newer, &path)?;
        let names: Vec<_> = fs::read_dir(path.parent().ok_or(anyhow::anyhow!("no dir"))?)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from("token")]);
        assert_eq!(load(&path).map(|t| t.expires_at), Some(newer.expires_at));
        Ok(())
    }

    #[test]
    fn save_tightens_an_existing_directory() -> anyhow::Result<()> {
        let runtime = tempfile::tempdir()?;
        let dir = runtime.path().join("shiftkey");
        fs::create_dir(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        save(
            &token(Utc::now().timestamp() + 600, "a@example.com")?,
            &dir.join("token"),
        )?;
        assert_eq!(mode(&dir), 0o700);
        Ok(())
    }

    #[test]
    fn expired_token_is_removed() -> anyhow::Result<()> {
        let runtime = tempfile::tempdir()?;
        let path = runtime.path().join("shiftkey/token");
        let now = Utc::now();
        save(&token(now.timestamp() + 600, "a@example.com")?, &path)?;
        // Still valid now, expired 10 minutes later.
        assert!(load_at(&path, now).is_some());
        assert!(load_at(&path, now + chrono::TimeDelta::minutes(10)).is_none());
        assert!(!path.exists());
        // Already expired when saved.
        save(&token(now.timestamp() - 1, "a@example.com")?, &path)?;
        assert!(load(&path).is_none());
        assert!(!path.exists());
        Ok(())
    }

    #[test]
    fn unsafe_or_garbage_files_are_removed() -> anyhow::Result<()> {
        let runtime = tempfile::tempdir()?;
        let path = runtime.path().join("token");
        save(
            &token(Utc::now().timestamp() + 600, "a@example.com")?,
            &path,
        )?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        assert!(load(&path).is_none());
        assert!(!path.exists());

        fs::write(&path, "not a jwt")?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        assert!(load(&path).is_none());
        assert!(!path.exists());

        assert!(load(&path).is_none(), "no file is no token");
        Ok(())
    }

    #[test]
    fn remove_is_idempotent() -> anyhow::Result<()> {
        let runtime = tempfile::tempdir()?;
        let path = runtime.path().join("shiftkey/token");
        save(
            &token(Utc::now().timestamp() + 600, "a@example.com")?,
            &path,
        )?;
        remove(&path)?;
        assert!(!path.exists());
        remove(&path)?;
        Ok(())
    }
}
