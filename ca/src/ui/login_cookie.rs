//! The pending sign-in, kept in the browser that started it: state, nonce,
//! PKCE verifier and where to go next, in a short-lived HttpOnly cookie
//! signed with HMAC-SHA256. The CA keeps nothing per sign-in, so strangers
//! cannot fill a table of them, and any replica holding the key (the
//! `ui-login.key` file in the data directory, copied with the CA keys)
//! finishes a sign-in another started.
//!
//! Never: accept a cookie whose signature or time does not check out.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The key file's name in the data directory.
pub(crate) const KEY_FILE: &str = "ui-login.key";

/// The HMAC key the login cookie is signed with.
pub(crate) struct LoginKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for LoginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginKey(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error(
        "{path}: {message}\nhint: it is 32 random bytes, mode 0600; delete it and restart to make a new one (sign-ins under way then start again)"
    )]
    Unusable { path: String, message: String },
}

impl LoginKey {
    /// Reads `DIR/ui-login.key`, creating it (0600, random) when missing.
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        use std::io::{Read, Write};
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = data_dir.join(KEY_FILE);
        let unusable = |message: String| KeyError::Unusable {
            path: path.display().to_string(),
            message,
        };
        let mut key = Zeroizing::new([0u8; 32]);
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
        {
            Ok(mut file) => {
                let mode = file
                    .metadata()
                    .map_err(|e| unusable(e.to_string()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(unusable("group or others may read it; chmod 600".into()));
                }
                let mut bytes = Zeroizing::new(Vec::new());
                file.read_to_end(&mut bytes)
                    .map_err(|e| unusable(e.to_string()))?;
                if bytes.len() != 32 {
                    return Err(unusable(format!("{} bytes, not 32", bytes.len())));
                }
                key.copy_from_slice(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use ssh_key::rand_core::Rng;
                crate::keys::rng().fill_bytes(key.as_mut());
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| unusable(e.to_string()))?;
                file.write_all(key.as_ref())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| unusable(e.to_string()))?;
            }
            Err(e) => return Err(unusable(e.to_string())),
        }
        Ok(Self(key))
    }

    /// A key from fixed bytes (tests and the fuzz target; the CA's own key
    /// comes from `load_or_create`).
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // INVARIANT: HMAC takes keys of any length.
        match Hmac::<Sha256>::new_from_slice(self.0.as_ref()) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        }
    }
}

// INVARIANT: `Hmac::new_from_slice` only fails for fixed-size-key MACs; HMAC
// takes any key length. A function rather than `expect` keeps the lint on.
#[allow(clippy::panic)]
fn unreachable_hmac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 accepts keys of any length")
}

/// A sign-in under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    pub(crate) next: String,
    /// Unix seconds after which the cookie is refused.
    pub(crate) expires: i64,
}

/// Why a login cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Malformed,
    BadSignature,
    Expired,
}

impl PendingLogin {
    pub(crate) fn new(
        state: String,
        nonce: String,
        verifier: String,
        next: String,
        ttl: Duration,
    ) -> Self {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(600);
        Self {
            state,
            nonce,
            verifier,
            next,
            expires: chrono::Utc::now().timestamp() + ttl,
        }
    }

    /// `base64url(JSON).base64url(HMAC-SHA256(key, base64url(JSON)))`.
    pub(crate) fn seal(&self, key: &LoginKey) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let mut mac = key.mac();
        mac.update(body.as_bytes());
        format!(
            "{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// The sign-in a cookie holds, if its signature and time check out at `now`.
    pub(crate) fn open(cookie: &str, key: &LoginKey, now: i64) -> Result<Self, Refused> {
        let (body, tag) = cookie.split_once('.').ok_or(Refused::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Refused::Malformed)?;
        let mut mac = key.mac();
        mac.update(body.as_bytes());
        // Constant time.
        mac.verify_slice(&tag).map_err(|_| Refused::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Refused::Malformed)?;
        let login: PendingLogin = serde_json::from_slice(&json).map_err(|_| Refused::Malformed)?;
        if now >= login.expires {
            return Err(Refused::Expired);
        }
        Ok(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> PendingLogin {
        PendingLogin::new(
            "state".into(),
            "nonce".into(),
            "verifier".into(),
            "/ui/".into(),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn a_sealed_login_opens_only_with_its_key_untampered_and_in_time() {
        let key = LoginKey::from_bytes([7; 32]);
        let sealed = login().seal(&key);
        let now = chrono::Utc::now().timestamp();
        assert_eq!(PendingLogin::open(&sealed, &key, now), Ok(login()));
        assert_eq!(
            PendingLogin::open(&sealed, &LoginKey::from_bytes([8; 32]), now),
            Err(Refused::BadSignature),
            "another replica's (or a stranger's) key"
        );
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut forged: PendingLogin =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        forged.next = "//evil.example".into();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap())
        );
        assert_eq!(
            PendingLogin::open(&forged, &key, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            PendingLogin::open(&sealed, &key, now + 601),
            Err(Refused::Expired)
        );
        for junk in ["", ".", "abc", "abc.def", "!!.!!"] {
            assert!(PendingLogin::open(junk, &key, now).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_key_file_is_made_once_private_and_refused_when_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = LoginKey::load_or_create(dir.path()).unwrap();
        let again = LoginKey::load_or_create(dir.path()).unwrap();
        assert_eq!(
            first.0.as_ref(),
            again.0.as_ref(),
            "replicas sharing the file agree"
        );
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(LoginKey::load_or_create(dir.path()).is_err());
    }
}
