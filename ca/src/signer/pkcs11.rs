//! A CA key on a PKCS#11 token, used through a pool of logged-in sessions.
//!
//! Opening a key checks, before it signs anything: exactly one token and one
//! private key match the URI; the key is Ed25519 (`CKK_EC_EDWARDS`,
//! `CKM_EDDSA`) or P-256 (`CKK_EC`, `CKM_ECDSA` over a SHA-256 digest made
//! here); it may sign, is `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`; its
//! public key (read from the token's public object) verifies a test
//! signature. Every signature the token returns is verified before use.
//!
//! Generating makes the pair on the token (`C_GenerateKeyPair`): the private
//! half is created `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not
//! `CKA_EXTRACTABLE`, and no code here reads a private key value.
//!
//! Every call here blocks; [`super::CaSigner`] runs them on tokio's blocking
//! pool.

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256};
use signature::Verifier;
use ssh_key::Signature;
use ssh_key::public::KeyData;

use super::module::{self, Token};
use super::pool::{Checkout, Pool};
use super::uri::Pkcs11Uri;
use super::{Error, KeyAlgorithm, Pkcs11Options, Provenance, encoding, pin};

/// Signed once at open to prove the public object pairs with the private one.
const SELF_TEST: &[u8] = b"shiftkey: does this token key match its public key?";
/// Bytes of a generated CKA_ID when the URI does not give one.
const GENERATED_ID_LEN: usize = 16;

/// An opened, checked token key.
pub(super) struct Pkcs11Key {
    uri: Pkcs11Uri,
    algorithm: KeyAlgorithm,
    public: KeyData,
    link: Link,
    pool: Pool<KeySession>,
}

/// What opening another session needs.
struct Link {
    context: Pkcs11,
    slot: Slot,
    token: String,
    uri: String,
    pin: AuthPin,
    /// Finds exactly the private key (class + the URI's label/id, or the id
    /// read from the key at open).
    find: Vec<Attribute>,
}

/// A logged-in session and the key's handle in it.
struct KeySession {
    session: Session,
    key: ObjectHandle,
}

impl Pkcs11Key {
    /// Finds and checks the key the URI names; creates nothing.
    pub(super) fn open(uri: &Pkcs11Uri, options: &Pkcs11Options) -> Result<Self, Error> {
        let (link, session) = connect(uri, options, false)?;
        Self::finish_open(uri, options, link, session)
    }

    /// [`open`](Self::open), generating the key pair on the token first when
    /// no object matches. An existing key must have `algorithm`.
    pub(super) fn open_or_generate(
        uri: &Pkcs11Uri,
        algorithm: KeyAlgorithm,
        options: &Pkcs11Options,
    ) -> Result<(Self, Provenance), Error> {
        let (link, session) = connect(uri, options, true)?;
        let privates = link.find_objects(&session, ObjectClass::PRIVATE_KEY, uri)?;
        let provenance = if privates.is_empty() {
            if !link
                .find_objects(&session, ObjectClass::PUBLIC_KEY, uri)?
                .is_empty()
            {
                return Err(Error::StrayPublicKey {
                    token: link.token.clone(),
                    uri: link.uri.clone(),
                });
            }
            generate(&link, &session, uri, algorithm)?;
            Provenance::Created
        } else {
            Provenance::Existing
        };
        // Generation needed a read-write session; signing does not.
        drop(session);
        let (link, session) = connect(uri, options, false)?;
        let key = Self::finish_open(uri, options, link, session)?;
        if key.algorithm != algorithm {
            return Err(Error::AlgorithmMismatch {
                token: key.link.token.clone(),
                uri: key.link.uri.clone(),
                found: key.algorithm,
                wanted: algorithm,
            });
        }
        Ok((key, provenance))
    }

    fn finish_open(
        uri: &Pkcs11Uri,
        options: &Pkcs11Options,
        mut link: Link,
        session: Session,
    ) -> Result<Self, Error> {
        let private = link.one_private(&session, uri)?;
        let (algorithm, id) = link.check_private(&session, private)?;
        // Pair the public object by the private key's own CKA_ID when the
        // URI only gave a label: two keys may share a label, not an id.
        if let (None, Some(id)) = (&uri.id, id) {
            link.find.push(Attribute::Id(id));
        }
        let public = link.read_public(&session, algorithm)?;
        let first = KeySession {
            session,
            key: private,
        };
        let key = Self {
            uri: uri.clone(),
            algorithm,
            public,
            pool: Pool::new(options.sessions.get(), options.checkout_timeout, first),
            link,
        };
        match key.sign(SELF_TEST) {
            Ok(_) => Ok(key),
            Err(Error::BadTokenSignature { .. }) => Err(Error::KeyPairMismatch {
                token: key.link.token.clone(),
                uri: key.link.uri.clone(),
            }),
            Err(e) => Err(e),
        }
    }

    pub(super) fn uri(&self) -> &Pkcs11Uri {
        &self.uri
    }

    pub(super) fn public_key(&self) -> &KeyData {
        &self.public
    }

    /// Signs `message` on the token as SSH signs with this key type, and
    /// verifies the result. A pooled session the token closed or logged out
    /// under us is dropped and the signature tried again, until a freshly
    /// opened session fails too; every other failure is returned.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Signature, Error> {
        let raw = loop {
            let lease = self
                .pool
                .checkout(|| self.link.open_session())
                .map_err(|e| match e {
                    Checkout::Busy { waited } => Error::SessionsBusy {
                        token: self.link.token.clone(),
                        sessions: self.pool.size(),
                        waited,
                    },
                    Checkout::Open(e) => e,
                })?;
            match self.sign_on(&lease, message) {
                Ok(raw) => break raw,
                Err(source) if session_lost(&source) => {
                    let fresh = lease.is_fresh();
                    lease.discard();
                    if fresh {
                        return Err(self.link.error("C_Sign", source));
                    }
                    tracing::warn!(token = %self.link.token, error = %source, "PKCS#11 session lost; trying a new one");
                }
                Err(source) => return Err(self.link.error("C_Sign", source)),
            }
        };
        let signature =
            encoding::signature(self.algorithm, &raw).map_err(|encoding| Error::Encoding {
                token: self.link.token.clone(),
                encoding,
            })?;
        self.public
            .verify(message, &signature)
            .map_err(|_| Error::BadTokenSignature {
                token: self.link.token.clone(),
            })?;
        Ok(signature)
    }

    fn sign_on(&self, s: &KeySession, message: &[u8]) -> Result<Vec<u8>, CkError> {
        match self.algorithm {
            KeyAlgorithm::Ed25519 => s.session.sign(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                s.key,
                message,
            ),
            KeyAlgorithm::EcdsaP256 => {
                let digest = Sha256::digest(message);
                s.session.sign(&Mechanism::Ecdsa, s.key, &digest)
            }
        }
    }
}

/// Errors after which the session, or the key handle it holds, is gone and
/// a new session may work: the token closed it, or logged the application
/// out (private objects then vanish from every session, so their handles
/// go invalid).
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
            _
        )
    )
}

/// Loads the module, finds the token, resolves the PIN and opens the first
/// logged-in session.
fn connect(
    uri: &Pkcs11Uri,
    options: &Pkcs11Options,
    read_write: bool,
) -> Result<(Link, Session), Error> {
    let context = module::load(uri)?;
    let Token { slot, label } = module::find_token(&context, uri)?;
    let secret = pin::resolve(uri, options.env_pin.as_ref())?;
    let mut find = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    find.extend(identity(uri));
    let link = Link {
        context,
        slot,
        token: label,
        uri: uri.to_string(),
        pin: AuthPin::new(secret.expose().into()),
        find,
    };
    let session = link.open_logged_in(read_write)?;
    Ok((link, session))
}

/// The URI's object label and id as a search template.
fn identity(uri: &Pkcs11Uri) -> Vec<Attribute> {
    let mut template = Vec::new();
    if let Some(label) = &uri.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    }
    template
}

impl Link {
    fn error(&self, operation: &'static str, source: CkError) -> Error {
        Error::Token {
            token: self.token.clone(),
            operation,
            source,
        }
    }

    fn open_logged_in(&self, read_write: bool) -> Result<Session, Error> {
        let session = if read_write {
            self.context.open_rw_session(self.slot)
        } else {
            self.context.open_ro_session(self.slot)
        }
        .map_err(|e| self.error("C_OpenSession", e))?;
        // Login state is per token for the whole process: the second
        // session finds the user already logged in.
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(Error::PinIncorrect {
                token: self.token.clone(),
            }),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Error::PinLocked {
                token: self.token.clone(),
            }),
            Err(e) => Err(self.error("C_Login", e)),
        }
    }

    /// A new pooled session with the key's handle in it.
    fn open_session(&self) -> Result<KeySession, Error> {
        let session = self.open_logged_in(false)?;
        let found = session
            .find_objects(&self.find)
            .map_err(|e| self.error("C_FindObjects", e))?;
        match found.as_slice() {
            [key] => Ok(KeySession { key: *key, session }),
            [] => Err(Error::ObjectNotFound {
                token: self.token.clone(),
                uri: self.uri.clone(),
            }),
            more => Err(Error::ObjectAmbiguous {
                token: self.token.clone(),
                uri: self.uri.clone(),
                count: more.len(),
            }),
        }
    }

    fn find_objects(
        &self,
        session: &Session,
        class: ObjectClass,
        uri: &Pkcs11Uri,
    ) -> Result<Vec<ObjectHandle>, Error> {
        let mut template = vec![Attribute::Class(class)];
        template.extend(identity(uri));
        session
            .find_objects(&template)
            .map_err(|e| self.error("C_FindObjects", e))
    }

    fn one_private(&self, session: &Session, uri: &Pkcs11Uri) -> Result<ObjectHandle, Error> {
        match self
            .find_objects(session, ObjectClass::PRIVATE_KEY, uri)?
            .as_slice()
        {
            [key] => Ok(*key),
            [] => Err(Error::ObjectNotFound {
                token: self.token.clone(),
                uri: self.uri.clone(),
            }),
            more => Err(Error::ObjectAmbiguous {
                token: self.token.clone(),
                uri: self.uri.clone(),
                count: more.len(),
            }),
        }
    }

    /// The private key's algorithm and CKA_ID, after checking it may sign
    /// and can never leave the token.
    fn check_private(
        &self,
        session: &Session,
        key: ObjectHandle,
    ) -> Result<(KeyAlgorithm, Option<Vec<u8>>), Error> {
        let attributes = session
            .get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::Sign,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Id,
                ],
            )
            .map_err(|e| self.error("C_GetAttributeValue", e))?;
        let (mut key_type, mut params, mut id) = (None, None, None);
        let (mut sign, mut sensitive, mut extractable) = (false, false, true);
        for attribute in attributes {
            match attribute {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = Some(p),
                Attribute::Sign(b) => sign = b,
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                Attribute::Id(i) if !i.is_empty() => id = Some(i),
                _ => {}
            }
        }
        let unsupported = |found: String| Error::UnsupportedKey {
            token: self.token.clone(),
            uri: self.uri.clone(),
            found,
        };
        let algorithm = match (key_type, params) {
            (Some(t), Some(p)) if t == KeyType::EC_EDWARDS || t == KeyType::EC => {
                let algorithm = encoding::curve(&p).map_err(|e| unsupported(e.to_string()))?;
                let expected = match algorithm {
                    KeyAlgorithm::Ed25519 => KeyType::EC_EDWARDS,
                    KeyAlgorithm::EcdsaP256 => KeyType::EC,
                };
                if t != expected {
                    return Err(unsupported(format!(
                        "a {t} key with {algorithm} parameters"
                    )));
                }
                algorithm
            }
            (Some(t), _) => return Err(unsupported(format!("a {t} key"))),
            (None, _) => return Err(unsupported("a key of unknown type".to_owned())),
        };
        if !sensitive || extractable {
            return Err(Error::KeyExtractable {
                token: self.token.clone(),
                uri: self.uri.clone(),
            });
        }
        if !sign {
            return Err(Error::KeyCannotSign {
                token: self.token.clone(),
                uri: self.uri.clone(),
            });
        }
        Ok((algorithm, id))
    }

    /// The public key from the token's public object paired with the key.
    fn read_public(&self, session: &Session, algorithm: KeyAlgorithm) -> Result<KeyData, Error> {
        // `find` is the private key's template: its class, then identity.
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        template.extend(self.find.iter().skip(1).cloned());
        let found = session
            .find_objects(&template)
            .map_err(|e| self.error("C_FindObjects", e))?;
        let public = match found.as_slice() {
            [public] => *public,
            [] => {
                return Err(Error::PublicKeyMissing {
                    token: self.token.clone(),
                    uri: self.uri.clone(),
                });
            }
            more => {
                return Err(Error::ObjectAmbiguous {
                    token: self.token.clone(),
                    uri: self.uri.clone(),
                    count: more.len(),
                });
            }
        };
        let attributes = session
            .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
            .map_err(|e| self.error("C_GetAttributeValue", e))?;
        let (mut params, mut point) = (None, None);
        for attribute in attributes {
            match attribute {
                Attribute::EcParams(p) => params = Some(p),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        let encoding_error = |encoding| Error::Encoding {
            token: self.token.clone(),
            encoding,
        };
        let (Some(params), Some(point)) = (params, point) else {
            return Err(Error::PublicKeyMissing {
                token: self.token.clone(),
                uri: self.uri.clone(),
            });
        };
        let public_algorithm = encoding::curve(&params).map_err(encoding_error)?;
        if public_algorithm != algorithm {
            return Err(Error::KeyPairMismatch {
                token: self.token.clone(),
                uri: self.uri.clone(),
            });
        }
        encoding::public_key(algorithm, &point).map_err(encoding_error)
    }
}

/// `C_GenerateKeyPair` on the token with the URI's label and id (a random
/// id when it gives none, so OpenSSH's PKCS#11 provider and we can pair the
/// halves).
fn generate(
    link: &Link,
    session: &Session,
    uri: &Pkcs11Uri,
    algorithm: KeyAlgorithm,
) -> Result<(), Error> {
    let id = match &uri.id {
        Some(id) => id.clone(),
        None => {
            let mut id = vec![0u8; GENERATED_ID_LEN];
            ssh_key::rand_core::Rng::fill_bytes(&mut super::file::rng(), &mut id);
            id
        }
    };
    let (mechanism, params) = match algorithm {
        KeyAlgorithm::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, encoding::ED25519_OID),
        KeyAlgorithm::EcdsaP256 => (Mechanism::EccKeyPairGen, encoding::P256_OID),
    };
    let mut public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::Id(id.clone()),
    ];
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Id(id),
    ];
    if let Some(label) = &uri.object {
        public.push(Attribute::Label(label.as_bytes().to_vec()));
        private.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| link.error("C_GenerateKeyPair", e))?;
    tracing::info!(token = %link.token, key = %link.uri, %algorithm, "generated a CA key pair on the token");
    Ok(())
}
