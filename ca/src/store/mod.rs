//! The store: every row the CA keeps (certificates, revocations, incidents,
//! requests, overrides, locks, hosts, sessions and the recording index, the
//! hash-chained audit log, review UI sessions), behind one typed interface.
//!
//! The layer below the domain modules; it uses nothing of ours above it.
//! Organised by concern: each concern has its types and its trait in one
//! file here (`incidents.rs`, ...) and its implementation in one file per
//! backend (`sqlite/incidents.rs`, ...); [`Store`] is all of them.
//!
//! Writes: every state change is a [`Change`], applied by
//! [`AuditStore::append`] in the same transaction as the audit row that
//! records it; the few writes that are not audited (recording upload
//! offsets, UI sessions, serial reservations) are conditional updates.
//!
//! Never: let SQL, a driver type or a driver error out of this module; let
//! a caller recognise a conflict by its message (they match [`Conflict`]);
//! answer an append before its commit is durable.

mod audit;
mod ca_keys;
mod certificates;
mod change;
mod copy;
mod error;
mod hosts;
mod incidents;
mod locks;
mod overrides;
mod postgres;
mod requests;
mod sessions;
mod sqlite;
mod ui_sessions;
mod webhooks;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use audit::{
    AuditFilter, AuditRow, AuditStore, ChainHead, Entry, GENESIS_HASH, NewAuditRow,
};
pub(crate) use ca_keys::{CaKeyStore, HostCaReport, KeyPhase, KeyState, StoredCaKey};
pub(crate) use certificates::{
    CertificateStore, CertificateSummary, IssuedCertificate, KRL_MARGIN_SECS, KnownCertificate,
    Revocations, Selector,
};
pub(crate) use change::Change;
#[cfg(test)]
pub(crate) use copy::CopyError;
pub(crate) use copy::{Progress, count_rows, sqlite_to_postgres};
pub(crate) use error::{Conflict, Error, OpenError};
pub(crate) use hosts::{HostCertificate, HostStore, StoredHost, StoredToken};
pub(crate) use incidents::{Incident, IncidentStore};
pub(crate) use locks::LockStore;
pub(crate) use overrides::{OverrideStore, StoredOverride};
pub(crate) use requests::{RequestStatus, RequestStore, StoredRequest};
pub(crate) use sessions::{
    Hold, IndexLine, RecordingRead, Seal, Session, SessionFilter, SessionStatus, SessionStore,
    StoredSeal, Upload,
};
pub(crate) use ui_sessions::{Redeemed, UiLink, UiSession, UiSessionStore};
pub(crate) use webhooks::{Admission, WebhookStore};

pub(crate) use postgres::Settings as PostgresSettings;

/// Declares [`Store`] as every concern listed once, and implements it for
/// any backend that implements them all.
macro_rules! every_concern {
    ($(#[$doc:meta])* $($concern:ident),+ $(,)?) => {
        $(#[$doc])*
        pub(crate) trait Store: $($concern +)+ fmt::Debug + Send + Sync {}

        impl<T> Store for T where T: $($concern +)+ fmt::Debug + Send + Sync {}
    };
}

every_concern! {
    /// Every concern of the store, from one backend.
    ///
    /// A trait object (`Arc<dyn Store>`, async methods through `async-trait`)
    /// rather than an enum over backends: each backend stays in its own
    /// module and implements one small trait per concern, the behaviour
    /// tests are written once against `dyn Store`, and a backend that is not
    /// compiled in changes no signature. The price, a boxed future per call,
    /// is small next to a database round trip.
    AuditStore,
    CaKeyStore,
    CertificateStore,
    HostStore,
    IncidentStore,
    LockStore,
    OverrideStore,
    RequestStore,
    SessionStore,
    UiSessionStore,
    WebhookStore,
}

/// Which store to open (the `[store]` section of `ca.toml`, checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settings {
    /// A SQLite file (WAL, `synchronous=FULL`).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database, shared by every replica.
    Postgres(PostgresSettings),
}

/// How the store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Create and migrate as needed; reads and writes.
    ReadWrite,
    /// An existing store as it is (a backup, another user's file): reads
    /// only, no migration; writes answer `Unavailable`.
    ReadOnly,
}

/// Opens the store `settings` name: for PostgreSQL, connects and (read-write)
/// brings the schema up to date, one replica at a time.
pub(crate) async fn open(settings: &Settings, access: Access) -> Result<Arc<dyn Store>, OpenError> {
    match settings {
        Settings::Sqlite { path } => {
            let path = path.clone();
            let shown = path.clone();
            tokio::task::spawn_blocking(move || open_sqlite(&path, access))
                .await
                .map_err(|e| OpenError::Open {
                    path: shown,
                    message: e.to_string(),
                })?
        }
        Settings::Postgres(settings) => postgres::open(settings, access).await,
    }
}

/// Opens a SQLite store, on the calling thread (it blocks).
pub(crate) fn open_sqlite(
    path: &std::path::Path,
    access: Access,
) -> Result<Arc<dyn Store>, OpenError> {
    Ok(Arc::new(sqlite::SqliteStore::open(path, access)?))
}
