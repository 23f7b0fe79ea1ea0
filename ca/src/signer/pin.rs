//! The token PIN: from the file the URI's `pin-source` names, else from
//! `SHIFTKEY_PKCS11_PIN`. Never from the URI itself (`pin-value` is refused
//! by the parser), never logged: it lives in a [`Secret`] (redacted `Debug`,
//! zeroized on drop) until it becomes cryptoki's `AuthPin` (the same).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

use super::uri::{PinSource, Pkcs11Uri};

/// Why no PIN could be had. None of these messages contains the PIN.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PinError {
    #[error("no PIN for the PKCS#11 token: add `pin-source=file:/path/to/pin` to the key's URI or set {var}", var = crate::env_vars::PKCS11_PIN)]
    Missing,
    #[error("{path}: cannot read the PKCS#11 PIN file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: mode {mode:o} lets other users read the PKCS#11 PIN; run `chmod 600 {path}` (owned by the CA's user)", path = path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{origin}: the PKCS#11 PIN is empty")]
    Empty { origin: String },
}

/// The PIN for `uri`: its `pin-source` file when it has one (that wins over
/// the environment, so two keys on two tokens can have two PINs), else
/// `env_pin` (the caller read [`crate::env_vars::PKCS11_PIN`]).
pub(super) fn resolve(uri: &Pkcs11Uri, env_pin: Option<&Secret>) -> Result<Secret, PinError> {
    match (&uri.pin_source, env_pin) {
        (Some(PinSource::File(path)), _) => read_file(path),
        (None, Some(pin)) if pin.expose().is_empty() => Err(PinError::Empty {
            origin: crate::env_vars::PKCS11_PIN.to_owned(),
        }),
        (None, Some(pin)) => Ok(Secret::new(pin.expose().to_owned())),
        (None, None) => Err(PinError::Missing),
    }
}

/// Reads a PIN file: refused when group or others may read it; one trailing
/// newline (as `echo` writes) is not part of the PIN.
fn read_file(path: &Path) -> Result<Secret, PinError> {
    let read_error = |source| PinError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_error)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PinError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(read_error)?);
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(PinError::Empty {
            origin: path.display().to_string(),
        });
    }
    Ok(Secret::new(text.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    fn uri_with(pin_source: Option<&Path>) -> Pkcs11Uri {
        let mut text = "pkcs11:object=k?module-path=/m.so".to_owned();
        if let Some(p) = pin_source {
            text.push_str(&format!("&pin-source=file:{}", p.display()));
        }
        text.parse().unwrap()
    }

    fn write(path: &Path, text: &str, mode: u32) {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn file_wins_over_env_and_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        write(&path, "1234\n", 0o600);
        let env = Secret::new("9999".into());
        let pin = resolve(&uri_with(Some(&path)), Some(&env)).unwrap();
        assert_eq!(pin.expose(), "1234");
        let pin = resolve(&uri_with(None), Some(&env)).unwrap();
        assert_eq!(pin.expose(), "9999");
    }

    #[test]
    fn no_pin_a_readable_file_or_an_empty_pin_is_refused_without_showing_it() {
        assert!(matches!(
            resolve(&uri_with(None), None),
            Err(PinError::Missing)
        ));
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        write(&open, "secret-pin", 0o644);
        let e = resolve(&uri_with(Some(&open)), None).unwrap_err();
        assert!(
            matches!(e, PinError::Permissions { mode: 0o644, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("chmod 600"));
        assert!(!format!("{e} {e:?}").contains("secret-pin"));
        let empty = dir.path().join("empty");
        write(&empty, "\n", 0o600);
        assert!(matches!(
            resolve(&uri_with(Some(&empty)), None),
            Err(PinError::Empty { .. })
        ));
        assert!(matches!(
            resolve(&uri_with(None), Some(&Secret::new(String::new()))),
            Err(PinError::Empty { .. })
        ));
        let missing = dir.path().join("missing");
        assert!(matches!(
            resolve(&uri_with(Some(&missing)), None),
            Err(PinError::Read { .. })
        ));
    }
}
