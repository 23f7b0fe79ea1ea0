//! The signer for `benches/signer.rs` and the PKCS#11 end-to-end tests,
//! which cannot reach the crate's `pub(crate)` internals. Not an API:
//! nothing else may use it, and it writes no audit row.
//!
//! Each method is a thin call into [`super`]: [`super::ensure`] to make or
//! find a key, [`CaSigner::certify`]/[`CaSigner::sshsig`] (the async paths
//! the CA uses, token calls on tokio's blocking pool) and their blocking
//! twins. Certificates are built as `issue::sign` and `hosts` build theirs.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Certificate, HashAlg, PublicKey};

use super::CaKind;
use super::file::rng;
use super::{CaSigner, KeyAlgorithm, KeyLocation, Pkcs11Options, Provenance};

/// A failure, as text: the signer's own message (what failed, what to do).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(String);

fn fail(e: impl std::fmt::Display) -> HarnessError {
    HarnessError(e.to_string())
}

/// One CA key, opened through the signer.
#[derive(Debug, Clone)]
pub struct Harness {
    signer: CaSigner,
}

impl Harness {
    /// A new key file for the user CA under `data_dir` (`keys/user_ca`,
    /// 0600), as `init` makes it, opened as the CA opens it.
    pub fn key_file(data_dir: &Path) -> Result<Self, HarnessError> {
        let options = Pkcs11Options::from_env();
        let (signer, _) = super::ensure(
            data_dir,
            CaKind::User,
            &KeyLocation::File,
            KeyAlgorithm::Ed25519,
            None,
            &options,
        )
        .map_err(fail)?;
        Ok(Self { signer })
    }

    /// The token key `uri` names, generated on the token with `algorithm`
    /// (`ed25519` or `ecdsa-p256`) when it does not exist; `true` when it
    /// was. The PIN comes from the URI's `pin-source` or
    /// `SHIFTKEY_PKCS11_PIN`; `sessions` is the pool size. `data_dir` is
    /// where the CA's data would be: nothing is written there.
    pub fn pkcs11(
        data_dir: &Path,
        uri: &str,
        algorithm: &str,
        sessions: usize,
    ) -> Result<(Self, bool), HarnessError> {
        let location: KeyLocation = uri.parse().map_err(fail)?;
        let algorithm: KeyAlgorithm = algorithm.parse().map_err(fail)?;
        let (signer, provenance) = super::ensure(
            data_dir,
            CaKind::User,
            &location,
            algorithm,
            None,
            &options(sessions),
        )
        .map_err(fail)?;
        Ok((Self { signer }, provenance == Provenance::Created))
    }

    /// The token key `uri` names, which must exist.
    pub fn open_pkcs11(data_dir: &Path, uri: &str, sessions: usize) -> Result<Self, HarnessError> {
        let location: KeyLocation = uri.parse().map_err(fail)?;
        let signer = super::open(data_dir, CaKind::User, &location, None, &options(sessions))
            .map_err(fail)?;
        Ok(Self { signer })
    }

    /// `TrustedUserCAKeys` / `@cert-authority` line, no comment.
    pub fn public_line(&self) -> &str {
        self.signer.public_line()
    }

    /// The public key as an OpenSSH line with `comment` (for a
    /// `TrustedUserCAKeys` file a reader can tell apart).
    pub fn public_line_with_comment(&self, comment: &str) -> Result<String, HarnessError> {
        let mut public = self.signer.public_key().clone();
        public.set_comment(comment);
        public.to_openssh().map_err(fail)
    }

    pub fn fingerprint(&self) -> &str {
        self.signer.fingerprint()
    }

    /// `ed25519` or `ecdsa-p256`.
    pub fn algorithm(&self) -> String {
        self.signer.algorithm().to_string()
    }

    /// `file` or the key's URI.
    pub fn location(&self) -> String {
        self.signer.location().to_string()
    }

    /// A user certificate for `subject` (an OpenSSH public key line) valid
    /// from a minute ago for `minutes`, on this thread.
    pub fn user_certificate(
        &self,
        subject: &str,
        principals: &[&str],
        serial: u64,
        minutes: u64,
    ) -> Result<String, HarnessError> {
        let builder = builder(subject, CertType::User, principals, serial, minutes)?;
        let cert = self.signer.certify_blocking(builder).map_err(fail)?;
        line(&cert)
    }

    /// [`user_certificate`](Self::user_certificate) through the async path
    /// the CA's request handlers use.
    pub async fn user_certificate_async(
        &self,
        subject: &str,
        principals: &[&str],
        serial: u64,
        minutes: u64,
    ) -> Result<String, HarnessError> {
        let builder = builder(subject, CertType::User, principals, serial, minutes)?;
        let cert = self.signer.certify(builder).await.map_err(fail)?;
        line(&cert)
    }

    /// A host certificate for `subject` naming `hostnames`, on this thread.
    pub fn host_certificate(
        &self,
        subject: &str,
        hostnames: &[&str],
        serial: u64,
        minutes: u64,
    ) -> Result<String, HarnessError> {
        let builder = builder(subject, CertType::Host, hostnames, serial, minutes)?;
        let cert = self.signer.certify_blocking(builder).map_err(fail)?;
        line(&cert)
    }

    /// An armored SSHSIG over `message` (SHA-512, as recording seals are),
    /// on this thread.
    pub fn sshsig(&self, namespace: &str, message: &[u8]) -> Result<String, HarnessError> {
        let sig = self
            .signer
            .sshsig_blocking(namespace, HashAlg::Sha512, message)
            .map_err(fail)?;
        sig.to_pem(ssh_key::LineEnding::LF).map_err(fail)
    }

    /// [`sshsig`](Self::sshsig) through the async path the CA uses.
    pub async fn sshsig_async(
        &self,
        namespace: &'static str,
        message: &[u8],
    ) -> Result<String, HarnessError> {
        let sig = self
            .signer
            .sshsig(namespace, HashAlg::Sha512, message.to_vec())
            .await
            .map_err(fail)?;
        sig.to_pem(ssh_key::LineEnding::LF).map_err(fail)
    }
}

fn options(sessions: usize) -> Pkcs11Options {
    let mut options = Pkcs11Options::from_env();
    options.sessions = NonZeroUsize::new(sessions).unwrap_or(super::DEFAULT_SESSIONS);
    options
}

fn builder(
    subject: &str,
    cert_type: CertType,
    principals: &[&str],
    serial: u64,
    minutes: u64,
) -> Result<Builder, HarnessError> {
    let subject = PublicKey::from_openssh(subject).map_err(fail)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(fail)?
        .as_secs();
    let mut builder = Builder::new_with_random_nonce(
        &mut rng(),
        subject.key_data().clone(),
        now.saturating_sub(60),
        now + minutes * 60,
    )
    .map_err(fail)?;
    builder
        .serial(serial)
        .and_then(|b| b.cert_type(cert_type))
        .and_then(|b| b.key_id(format!("harness-{serial}")))
        .map_err(fail)?;
    for principal in principals {
        builder.valid_principal(*principal).map_err(fail)?;
    }
    if cert_type == CertType::User {
        builder.extension("permit-pty", "").map_err(fail)?;
    }
    Ok(builder)
}

fn line(cert: &Certificate) -> Result<String, HarnessError> {
    cert.to_openssh().map_err(fail)
}
