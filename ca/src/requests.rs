//! Access requests and approvals: for roles that want people to agree, a
//! certificate request becomes a pending access request (`issuance`);
//! approvers (never the requester) approve or deny it; once approved, the
//! requester's next look at it issues the certificate — after the policy
//! decides again, with the approvals counted, so an expired shift or a
//! resolved incident still stops it.
//!
//! Never: count the requester's own approval; change a request without its
//! audit row in the same commit; issue for a request that is not approved.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use shiftkey_wire::{AccessRequest, CertificateRequest};

use crate::audit::{self, Event, Explain, Outcome};
use crate::base::Base;
use crate::identity::Caller;
use crate::issuance::{self, Approved, Issuance, Issued, access_request};
use crate::store::{self, Change, Conflict, RequestStatus, StoredRequest};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("no access request {0}")]
    NotFound(String),
    #[error("only the requester and the role's approvers may see this request")]
    NotVisible,
    #[error("you cannot approve or deny your own request; ask another approver")]
    SelfApproval,
    #[error("you are not an approver for role {0:?}")]
    NotAnApprover(String),
    #[error("request {id} is {status}, not pending")]
    NotPending { id: String, status: String },
    #[error("a denial needs a reason (--reason)")]
    ReasonRequired,
    /// Someone else decided or approved it since it was read.
    #[error("the request was decided or approved by someone else a moment ago; look at it again")]
    Changed,
    #[error("the stored request cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Issuance(#[from] issuance::Error),
    #[error(transparent)]
    Audit(audit::Error),
    #[error("cannot read the requests: {0}")]
    Store(#[from] store::Error),
}

impl From<audit::Error> for Error {
    fn from(e: audit::Error) -> Self {
        match e {
            audit::Error::Conflict(Conflict::RequestChanged) => Error::Changed,
            other => Error::Audit(other),
        }
    }
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::NotVisible => "forbidden",
            Error::SelfApproval => "self-approval",
            Error::NotAnApprover(_) => "not-an-approver",
            Error::NotPending { .. } | Error::Changed => "conflict",
            Error::ReasonRequired => "invalid-json",
            Error::Corrupt(_) | Error::Store(_) => "internal-error",
            Error::Issuance(e) => e.code(),
            Error::Audit(_) => "audit-unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Error::Issuance(e) => e.message(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Requests {
    base: Base,
    issuance: Arc<Issuance>,
}

impl Requests {
    pub(crate) fn new(base: &Base, issuance: Arc<Issuance>) -> Self {
        Self {
            base: base.clone(),
            issuance,
        }
    }

    async fn load(&self, id: &str) -> Result<StoredRequest, Error> {
        self.base
            .store
            .access_request(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    /// `GET /v1/requests/{id}`: the requester or an approver looks. For the
    /// requester, an approved request is turned into its certificate now.
    pub(crate) async fn look(&self, caller: &Caller, id: &str) -> Result<AccessRequest, Error> {
        let stored = self.load(id).await?;
        let now = Utc::now().timestamp();
        let identity = caller.identity();
        let is_requester = identity.eq_ignore_ascii_case(&stored.requester);
        if !is_requester
            && !self.base.policy.get().may_approve(
                &stored.role,
                &identity,
                caller.groups(),
                &stored.requester,
            )
        {
            return Err(Error::NotVisible);
        }
        if !(is_requester && stored.status == RequestStatus::Approved) {
            return Ok(access_request(&stored, now, None));
        }
        let request: CertificateRequest =
            serde_json::from_str(&stored.request).map_err(|e| Error::Corrupt(e.to_string()))?;
        let approved = Approved {
            request: &stored.id,
            approvals: &stored.approvals,
        };
        match self
            .issuance
            .issue_as(caller, request, stored.id.clone(), Some(approved))
            .await?
        {
            Issued::Certificate(certificate) => {
                let issued = StoredRequest {
                    status: RequestStatus::Issued,
                    ..stored
                };
                Ok(access_request(&issued, now, Some(certificate)))
            }
            Issued::Pending(_) => Err(Error::Corrupt(
                "an approved request asked for approval again".into(),
            )),
        }
    }

    /// `GET /v1/requests`: pending requests `caller` may approve.
    pub(crate) async fn pending_for(&self, caller: &Caller) -> Result<Vec<AccessRequest>, Error> {
        let now = Utc::now().timestamp();
        let identity = caller.identity();
        let policy = self.base.policy.get();
        Ok(self
            .base
            .store
            .pending_requests(now)
            .await?
            .iter()
            .filter(|r| policy.may_approve(&r.role, &identity, caller.groups(), &r.requester))
            .map(|r| access_request(r, now, None))
            .collect())
    }

    /// Decided requests `caller` may approve for, newest first, at most `limit`.
    pub(crate) async fn decided_for(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<Vec<StoredRequest>, Error> {
        let identity = caller.identity();
        let policy = self.base.policy.get();
        Ok(self
            .base
            .store
            .decided_requests(200)
            .await?
            .into_iter()
            .filter(|r| policy.may_approve(&r.role, &identity, caller.groups(), &r.requester))
            .take(limit)
            .collect())
    }

    /// Approves (`approve = true`) or denies a pending request.
    pub(crate) async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<AccessRequest, Error> {
        let stored = self.load(id).await?;
        let now = Utc::now().timestamp();
        let identity = caller.identity();
        let kind = if approve {
            "request.approved"
        } else {
            "request.denied"
        };
        let refusal = if identity.eq_ignore_ascii_case(&stored.requester) {
            Some(Error::SelfApproval)
        } else if !self.base.policy.get().may_approve(
            &stored.role,
            &identity,
            caller.groups(),
            &stored.requester,
        ) {
            Some(Error::NotAnApprover(stored.role.clone()))
        } else if stored.status != RequestStatus::Pending || now >= stored.expires_at {
            Some(Error::NotPending {
                id: id.to_owned(),
                status: access_request(&stored, now, None).status,
            })
        } else if !approve && reason.as_deref().is_none_or(|r| r.trim().len() < 3) {
            Some(Error::ReasonRequired)
        } else {
            None
        };
        if let Some(error) = refusal {
            return Err(self
                .base
                .audit
                .refuse(
                    kind,
                    identity,
                    Outcome::Deny,
                    error,
                    json!({ "request": id, "role": stored.role }),
                )
                .await);
        }
        let reason = reason.map(|r| r.trim().chars().take(1000).collect::<String>());
        let (change, updated) = if approve {
            let mut approvals = stored.approvals.clone();
            if !approvals.iter().any(|a| a.eq_ignore_ascii_case(&identity)) {
                approvals.push(identity.clone());
            }
            let status = if approvals.len() >= usize::from(stored.approvals_needed) {
                RequestStatus::Approved
            } else {
                RequestStatus::Pending
            };
            let change = Change::Approve {
                id: id.to_owned(),
                expected: stored.approvals.clone(),
                approvals: approvals.clone(),
                status,
            };
            (
                change,
                StoredRequest {
                    approvals,
                    status,
                    ..stored.clone()
                },
            )
        } else {
            let change = Change::Deny {
                id: id.to_owned(),
                by: identity.clone(),
                reason: reason.clone().unwrap_or_default(),
            };
            let updated = StoredRequest {
                status: RequestStatus::Denied,
                denied_by: Some(identity.clone()),
                decision_reason: reason.clone(),
                ..stored.clone()
            };
            (change, updated)
        };
        let detail = json!({
            "request": id, "role": stored.role, "requester": stored.requester, "reason": reason,
            "status": updated.status.as_str(),
        });
        self.base
            .audit
            .record_change(Event::new(kind, identity, Outcome::Info, detail), change)
            .await?;
        Ok(access_request(&updated, now, None))
    }
}
