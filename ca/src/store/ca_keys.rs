//! CA keys under rotation (`shiftkey-ca keys`): each key's state, and which
//! CA keys each enrolled host reported installed at its last refresh.

use async_trait::async_trait;

use super::Error;

/// Where a CA key is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyState {
    /// Published beside the active key; does not sign yet.
    Next,
    /// Signs. One per kind.
    Active,
    /// Published, no longer signs: certificates it signed are still valid.
    Previous,
    /// No longer published (and, if `revoked`, named in the KRL).
    Retired,
}

impl KeyState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "active" => Some(Self::Active),
            "previous" => Some(Self::Previous),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }

    /// Whether hosts and clients are told to trust the key.
    pub(crate) fn published(self) -> bool {
        !matches!(self, Self::Retired)
    }
}

/// One CA key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredCaKey {
    /// `SHA256:...`.
    pub(crate) fingerprint: String,
    /// `user` or `host`.
    pub(crate) kind: String,
    pub(crate) state: KeyState,
    /// OpenSSH public key line, no comment.
    pub(crate) public_line: String,
    /// `file`, `file:NAME` (under `keys/`) or a `pkcs11:` URI.
    pub(crate) location: String,
    pub(crate) created_at: i64,
    pub(crate) activated_at: Option<i64>,
    pub(crate) retired_at: Option<i64>,
    /// Retired in an emergency: everything it signed is revoked.
    pub(crate) revoked: bool,
}

/// A phase of a rotation, applied with its audit row
/// ([`super::Change::KeyPhase`]). Each is conditional on the states it
/// read: `KeyStateChanged` if another operator moved first.
#[derive(Debug, Clone)]
pub(crate) enum KeyPhase {
    /// Records `current` as active if the kind has no active row yet (the
    /// first rotation of a data directory), then `next` (state `Next`).
    /// `KeyStateChanged` if the kind already has a next key, or its active
    /// key is not `current`.
    Rotate {
        current: Box<StoredCaKey>,
        next: Box<StoredCaKey>,
    },
    /// The next key signs from now on; the active one becomes previous.
    Activate {
        kind: String,
        active: String,
        next: String,
        at: i64,
    },
    /// A previous key is no longer published; `revoked` names it in the KRL.
    Retire {
        fingerprint: String,
        at: i64,
        revoked: bool,
    },
}

/// What a host reported installed at its last refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostCaReport {
    pub(crate) name: String,
    pub(crate) fingerprints: Vec<String>,
    pub(crate) reported_at: i64,
}

#[async_trait]
pub(crate) trait CaKeyStore {
    /// Every CA key the rotation knows, oldest first (empty until the
    /// first `keys rotate`).
    async fn ca_keys(&self) -> Result<Vec<StoredCaKey>, Error>;

    /// A number that grows with every rotation phase: equal numbers, same
    /// keys and states.
    async fn ca_key_generation(&self) -> Result<u64, Error>;

    /// Records which CA keys `name` has installed (not audited: a report,
    /// not a decision; replaces the host's previous report).
    async fn report_ca_keys(&self, report: HostCaReport) -> Result<(), Error>;

    /// Every host's last report.
    async fn host_ca_reports(&self) -> Result<Vec<HostCaReport>, Error>;

    /// OpenSSH lines of user and host certificates valid at `now`, for
    /// `retire` to find those a key signed.
    async fn certificates_valid_at(&self, now: u64) -> Result<Vec<String>, Error>;
}
