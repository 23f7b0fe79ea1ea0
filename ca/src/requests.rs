//! Access requests and approvals: for roles that want people to agree, a
//! certificate request becomes a pending access request (`issuance`);
//! whom the policy's authority allows (never the requester's own person)
//! approve or deny it; once approved, the requester's next look at it
//! issues the certificate — after the policy decides again, with the
//! approvals counted, so an expired shift or a resolved incident still
//! stops it. A pending request expires after the role's `pending_ttl`, an
//! approved one after its `approval_ttl` if unused; the CA marks it
//! expired, audited, when it notices.
//!
//! Never: count the requester's own person's approval, or one person
//! twice; change a request without its audit row in the same commit; issue
//! for a request that is not approved and unexpired.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use shiftkey_wire::{AccessRequest, CertificateRequest};

use crate::audit::{self, Event, Explain, Outcome};
use crate::authority::{self, Viewer};
use crate::base::Base;
use crate::identity::Caller;
use crate::issuance::{self, Approved, Issuance, Issued, access_request};
use crate::policy::Action;
use crate::store::{self, Change, Conflict, RequestStatus, StoredRequest};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("no access request {0}")]
    NotFound(String),
    #[error("only the requester and the role's approvers may see this request")]
    NotVisible,
    /// The policy's authority refused (audited), or could not be asked.
    #[error(transparent)]
    Authority(#[from] authority::Error),
    #[error("request {id} is {status}, not pending")]
    NotPending { id: String, status: String },
    #[error("a denial needs a reason (--reason)")]
    ReasonRequired,
    #[error(transparent)]
    UnsafeText(#[from] crate::free_text::Unsafe),
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
            Error::Authority(e) => e.code(),
            Error::NotPending { .. } | Error::Changed => "conflict",
            Error::ReasonRequired => "invalid-json",
            Error::UnsafeText(_) => crate::free_text::CODE,
            Error::Corrupt(_) | Error::Store(_) => "internal-error",
            Error::Issuance(e) => e.code(),
            Error::Audit(_) => "audit-unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Error::Issuance(e) => e.message(),
            Error::Authority(e) => e.message(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Requests {
    base: Base,
    issuance: Arc<Issuance>,
}

/// Whether a request in `status` that expires at `expires_at` is past its
/// time at `now`: pending ones wait for approvals, approved ones to be used.
pub(crate) fn is_expired(status: RequestStatus, expires_at: i64, now: i64) -> bool {
    matches!(status, RequestStatus::Pending | RequestStatus::Approved) && now >= expires_at
}

impl Requests {
    pub(crate) fn new(base: &Base, issuance: Arc<Issuance>) -> Self {
        Self {
            base: base.clone(),
            issuance,
        }
    }

    /// The request, marked expired (audited, once: whoever notices first)
    /// when it is past its time.
    async fn load(&self, id: &str) -> Result<StoredRequest, Error> {
        let stored = self
            .base
            .store
            .access_request(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        let now = Utc::now().timestamp();
        if !is_expired(stored.status, stored.expires_at, now) {
            return Ok(stored);
        }
        let detail = json!({
            "request": id, "role": stored.role, "requester": stored.requester,
            "was": stored.status.as_str(), "expires_at": stored.expires_at,
        });
        let change = Change::ExpireRequest {
            id: id.to_owned(),
            status: stored.status,
        };
        match self
            .base
            .audit
            .record_change(
                Event::new("request.expired", "system", Outcome::Info, detail),
                change,
            )
            .await
        {
            // Someone noticed first (or it was decided or issued just in
            // time): what the store holds now is the answer.
            Ok(_) | Err(audit::Error::Conflict(Conflict::RequestChanged)) => self
                .base
                .store
                .access_request(id)
                .await?
                .ok_or_else(|| Error::NotFound(id.to_owned())),
            Err(e) => Err(Error::Audit(e)),
        }
    }

    /// `GET /v1/requests/{id}`: the requester or someone who may approve
    /// it looks. For the requester, an approved request is turned into its
    /// certificate now.
    pub(crate) async fn look(&self, caller: &Caller, id: &str) -> Result<AccessRequest, Error> {
        let stored = self.load(id).await?;
        let now = Utc::now().timestamp();
        let is_requester = caller.identity() == stored.requester;
        if !is_requester
            && !Viewer::new(&self.base, caller)
                .await?
                .may(&Action::ApproveRequest {
                    role: &stored.role,
                    requester: &stored.requester,
                })
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
        let viewer = Viewer::new(&self.base, caller).await?;
        Ok(self
            .base
            .store
            .pending_requests(now)
            .await?
            .iter()
            .filter(|r| {
                viewer.may(&Action::ApproveRequest {
                    role: &r.role,
                    requester: &r.requester,
                })
            })
            .map(|r| access_request(r, now, None))
            .collect())
    }

    /// Decided requests `caller` may approve for, newest first, at most `limit`.
    pub(crate) async fn decided_for(
        &self,
        caller: &Caller,
        limit: usize,
    ) -> Result<Vec<StoredRequest>, Error> {
        let viewer = Viewer::new(&self.base, caller).await?;
        Ok(self
            .base
            .store
            .decided_requests(200)
            .await?
            .into_iter()
            .filter(|r| {
                viewer.may(&Action::ApproveRequest {
                    role: &r.role,
                    requester: &r.requester,
                })
            })
            .take(limit)
            .collect())
    }

    /// Approves (`approve = true`) or denies a pending request, if the
    /// policy's authority lets `caller` (never for their own person).
    pub(crate) async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<AccessRequest, Error> {
        let stored = self.load(id).await?;
        let now = Utc::now().timestamp();
        let (kind, action) = if approve {
            (
                "request.approved",
                Action::ApproveRequest {
                    role: &stored.role,
                    requester: &stored.requester,
                },
            )
        } else {
            (
                "request.denied",
                Action::DenyRequest {
                    role: &stored.role,
                    requester: &stored.requester,
                },
            )
        };
        let granted = authority::authorize(
            &self.base,
            caller,
            &action,
            json!({ "request": id, "role": stored.role, "requester": stored.requester }),
        )
        .await?;
        let identity = granted.actor().to_owned();
        let refusal = if stored.status != RequestStatus::Pending {
            Some(Error::NotPending {
                id: id.to_owned(),
                status: access_request(&stored, now, None).status,
            })
        } else if !approve && reason.as_deref().is_none_or(|r| r.trim().len() < 3) {
            Some(Error::ReasonRequired)
        } else {
            reason
                .as_deref()
                .and_then(|r| crate::free_text::check("reason", r).err())
                .map(Error::UnsafeText)
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
        let policy = self.base.policy.get();
        let (change, updated) = if approve {
            // One person counts once, whichever of their identities approves.
            let person = policy.person_of(&identity);
            let mut approvals = stored.approvals.clone();
            if !approvals
                .iter()
                .any(|a| *a == identity || person.contains(a))
            {
                approvals.push(identity.clone());
            }
            let persons = distinct_persons(&policy, &approvals);
            let (status, expires_at) = if persons >= usize::from(stored.approvals_needed) {
                let ttl = policy.role(&stored.role).map_or(0, |r| {
                    i64::try_from(r.approval_ttl().as_secs()).unwrap_or(0)
                });
                (RequestStatus::Approved, now.saturating_add(ttl))
            } else {
                (RequestStatus::Pending, stored.expires_at)
            };
            let change = Change::Approve {
                id: id.to_owned(),
                expected: stored.approvals.clone(),
                approvals: approvals.clone(),
                status,
                expires_at,
            };
            (
                change,
                StoredRequest {
                    approvals,
                    status,
                    expires_at,
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
        let detail = granted.annotate(json!({
            "request": id, "role": stored.role, "requester": stored.requester, "reason": reason,
            "status": updated.status.as_str(), "expires_at": updated.expires_at,
        }));
        self.base
            .audit
            .record_change(Event::new(kind, identity, Outcome::Info, detail), change)
            .await?;
        Ok(access_request(&updated, now, None))
    }
}

/// How many people `approvals` are, as the policy's `[[person]]`s say.
fn distinct_persons(policy: &crate::policy::Policy, approvals: &[String]) -> usize {
    let mut seen: Vec<Vec<String>> = Vec::new();
    for approval in approvals {
        let mut person = policy.person_of(approval);
        if person.is_empty() {
            person.push(approval.clone());
        }
        person.sort();
        if !seen.contains(&person) {
            seen.push(person);
        }
    }
    seen.len()
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
