//! Access requests waiting for (or decided by) approvers.

use async_trait::async_trait;

use super::Error;

/// Where an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestStatus {
    Pending,
    Approved,
    Denied,
    Issued,
    /// Pending or approved, and past `expires_at` when the CA noticed.
    Expired,
}

impl RequestStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Issued => "issued",
            RequestStatus::Expired => "expired",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(RequestStatus::Pending),
            "approved" => Some(RequestStatus::Approved),
            "denied" => Some(RequestStatus::Denied),
            "issued" => Some(RequestStatus::Issued),
            "expired" => Some(RequestStatus::Expired),
            _ => None,
        }
    }
}

/// An access request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRequest {
    pub(crate) id: String,
    pub(crate) requester: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) reason: Option<String>,
    /// The `CertificateRequest`, JSON.
    pub(crate) request: String,
    pub(crate) status: RequestStatus,
    /// Identities that approved, in order.
    pub(crate) approvals: Vec<String>,
    pub(crate) approvals_needed: u8,
    pub(crate) denied_by: Option<String>,
    pub(crate) decision_reason: Option<String>,
    pub(crate) serial: Option<u64>,
    pub(crate) created_at: i64,
    /// Unix seconds: a pending request expires then, and once approved,
    /// the approval does if the certificate was not issued by then.
    pub(crate) expires_at: i64,
}

#[async_trait]
pub(crate) trait RequestStore {
    async fn access_request(&self, id: &str) -> Result<Option<StoredRequest>, Error>;

    /// Pending requests not yet expired at `now`, oldest first (at most 500).
    async fn pending_requests(&self, now: i64) -> Result<Vec<StoredRequest>, Error>;

    /// Requests no longer pending, newest first, at most `limit`.
    async fn decided_requests(&self, limit: u32) -> Result<Vec<StoredRequest>, Error>;
}
