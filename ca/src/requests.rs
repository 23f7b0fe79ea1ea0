//! Access requests and approvals: for roles that want people to agree, a
//! certificate request becomes a pending access request; approvers (never
//! the requester) approve or deny it; once approved, the requester's next
//! look at it issues the certificate — after the policy decides again, with
//! the approvals counted, so an expired shift or a resolved incident still
//! stops it.
//!
//! Never: count the requester's own approval; change a request without its
//! audit row in the same commit; issue for a request that is not approved.

use chrono::Utc;
use serde_json::json;
use shiftkey_wire::{AccessRequest, CertificateRequest};

use crate::audit::{Event, Outcome};
use crate::http::error::ApiError;
use crate::identity::Caller;
use crate::issue::ValidRequest;
use crate::policy::Denied;
use crate::service::{Ca, Issued};
use crate::store::{self, Change, StoredRequest};

/// How long a request waits for approvals before it expires.
pub(crate) const REQUEST_TTL_SECS: i64 = 15 * 60;

fn to_wire(
    r: &StoredRequest,
    now: i64,
    certificate: Option<shiftkey_wire::CertificateResponse>,
) -> AccessRequest {
    let status = if r.status == "pending" && now >= r.expires_at {
        "expired".to_owned()
    } else {
        r.status.clone()
    };
    AccessRequest {
        id: r.id.clone(),
        status,
        requester: r.requester.clone(),
        role: r.role.clone(),
        incident: r.incident.clone(),
        reason: r.reason.clone(),
        approvals: serde_json::from_str(&r.approvals).unwrap_or_default(),
        approvals_needed: r.approvals_needed,
        denied_by: r.denied_by.clone(),
        decision_reason: r.decision_reason.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
        certificate,
    }
}

fn audit_failed(e: crate::audit::Error) -> ApiError {
    match e {
        crate::audit::Error::Write(m) if m.contains(store::STATE_CHANGED) => ApiError::Conflict(
            "the request was decided or approved by someone else a moment ago; look at it again"
                .into(),
        ),
        other => ApiError::AuditUnavailable(other.to_string()),
    }
}

impl Ca {
    /// Records a pending access request for a certificate request that the
    /// policy said needs approvals.
    pub(crate) async fn create_request(
        &self,
        caller: &Caller,
        request: &CertificateRequest,
        valid: &ValidRequest,
        id: &str,
        denied: &Denied,
    ) -> Result<AccessRequest, ApiError> {
        let now = Utc::now().timestamp();
        let stored = StoredRequest {
            id: id.to_owned(),
            requester: caller.identity(),
            role: valid.role.clone(),
            incident: valid.incident.clone(),
            reason: valid.reason.clone(),
            request: serde_json::to_string(request)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
            status: "pending".into(),
            approvals: "[]".into(),
            approvals_needed: self.policy().approvals_needed(&valid.role),
            denied_by: None,
            decision_reason: None,
            serial: None,
            created_at: now,
            expires_at: now + REQUEST_TTL_SECS,
        };
        let detail = json!({
            "request": id, "role": valid.role, "incident": valid.incident, "reason": valid.reason,
            "approvals_needed": stored.approvals_needed, "why": denied.message, "key_fingerprint": valid.fingerprint,
        });
        self.audit
            .record_change(
                Event {
                    kind: "request.created",
                    actor: caller.identity(),
                    outcome: Outcome::Info,
                    detail,
                },
                Change::CreateRequest(stored.clone()),
            )
            .await
            .map_err(audit_failed)?;
        Ok(to_wire(&stored, now, None))
    }

    fn load_request(&self, id: &str) -> Result<StoredRequest, ApiError> {
        self.read(|conn| store::access_request(conn, id))?
            .ok_or_else(|| ApiError::Missing(format!("no access request {id}")))
    }

    /// `GET /v1/requests/{id}`: the requester or an approver looks. For the
    /// requester, an approved request is turned into its certificate now.
    pub(crate) async fn look_at_request(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<AccessRequest, ApiError> {
        let stored = self.load_request(id)?;
        let now = Utc::now().timestamp();
        let identity = caller.identity();
        let is_requester = identity.eq_ignore_ascii_case(&stored.requester);
        if !is_requester
            && !self.policy().may_approve(
                &stored.role,
                &identity,
                caller.groups(),
                &stored.requester,
            )
        {
            return Err(ApiError::Forbidden(
                "only the requester and the role's approvers may see this request".into(),
            ));
        }
        if !(is_requester && stored.status == "approved") {
            return Ok(to_wire(&stored, now, None));
        }
        let request: CertificateRequest = serde_json::from_str(&stored.request)
            .map_err(|e| ApiError::Internal(format!("stored request: {e}")))?;
        let approvals: Vec<String> = serde_json::from_str(&stored.approvals).unwrap_or_default();
        match self
            .issue_as(
                caller,
                request,
                stored.id.clone(),
                &approvals,
                Some(&stored.id),
            )
            .await?
        {
            Issued::Certificate(certificate) => {
                let issued = StoredRequest {
                    status: "issued".into(),
                    ..stored
                };
                Ok(to_wire(&issued, now, Some(certificate)))
            }
            Issued::Pending(_) => Err(ApiError::Internal(
                "an approved request asked for approval again".into(),
            )),
        }
    }

    /// `GET /v1/requests`: pending requests `caller` may approve.
    pub(crate) fn requests_for(&self, caller: &Caller) -> Result<Vec<AccessRequest>, ApiError> {
        let now = Utc::now().timestamp();
        let identity = caller.identity();
        let policy = self.policy();
        Ok(self
            .read(|conn| store::pending_requests(conn, now))?
            .iter()
            .filter(|r| policy.may_approve(&r.role, &identity, caller.groups(), &r.requester))
            .map(|r| to_wire(r, now, None))
            .collect())
    }

    /// Approves (`approve = true`) or denies a pending request.
    pub(crate) async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<AccessRequest, ApiError> {
        let stored = self.load_request(id)?;
        let now = Utc::now().timestamp();
        let identity = caller.identity();
        let kind = if approve {
            "request.approved"
        } else {
            "request.denied"
        };
        let refuse = |code: &'static str, message: String| ApiError::Decision { code, message };
        let refusal = if identity.eq_ignore_ascii_case(&stored.requester) {
            Some(refuse(
                "self-approval",
                "you cannot approve or deny your own request; ask another approver".into(),
            ))
        } else if !self.policy().may_approve(
            &stored.role,
            &identity,
            caller.groups(),
            &stored.requester,
        ) {
            Some(refuse(
                "not-an-approver",
                format!("you are not an approver for role {:?}", stored.role),
            ))
        } else if stored.status != "pending" || now >= stored.expires_at {
            Some(ApiError::Conflict(format!(
                "request {id} is {}, not pending",
                to_wire(&stored, now, None).status
            )))
        } else if !approve && reason.as_deref().is_none_or(|r| r.trim().len() < 3) {
            Some(ApiError::InvalidBody(
                "a denial needs a reason (--reason)".into(),
            ))
        } else {
            None
        };
        if let Some(error) = refusal {
            return Err(self
                .refuse(
                    kind,
                    identity,
                    error,
                    json!({ "request": id, "role": stored.role }),
                )
                .await);
        }
        let reason = reason.map(|r| r.trim().chars().take(1000).collect::<String>());
        let (change, updated) = if approve {
            let mut approvals: Vec<String> =
                serde_json::from_str(&stored.approvals).unwrap_or_default();
            if !approvals.iter().any(|a| a.eq_ignore_ascii_case(&identity)) {
                approvals.push(identity.clone());
            }
            let status = if approvals.len() >= usize::from(stored.approvals_needed) {
                "approved"
            } else {
                "pending"
            };
            let encoded = serde_json::to_string(&approvals).unwrap_or_else(|_| "[]".into());
            let change = Change::Approve {
                id: id.to_owned(),
                expected: stored.approvals.clone(),
                approvals: encoded.clone(),
                status: status.to_owned(),
            };
            (
                change,
                StoredRequest {
                    approvals: encoded,
                    status: status.to_owned(),
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
                status: "denied".into(),
                denied_by: Some(identity.clone()),
                decision_reason: reason.clone(),
                ..stored.clone()
            };
            (change, updated)
        };
        let detail = json!({
            "request": id, "role": stored.role, "requester": stored.requester, "reason": reason, "status": updated.status,
        });
        self.audit
            .record_change(
                Event {
                    kind,
                    actor: identity,
                    outcome: Outcome::Info,
                    detail,
                },
                change,
            )
            .await
            .map_err(audit_failed)?;
        Ok(to_wire(&updated, now, None))
    }
}
