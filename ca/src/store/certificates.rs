//! Issued certificates and revocations: the serial sequence, the rows the
//! CA signed, and what the KRL and the session checks read of them.

use async_trait::async_trait;

use super::Error;

/// One issued user certificate, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuedCertificate {
    pub(crate) serial: u64,
    pub(crate) key_id: String,
    pub(crate) identity: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) request_id: String,
    pub(crate) principals: Vec<String>,
    pub(crate) valid_after: u64,
    pub(crate) valid_before: u64,
    pub(crate) key_fingerprint: String,
    pub(crate) issued_at: String,
    pub(crate) certificate: String,
}

/// What a session check needs of an issued user certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownCertificate {
    pub(crate) identity: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) key_id: String,
    pub(crate) key_fingerprint: String,
    pub(crate) revoked: bool,
}

/// A certificate as the incident page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateSummary {
    pub(crate) serial: u64,
    pub(crate) identity: String,
    pub(crate) role: String,
    pub(crate) key_id: String,
    pub(crate) valid_after: u64,
    pub(crate) valid_before: u64,
    pub(crate) revoked: bool,
}

/// Which certificates a revocation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    Serial(u64),
    KeyId(String),
    Identity(String),
    Incident(String),
    /// The certificate issued for an access request (its `req=`).
    Request(String),
}

/// How long a revoked certificate stays in the KRL after its `valid_before`:
/// a host whose clock runs behind would still accept it until then.
pub(crate) const KRL_MARGIN_SECS: u64 = 3600;

/// What the KRL is built from, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocations {
    /// Revoked serials of certificates not expired by `now - KRL_MARGIN_SECS`.
    pub(crate) live_serials: Vec<u64>,
    /// Changes whenever revocations change: the KRL's version.
    pub(crate) version: u64,
}

#[async_trait]
pub(crate) trait CertificateStore {
    /// The next certificate serial (user and host certificates share the
    /// sequence). Never the same twice, across processes and restarts.
    async fn next_serial(&self) -> Result<u64, Error>;

    /// Serials of certificates still valid at `now` that `selector` names
    /// and that are not revoked yet.
    async fn live_serials(&self, selector: Selector, now: u64) -> Result<Vec<u64>, Error>;

    /// Serials revoked among those issued under `incident`.
    async fn revoked_under_incident(&self, incident: &str) -> Result<Vec<u64>, Error>;

    /// What the KRL lists at `now` (unix seconds).
    async fn revocations(&self, now: u64) -> Result<Revocations, Error>;

    /// The user certificate with `serial`, if this CA issued one.
    async fn user_certificate(&self, serial: u64) -> Result<Option<KnownCertificate>, Error>;

    /// Certificates issued under `incident`, by serial, at most `limit`.
    async fn certificates_under_incident(
        &self,
        incident: &str,
        limit: u32,
    ) -> Result<Vec<CertificateSummary>, Error>;
}
