//! Enrolled hosts and bastions, their one-time join tokens and host
//! certificates.

use async_trait::async_trait;

use super::Error;

/// A join token as stored: only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredToken {
    pub(crate) id: String,
    pub(crate) token_hash: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) principals: Vec<String>,
    pub(crate) created_by: String,
    pub(crate) created_at: String,
    pub(crate) expires_at: i64,
    pub(crate) used_at: Option<String>,
}

/// An enrolled host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredHost {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) principals: Vec<String>,
    pub(crate) key_fingerprint: String,
    pub(crate) enrolled_at: String,
    pub(crate) renewed_at: Option<String>,
}

/// One host certificate, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostCertificate {
    pub(crate) serial: u64,
    pub(crate) name: String,
    pub(crate) key_fingerprint: String,
    pub(crate) valid_after: u64,
    pub(crate) valid_before: u64,
    pub(crate) issued_at: String,
    pub(crate) certificate: String,
}

#[async_trait]
pub(crate) trait HostStore {
    /// A token by the hash of its text.
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<StoredToken>, Error>;

    /// The host a stored host certificate belongs to, if `serial` is one of
    /// ours and was issued for `key_fingerprint`, the host's current key.
    async fn host_for_certificate(
        &self,
        serial: u64,
        key_fingerprint: &str,
    ) -> Result<Option<StoredHost>, Error>;

    /// Every enrolled host, by name.
    async fn hosts(&self) -> Result<Vec<StoredHost>, Error>;
}
