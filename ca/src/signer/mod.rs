//! CA signing keys behind one type, wherever the private key lives.
//!
//! [`CaSigner`] signs user and host certificates (ssh-key's certificate
//! builder) and SSHSIG signatures (recording seals) with either
//! - a **key file** under the data directory ([`file`]:
//!   0600, optionally passphrase-encrypted, held in memory as a zeroizing
//!   [`CaKey`]), or
//! - a **PKCS#11 key** named by an RFC 7512 URI ([`uri`]): generated on the
//!   token, used there through a small pool of logged-in sessions
//!   ([`pkcs11`], [`pool`]). Its private half never enters this process.
//!
//! Never: copy a private key out of a token or write one for a PKCS#11 key;
//! return a signature the public key does not verify (every token signature
//! is checked before use); log a PIN or key; block an async worker on a
//! token call (the async methods sign on a blocking thread).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod encoding;
pub(crate) mod file;
#[doc(hidden)]
pub mod harness;
mod module;
mod pin;
mod pkcs11;
mod pool;
pub(crate) mod uri;

use std::fmt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ssh_key::certificate::Builder;
use ssh_key::public::KeyData;
use ssh_key::{Certificate, EcdsaCurve, HashAlg, PublicKey, Signature, SshSig};

use crate::secret::{CaKey, Secret};

pub(crate) use encoding::EncodingError;
pub(crate) use pin::PinError;
pub(crate) use uri::{Pkcs11Uri, UriError};

/// Sessions per PKCS#11 key when the configuration does not say.
pub(crate) const DEFAULT_SESSIONS: NonZeroUsize = match NonZeroUsize::new(4) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};
/// How long a signature waits for a free session before it fails: long
/// enough for a burst behind a slow token, short enough that a wedged token
/// turns into errors (and alerts) rather than requests that never answer.
pub(crate) const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature algorithms a CA key may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAlgorithm {
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256 (`ecdsa-sha2-nistp256`).
    EcdsaP256,
}

impl KeyAlgorithm {
    fn of(key: &KeyData) -> Option<Self> {
        match key.algorithm() {
            ssh_key::Algorithm::Ed25519 => Some(Self::Ed25519),
            ssh_key::Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            } => Some(Self::EcdsaP256),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        })
    }
}

impl FromStr for KeyAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256" | "p256" | "ecdsa" => Ok(Self::EcdsaP256),
            _ => Err(Error::UnknownAlgorithm { name: s.to_owned() }),
        }
    }
}

/// Which CA a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaKind {
    User,
    Host,
}

impl CaKind {
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            CaKind::User => "user_ca",
            CaKind::Host => "host_ca",
        }
    }

    /// `user` or `host`, as the store and the command line write it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CaKind::User => "user",
            CaKind::Host => "host",
        }
    }
}

/// Where a CA key lives, as `init --user-key`/`--host-key` and ca.toml
/// name it: `file` (the default) or a `pkcs11:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyLocation {
    /// `keys/user_ca` or `keys/host_ca` under the data directory.
    File,
    /// `keys/NAME` under the data directory (`file:NAME`): a key file
    /// `keys rotate` made.
    NamedFile(String),
    Pkcs11(Box<Pkcs11Uri>),
}

impl FromStr for KeyLocation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s == "file" {
            Ok(Self::File)
        } else if let Some(name) = s.strip_prefix("file:") {
            if !name.is_empty()
                && name.len() <= 64
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                Ok(Self::NamedFile(name.to_owned()))
            } else {
                Err(Error::UnknownLocation {
                    given: s.chars().take(40).collect(),
                })
            }
        } else if s
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
        {
            Ok(Self::Pkcs11(Box::new(s.parse()?)))
        } else {
            Err(Error::UnknownLocation {
                given: s.chars().take(40).collect(),
            })
        }
    }
}

impl fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("file"),
            Self::NamedFile(name) => write!(f, "file:{name}"),
            Self::Pkcs11(uri) => uri.fmt(f),
        }
    }
}

/// How PKCS#11 keys are used.
#[derive(Debug)]
pub(crate) struct Pkcs11Options {
    /// Logged-in sessions per key: this many signatures can be in flight
    /// on the token at once.
    pub(crate) sessions: NonZeroUsize,
    /// How long a signature waits for a free session.
    pub(crate) checkout_timeout: Duration,
    /// The PIN from [`crate::env_vars::PKCS11_PIN`], for URIs without
    /// `pin-source`.
    pub(crate) env_pin: Option<Secret>,
}

impl Pkcs11Options {
    /// Defaults, with the PIN from the environment if it is set.
    pub(crate) fn from_env() -> Self {
        Self {
            sessions: DEFAULT_SESSIONS,
            checkout_timeout: DEFAULT_CHECKOUT_TIMEOUT,
            env_pin: std::env::var(crate::env_vars::PKCS11_PIN)
                .ok()
                .map(Secret::new),
        }
    }
}

/// Whether [`ensure`] found the key or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provenance {
    Existing,
    Created,
}

/// Everything that can go wrong getting or using a CA key. Each message says
/// what to do; none contains a PIN or key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    KeyFile(#[from] file::Error),
    #[error(transparent)]
    Uri(#[from] UriError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(
        "`{given}` is not a CA key location: write `file`, `file:NAME` (a file under keys/) or a `pkcs11:` URI"
    )]
    UnknownLocation { given: String },
    #[error("`{name}` is not a CA key algorithm: write `ed25519` or `ecdsa-p256`")]
    UnknownAlgorithm { name: String },
    #[error(
        "{module}: cannot load the PKCS#11 module ({reason}); check module-path in the key's URI and that the library is installed"
    )]
    ModuleLoad { module: String, reason: String },
    #[error("{module}: the PKCS#11 module failed to initialise: {source}")]
    ModuleInit {
        module: String,
        source: cryptoki::error::Error,
    },
    #[error("{module}: the library ({library}) does not match the URI's library-* attributes")]
    LibraryMismatch { module: String, library: String },
    #[error(
        "no token matches {uri}; tokens present: {present}. Check token= (`pkcs11-tool --module {module} --list-token-slots` lists them)"
    )]
    TokenNotFound {
        uri: String,
        module: String,
        present: String,
    },
    #[error("{count} tokens match {uri} ({present}); add serial= or slot-id= to pick one")]
    TokenAmbiguous {
        uri: String,
        count: usize,
        present: String,
    },
    #[error("token `{token}`: the PIN is incorrect; fix the PIN file or {var} (a few more failures may lock the token)", var = crate::env_vars::PKCS11_PIN)]
    PinIncorrect { token: String },
    #[error(
        "token `{token}`: the user PIN is locked; unlock it with the security officer PIN (e.g. `softhsm2-util`/vendor tools) before starting the CA"
    )]
    PinLocked { token: String },
    #[error(
        "token `{token}` has no private key matching {uri}; check object=/id= (`pkcs11-tool --list-objects` lists them), or fix the URI in [keys] of ca.toml (`shiftkey-ca init` generates keys on the token)"
    )]
    ObjectNotFound { token: String, uri: String },
    #[error("token `{token}` has {count} private keys matching {uri}; add id= to name exactly one")]
    ObjectAmbiguous {
        token: String,
        uri: String,
        count: usize,
    },
    #[error(
        "token `{token}`: no public key object pairs with the private key {uri} (same label/id); Shiftkey reads the CA's public key from the token"
    )]
    PublicKeyMissing { token: String, uri: String },
    #[error(
        "token `{token}`: found a public key for {uri} but no private key; remove the stray public object before generating a key there"
    )]
    StrayPublicKey { token: String, uri: String },
    #[error("token `{token}`: the key {uri} is {found}, not an Ed25519 or ECDSA P-256 key")]
    UnsupportedKey {
        token: String,
        uri: String,
        found: String,
    },
    #[error("token `{token}`: the key {uri} is {found}, but {wanted} was asked for")]
    AlgorithmMismatch {
        token: String,
        uri: String,
        found: KeyAlgorithm,
        wanted: KeyAlgorithm,
    },
    #[error(
        "token `{token}`: the private key {uri} can leave the token (CKA_EXTRACTABLE or not CKA_SENSITIVE); generate a new key on the token with `shiftkey-ca init` under another object name instead"
    )]
    KeyExtractable { token: String, uri: String },
    #[error("token `{token}`: the private key {uri} may not sign (CKA_SIGN is false)")]
    KeyCannotSign { token: String, uri: String },
    #[error(
        "token `{token}`: the public and private objects of {uri} do not belong together (a test signature did not verify); fix their labels/ids"
    )]
    KeyPairMismatch { token: String, uri: String },
    #[error("token `{token}`: {encoding}")]
    Encoding {
        token: String,
        encoding: EncodingError,
    },
    #[error(
        "token `{token}`: the signature from the token does not verify under its public key; the token is faulty, refusing to use it"
    )]
    BadTokenSignature { token: String },
    #[error("token `{token}`: {operation} failed: {source}")]
    Token {
        token: String,
        operation: &'static str,
        source: cryptoki::error::Error,
    },
    #[error(
        "token `{token}`: all {sessions} sessions stayed busy for {waited:?}; the token is slower than the load (raise the session count if it allows more)"
    )]
    SessionsBusy {
        token: String,
        sessions: usize,
        waited: Duration,
    },
    #[error("cannot build the certificate or signature: {0}")]
    Build(ssh_key::Error),
    #[error("the signing thread stopped: {0}")]
    Join(String),
}

/// A CA key that can sign: cheap to clone (one shared key), `Send + Sync`.
#[derive(Clone)]
pub(crate) struct CaSigner {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    algorithm: KeyAlgorithm,
    public: PublicKey,
    public_line: String,
    fingerprint: String,
    /// For a key file: which one (`File` or `NamedFile`).
    file_location: KeyLocation,
}

enum Backend {
    File(CaKey),
    Pkcs11(pkcs11::Pkcs11Key),
}

impl fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CaSigner");
        d.field("fingerprint", &self.inner.fingerprint)
            .field("algorithm", &self.inner.algorithm);
        match &self.inner.backend {
            Backend::File(_) => d.field("location", &"file"),
            Backend::Pkcs11(key) => d.field("location", &key.uri().to_string()),
        };
        d.finish_non_exhaustive()
    }
}

/// Opens the CA key at `location`: for `File`, loads `keys/{user,host}_ca`
/// under `data_dir` (decrypting with `passphrase`); for a URI, finds the key
/// on its token, logs in and checks it (see [`pkcs11`]). Nothing is created.
pub(crate) fn open(
    data_dir: &Path,
    kind: CaKind,
    location: &KeyLocation,
    passphrase: Option<&Secret>,
    options: &Pkcs11Options,
) -> Result<CaSigner, Error> {
    match location {
        KeyLocation::File => CaSigner::from_ca_key(file::load(data_dir, kind, passphrase)?),
        KeyLocation::NamedFile(name) => CaSigner::from_ca_key_at(
            file::load_named(data_dir, name, passphrase)?,
            location.clone(),
        ),
        KeyLocation::Pkcs11(uri) => CaSigner::from_pkcs11(pkcs11::Pkcs11Key::open(uri, options)?),
    }
}

/// Creates the CA key at `location` if it does not exist yet, then opens it.
/// A key file that exists is refused (`file::Error::Exists`: never
/// overwritten); a token key that exists is used if it has `algorithm`,
/// else refused. Key files are always Ed25519 (`algorithm` must say so).
/// A new token key is generated on the token, sensitive and
/// non-extractable.
pub(crate) fn ensure(
    data_dir: &Path,
    kind: CaKind,
    location: &KeyLocation,
    algorithm: KeyAlgorithm,
    passphrase: Option<&Secret>,
    options: &Pkcs11Options,
) -> Result<(CaSigner, Provenance), Error> {
    match location {
        KeyLocation::File => {
            if algorithm != KeyAlgorithm::Ed25519 {
                return Err(Error::UnknownAlgorithm {
                    name: format!("{algorithm} (key files are ed25519)"),
                });
            }
            file::create(data_dir, kind, passphrase)?;
            let signer = CaSigner::from_ca_key(file::load(data_dir, kind, passphrase)?)?;
            Ok((signer, Provenance::Created))
        }
        KeyLocation::NamedFile(name) => {
            if algorithm != KeyAlgorithm::Ed25519 {
                return Err(Error::UnknownAlgorithm {
                    name: format!("{algorithm} (key files are ed25519)"),
                });
            }
            file::create_named(data_dir, kind, name, passphrase)?;
            let signer = CaSigner::from_ca_key_at(
                file::load_named(data_dir, name, passphrase)?,
                location.clone(),
            )?;
            Ok((signer, Provenance::Created))
        }
        KeyLocation::Pkcs11(uri) => {
            let (key, provenance) = pkcs11::Pkcs11Key::open_or_generate(uri, algorithm, options)?;
            Ok((CaSigner::from_pkcs11(key)?, provenance))
        }
    }
}

impl CaSigner {
    /// Wraps a loaded key file.
    pub(crate) fn from_ca_key(key: CaKey) -> Result<Self, Error> {
        Self::from_ca_key_at(key, KeyLocation::File)
    }

    /// Wraps a loaded key file that `location` names.
    fn from_ca_key_at(key: CaKey, location: KeyLocation) -> Result<Self, Error> {
        let public = key.public_key().clone();
        let mut signer = Self::new(Backend::File(key), public)?;
        if let Some(inner) = Arc::get_mut(&mut signer.inner) {
            inner.file_location = location;
        }
        Ok(signer)
    }

    fn from_pkcs11(key: pkcs11::Pkcs11Key) -> Result<Self, Error> {
        let public = PublicKey::from(key.public_key().clone());
        Self::new(Backend::Pkcs11(key), public)
    }

    fn new(backend: Backend, mut public: PublicKey) -> Result<Self, Error> {
        public.set_comment("");
        let algorithm =
            KeyAlgorithm::of(public.key_data()).ok_or_else(|| Error::UnknownAlgorithm {
                name: public.algorithm().to_string(),
            })?;
        let public_line = public.to_openssh().map_err(Error::Build)?;
        let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                algorithm,
                public,
                public_line,
                fingerprint,
                file_location: KeyLocation::File,
            }),
        })
    }

    pub(crate) fn public_key(&self) -> &PublicKey {
        &self.inner.public
    }

    /// One OpenSSH line, no comment: ready for `TrustedUserCAKeys`.
    pub(crate) fn public_line(&self) -> &str {
        &self.inner.public_line
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        self.inner.algorithm
    }

    /// Where the private key is: `file`, or the key's URI (safe to show:
    /// URIs never hold a PIN).
    pub(crate) fn location(&self) -> KeyLocation {
        match &self.inner.backend {
            Backend::File(_) => self.inner.file_location.clone(),
            Backend::Pkcs11(key) => KeyLocation::Pkcs11(Box::new(key.uri().clone())),
        }
    }

    /// Signs a certificate; on a token, on a blocking thread.
    pub(crate) async fn certify(&self, builder: Builder) -> Result<Certificate, Error> {
        self.run(move |signer| signer.certify_blocking(builder))
            .await
    }

    /// An SSHSIG over `message` (recording seals: namespace
    /// `shiftkey_wire::RECORDING_NAMESPACE`, SHA-512, as today); on a token,
    /// on a blocking thread.
    pub(crate) async fn sshsig(
        &self,
        namespace: &'static str,
        hash: HashAlg,
        message: Vec<u8>,
    ) -> Result<SshSig, Error> {
        self.run(move |signer| signer.sshsig_blocking(namespace, hash, &message))
            .await
    }

    /// [`certify`](Self::certify) on this thread: for CLI commands and
    /// blocking contexts, never on an async worker with a token key.
    pub(crate) fn certify_blocking(&self, builder: Builder) -> Result<Certificate, Error> {
        let attempt = Attempt::new(self);
        let result = builder.sign(&attempt);
        attempt.finish(result)
    }

    /// [`sshsig`](Self::sshsig) on this thread.
    pub(crate) fn sshsig_blocking(
        &self,
        namespace: &str,
        hash: HashAlg,
        message: &[u8],
    ) -> Result<SshSig, Error> {
        let attempt = Attempt::new(self);
        let result = SshSig::sign(&attempt, namespace, hash, message);
        attempt.finish(result)
    }

    /// Runs `job` inline for a key file (tens of microseconds) and on
    /// tokio's blocking pool for a token (a PKCS#11 call blocks its thread).
    async fn run<T, F>(&self, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&CaSigner) -> Result<T, Error> + Send + 'static,
    {
        match &self.inner.backend {
            Backend::File(_) => job(self),
            Backend::Pkcs11(_) => {
                let signer = self.clone();
                tokio::task::spawn_blocking(move || job(&signer))
                    .await
                    .map_err(|e| Error::Join(e.to_string()))?
            }
        }
    }

    /// One raw signature over `message` in SSH's encoding.
    fn sign_raw(&self, message: &[u8]) -> Result<Signature, Error> {
        match &self.inner.backend {
            Backend::File(key) => signature::Signer::try_sign(key.signing_key(), message)
                .map_err(|e| Error::Build(ssh_key::Error::from(e))),
            Backend::Pkcs11(key) => key.sign(message),
        }
    }
}

/// `CaSigner` as ssh-key's `SigningKey`: `builder.sign(&signer)` and
/// `SshSig::sign(&signer, ..)` work directly (the error is then ssh-key's,
/// with ours as its source); [`CaSigner::certify`] keeps ours typed.
impl signature::Signer<Signature> for CaSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, signature::Error> {
        self.sign_raw(message)
            .map_err(|e| signature::Error::from_source(Box::new(e)))
    }
}

impl From<&CaSigner> for KeyData {
    fn from(signer: &CaSigner) -> KeyData {
        signer.inner.public.key_data().clone()
    }
}

/// One signing call through ssh-key: remembers our typed error, which
/// ssh-key's `signature::Error` would otherwise flatten.
struct Attempt<'a> {
    signer: &'a CaSigner,
    failure: Mutex<Option<Error>>,
}

impl<'a> Attempt<'a> {
    fn new(signer: &'a CaSigner) -> Self {
        Self {
            signer,
            failure: Mutex::new(None),
        }
    }

    fn finish<T>(self, result: Result<T, ssh_key::Error>) -> Result<T, Error> {
        let failure = self
            .failure
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        match (result, failure) {
            (Ok(value), _) => Ok(value),
            (Err(_), Some(ours)) => Err(ours),
            (Err(theirs), None) => Err(Error::Build(theirs)),
        }
    }
}

impl signature::Signer<Signature> for Attempt<'_> {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, signature::Error> {
        self.signer.sign_raw(message).map_err(|e| {
            *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            signature::Error::new()
        })
    }
}

impl From<&Attempt<'_>> for KeyData {
    fn from(attempt: &Attempt<'_>) -> KeyData {
        KeyData::from(attempt.signer)
    }
}

#[cfg(test)]
mod tests;
