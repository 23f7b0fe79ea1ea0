//! The CA's keys in force: which key signs for each CA, which keys are
//! published, and following rotation phases (`shiftkey-ca keys`, see
//! [`crate::rotation`]) recorded in the store.
//!
//! Where each key lives and how it signs is the signer's business
//! ([`crate::signer`]; key files in [`crate::signer::file`]). This module
//! never writes a key; it opens what the store and ca.toml name.
//!
//! How replicas follow a rotation: the store's CA key rows carry a
//! generation number that grows with every phase. [`CaKeys::reload`]
//! compares it with the one its signers were built from and rebuilds them
//! when it moved. The server calls it when a `ca_key.*` event arrives on the
//! event stream (which every replica follows, whichever process wrote the
//! row) and, as a safety net, every few seconds.

pub(crate) mod cli;
pub(crate) mod rotation;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use crate::secret::Secret;
use crate::signer::{self, CaSigner, KeyAlgorithm, KeyLocation, Pkcs11Options};
use crate::store::{KeyState, Store, StoredCaKey};

pub(crate) use crate::signer::CaKind;
pub(crate) use crate::signer::file::create;
pub(crate) use crate::signer::file::{Error, key_path, rng, write_new};

/// The CA's keys at one generation: the two signers, and what is published.
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    pub(crate) user: CaSigner,
    pub(crate) host: CaSigner,
    /// Published user CA keys (OpenSSH lines, no comment), active first.
    pub(crate) user_published: Vec<String>,
    /// Published host CA keys, active first.
    pub(crate) host_published: Vec<String>,
    /// User CA keys retired in an emergency: everything they signed is
    /// revoked, so the KRL names them.
    pub(crate) user_revoked: Vec<ssh_key::PublicKey>,
    /// Every host CA key ever recorded, retired ones too: a host proves
    /// itself to the CA with its current host certificate, which must keep
    /// working through an emergency rotation of the host CA (the store
    /// check that the serial was issued to that host key is what matters).
    host_known: Vec<String>,
    /// Every user CA key the CA has signed with, retired ones too (active
    /// first): recordings sealed under any of them must stay verifiable.
    pub(crate) user_seal_keys: Vec<shiftkey_wire::SealKey>,
    generation: u64,
}

impl KeySet {
    /// One key per CA, nothing rotated.
    fn single(user: CaSigner, host: CaSigner) -> Self {
        Self {
            user_published: vec![user.public_line().to_owned()],
            host_published: vec![host.public_line().to_owned()],
            user_revoked: Vec::new(),
            host_known: Vec::new(),
            user_seal_keys: vec![only_seal_key(&user)],
            user,
            host,
            generation: 0,
        }
    }
}

/// The seal key of a CA that never rotated: its one user key, active.
fn only_seal_key(user: &CaSigner) -> shiftkey_wire::SealKey {
    shiftkey_wire::SealKey {
        key: user.public_line().to_owned(),
        fingerprint: user.fingerprint().to_owned(),
        state: KeyState::Active.as_str().to_owned(),
        retired_at: None,
        emergency: false,
    }
}

/// Every user key row as a seal key: active, next, previous, retired.
fn seal_keys(rows: &[StoredCaKey], configured: &CaSigner) -> Vec<shiftkey_wire::SealKey> {
    let mine: Vec<&StoredCaKey> = rows.iter().filter(|r| r.kind == "user").collect();
    if !mine.iter().any(|r| r.state == KeyState::Active) {
        return vec![only_seal_key(configured)];
    }
    let mut keys = Vec::new();
    for state in [
        KeyState::Active,
        KeyState::Next,
        KeyState::Previous,
        KeyState::Retired,
    ] {
        keys.extend(mine.iter().filter(|r| r.state == state).map(|r| {
            shiftkey_wire::SealKey {
                key: r.public_line.clone(),
                fingerprint: r.fingerprint.clone(),
                state: state.as_str().to_owned(),
                retired_at: (state == KeyState::Retired)
                    .then_some(r.retired_at)
                    .flatten(),
                emergency: state == KeyState::Retired && r.revoked,
            }
        }));
    }
    keys
}

/// What [`CaKeys::reload`] reopens keys from.
#[derive(Debug)]
struct Source {
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    passphrase: Option<Secret>,
    options: Pkcs11Options,
    /// The keys ca.toml names, opened at start: active while the store has
    /// no rows for their kind.
    configured: (CaSigner, CaSigner),
}

/// The CA's signers: the one place every signature the CA makes comes
/// from. Built at start ([`open_both`], then [`CaKeys::follow`]) and passed
/// down as application state; never a static.
#[derive(Debug)]
pub(crate) struct CaKeys {
    current: RwLock<Arc<KeySet>>,
    source: Option<Source>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

/// The store's key rows could not be followed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error("cannot read the CA keys from the store: {0}")]
    Store(#[from] crate::store::Error),
    #[error("cannot open the {kind} CA key at {location}: {source}")]
    Open {
        kind: &'static str,
        location: String,
        source: Box<signer::Error>,
    },
    #[error(
        "the {kind} CA key at {location} is {found}, but the store says {expected}; fix the location or the key"
    )]
    Mismatch {
        kind: &'static str,
        location: String,
        expected: String,
        found: String,
    },
    #[error("the signing thread stopped: {0}")]
    Join(String),
}

impl CaKeys {
    /// Fixed keys that never reload (tests, commands without a store).
    pub(crate) fn fixed(user: CaSigner, host: CaSigner) -> Self {
        Self {
            current: RwLock::new(Arc::new(KeySet::single(user, host))),
            source: None,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Keys that follow the store's rotation rows: call [`Self::reload`]
    /// once before serving.
    pub(crate) fn follow(
        configured: CaKeys,
        store: Arc<dyn Store>,
        data_dir: &Path,
        settings: &KeySettings,
        passphrase: Option<Secret>,
    ) -> Self {
        let set = configured.snapshot();
        Self {
            current: RwLock::new(Arc::clone(&set)),
            source: Some(Source {
                store,
                data_dir: data_dir.to_owned(),
                passphrase,
                options: settings.pkcs11_options(),
                configured: (set.user.clone(), set.host.clone()),
            }),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys in force now.
    pub(crate) fn snapshot(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The active user CA signer.
    pub(crate) fn user(&self) -> CaSigner {
        self.snapshot().user.clone()
    }

    /// The active host CA signer.
    pub(crate) fn host(&self) -> CaSigner {
        self.snapshot().host.clone()
    }

    /// Fingerprints of every published user CA key: certificates any of
    /// them signed are ours (the previous key's stay valid until retired).
    pub(crate) fn user_fingerprints(&self) -> Vec<ssh_key::Fingerprint> {
        fingerprints(&self.snapshot().user_published)
    }

    /// Fingerprints of every host CA key, retired ones too: what a host's
    /// own certificate may be signed by when it authenticates to the CA.
    pub(crate) fn host_auth_fingerprints(&self) -> Vec<ssh_key::Fingerprint> {
        let set = self.snapshot();
        let mut all = fingerprints(&set.host_published);
        all.extend(fingerprints(&set.host_known));
        all
    }

    /// Rebuilds the signers if the store's key rows moved since they were
    /// built. Returns whether anything changed. On an error the keys in
    /// force stay (the caller logs it and tries again).
    pub(crate) async fn reload(&self) -> Result<bool, ReloadError> {
        let Some(source) = &self.source else {
            return Ok(false);
        };
        let _one = self.reloading.lock().await;
        let generation = source.store.ca_key_generation().await?;
        let old = self.snapshot();
        // 0: nothing recorded yet, or the last reload was incomplete.
        if generation == old.generation && generation != 0 {
            return Ok(false);
        }
        let rows = source.store.ca_keys().await?;
        let data_dir = source.data_dir.clone();
        let passphrase = source
            .passphrase
            .as_ref()
            .map(|p| Secret::new(p.expose().to_owned()));
        let options = Pkcs11Options {
            sessions: source.options.sessions,
            checkout_timeout: source.options.checkout_timeout,
            env_pin: source
                .options
                .env_pin
                .as_ref()
                .map(|p| Secret::new(p.expose().to_owned())),
        };
        let configured = source.configured.clone();
        let old_set = Arc::clone(&old);
        // Opening a token key blocks: off the async workers.
        let set = tokio::task::spawn_blocking(move || {
            build(
                &rows,
                generation,
                &data_dir,
                passphrase.as_ref(),
                &options,
                &configured,
                &old_set,
            )
        })
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))?;
        let (set, failure) = set;
        let changed = set.user.fingerprint() != old.user.fingerprint()
            || set.host.fingerprint() != old.host.fingerprint()
            || set.user_published != old.user_published
            || set.host_published != old.host_published
            || set.user_revoked != old.user_revoked
            || set.user_seal_keys != old.user_seal_keys;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        match failure {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }
}

/// How often a replica checks the store's key generation without an event
/// (a missed event, a lagging follower): a safety net, the events are the
/// fast path.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs until aborted: reloads `keys` when a rotation event arrives and
/// every [`RELOAD_EVERY`]. A failed reload keeps the keys in force and is
/// logged; the next event or tick tries again.
pub(crate) async fn follow_rotation(
    keys: Arc<CaKeys>,
    mut events: tokio::sync::broadcast::Receiver<crate::events::CaEvent>,
) {
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if !e.kind.starts_with("ca_key.") => continue,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    // No more events: the tick alone.
                    events = tokio::sync::broadcast::channel(1).1;
                    tick.tick().await;
                }
            },
            _ = tick.tick() => {}
        }
        match keys.reload().await {
            Ok(true) => {
                let set = keys.snapshot();
                tracing::info!(
                    user_ca = set.user.fingerprint(),
                    host_ca = set.host.fingerprint(),
                    published_user = set.user_published.len(),
                    published_host = set.host_published.len(),
                    "CA keys reloaded after a rotation phase"
                );
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot follow the CA key rotation; the keys in force stay")
            }
        }
    }
}

fn fingerprints(lines: &[String]) -> Vec<ssh_key::Fingerprint> {
    lines
        .iter()
        .filter_map(|l| ssh_key::PublicKey::from_openssh(l).ok())
        .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256))
        .collect()
}

/// The key set the store's rows describe; the configured key stands for a
/// kind without rows. Signers already open are reused.
fn build(
    rows: &[StoredCaKey],
    generation: u64,
    data_dir: &Path,
    passphrase: Option<&Secret>,
    options: &Pkcs11Options,
    configured: &(CaSigner, CaSigner),
    old: &KeySet,
) -> (KeySet, Option<ReloadError>) {
    // What is published comes from the rows alone; a key that cannot be
    // opened here (a key file not copied to this replica yet, a token that
    // is down) leaves the signer in force and is reported: this replica's
    // certificates then fail on hosts once the old key is retired, which
    // fails closed, rather than hosts being told a stale key set.
    let mut failure = None;
    let mut one = |kind: CaKind, configured: &CaSigner, old: &CaSigner| {
        let name = kind.as_str();
        let mine: Vec<&StoredCaKey> = rows.iter().filter(|r| r.kind == name).collect();
        let Some(active) = mine.iter().find(|r| r.state == KeyState::Active) else {
            return (
                configured.clone(),
                vec![configured.public_line().to_owned()],
            );
        };
        let signer = if active.fingerprint == old.fingerprint() {
            old.clone()
        } else if active.fingerprint == configured.fingerprint() {
            configured.clone()
        } else {
            let opened = active
                .location
                .parse::<KeyLocation>()
                .and_then(|location| signer::open(data_dir, kind, &location, passphrase, options));
            match opened {
                Ok(signer) if signer.fingerprint() == active.fingerprint => signer,
                Ok(signer) => {
                    failure.get_or_insert(ReloadError::Mismatch {
                        kind: name,
                        location: active.location.clone(),
                        expected: active.fingerprint.clone(),
                        found: signer.fingerprint().to_owned(),
                    });
                    old.clone()
                }
                Err(source) => {
                    failure.get_or_insert(ReloadError::Open {
                        kind: name,
                        location: active.location.clone(),
                        source: Box::new(source),
                    });
                    old.clone()
                }
            }
        };
        let mut published = vec![active.public_line.clone()];
        for state in [KeyState::Next, KeyState::Previous] {
            published.extend(
                mine.iter()
                    .filter(|r| r.state == state)
                    .map(|r| r.public_line.clone()),
            );
        }
        (signer, published)
    };
    let (user, user_published) = one(CaKind::User, &configured.0, &old.user);
    let (host, host_published) = one(CaKind::Host, &configured.1, &old.host);
    let user_revoked = rows
        .iter()
        .filter(|r| r.kind == "user" && r.state == KeyState::Retired && r.revoked)
        .filter_map(|r| ssh_key::PublicKey::from_openssh(&r.public_line).ok())
        .collect();
    let host_known = rows
        .iter()
        .filter(|r| r.kind == "host")
        .map(|r| r.public_line.clone())
        .collect();
    let set = KeySet {
        user,
        host,
        user_published,
        host_published,
        user_revoked,
        host_known,
        user_seal_keys: seal_keys(rows, &configured.0),
        // Incomplete: the next reload tries again whatever the generation.
        generation: if failure.is_some() { 0 } else { generation },
    };
    (set, failure)
}

/// Where the two CA keys live (`[keys]` in ca.toml, `init --user-key`/
/// `--host-key`) and how token keys are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySettings {
    pub(crate) user: KeyLocation,
    pub(crate) host: KeyLocation,
    /// The algorithm of keys generated on a token (key files are ed25519).
    pub(crate) algorithm: KeyAlgorithm,
    /// Logged-in sessions per token key.
    pub(crate) pkcs11_sessions: std::num::NonZeroUsize,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            user: KeyLocation::File,
            host: KeyLocation::File,
            algorithm: KeyAlgorithm::Ed25519,
            pkcs11_sessions: crate::signer::DEFAULT_SESSIONS,
        }
    }
}

impl KeySettings {
    pub(crate) fn location(&self, kind: CaKind) -> &KeyLocation {
        match kind {
            CaKind::User => &self.user,
            CaKind::Host => &self.host,
        }
    }

    /// How token keys are used: the configured pool size, the PIN from the
    /// environment for URIs without `pin-source`.
    pub(crate) fn pkcs11_options(&self) -> Pkcs11Options {
        Pkcs11Options {
            sessions: self.pkcs11_sessions,
            ..Pkcs11Options::from_env()
        }
    }
}

/// Opens both CA keys where `settings` say they are (key files are
/// decrypted with `passphrase`; token keys are found and logged into).
/// Creates nothing. Blocks on token calls: call it off the async workers.
pub(crate) fn open_both(
    data_dir: &Path,
    settings: &KeySettings,
    passphrase: Option<&Secret>,
) -> Result<CaKeys, signer::Error> {
    let options = settings.pkcs11_options();
    let open = |kind| {
        signer::open(
            data_dir,
            kind,
            settings.location(kind),
            passphrase,
            &options,
        )
    };
    Ok(CaKeys::fixed(open(CaKind::User)?, open(CaKind::Host)?))
}
