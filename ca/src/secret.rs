//! Key material in memory.
//!
//! [`CaKey`] is the only way the CA holds a private key: it cannot be printed
//! (its `Debug` shows the public fingerprint only), and the key inside is
//! zeroized when it is dropped (ssh-key's private key types zeroize on drop;
//! we never copy the private bytes out).

use std::fmt;

use ssh_key::{HashAlg, PrivateKey};

/// A CA signing key, loaded and decrypted.
pub(crate) struct CaKey {
    // INVARIANT: never encrypted here; `keys::load` decrypts before building one.
    key: PrivateKey,
    /// `SHA256:...`, for `Debug`.
    fingerprint: String,
}

impl CaKey {
    pub(crate) fn new(key: PrivateKey) -> Result<Self, ssh_key::Error> {
        let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        Ok(Self { key, fingerprint })
    }

    pub(crate) fn signing_key(&self) -> &PrivateKey {
        &self.key
    }

    pub(crate) fn public_key(&self) -> &ssh_key::PublicKey {
        self.key.public_key()
    }
}

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaKey")
            .field("fingerprint", &self.fingerprint)
            .field("private", &"<redacted>")
            .finish()
    }
}

/// A passphrase or other short secret string: redacted in `Debug`, zeroized on drop.
pub(crate) struct Secret(zeroize::Zeroizing<String>);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(zeroize::Zeroizing::new(value))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::Algorithm;

    #[test]
    fn debug_never_shows_private_material() {
        let key = PrivateKey::random(&mut crate::keys::rng(), Algorithm::Ed25519).unwrap();
        let pem = key.to_openssh(ssh_key::LineEnding::LF).unwrap();
        let ca = CaKey::new(key).unwrap();
        let shown = format!("{ca:?}");
        assert!(shown.contains("SHA256:"));
        assert!(!shown.contains(pem.lines().nth(1).unwrap()));
        assert_eq!(
            format!("{:?}", Secret::new("hunter2".into())),
            "Secret(<redacted>)"
        );
    }
}
