//! Issuing user certificates: from an authenticated caller's request to a
//! signed, audited certificate — validate → lock check → policy → sign →
//! commit with its audit row → answer. A role that wants approvals turns
//! the request into a pending access request instead.
//!
//! Never: sign without a policy `Allowed`; answer before the audit row is
//! committed; return a certificate whose row failed to commit.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use shiftkey_wire::{AccessRequest, CertificateRequest, CertificateResponse};

use crate::audit::{self, Event, Explain, Outcome};
use crate::base::Base;
use crate::clock::now_rfc3339;
use crate::identity::Caller;
use crate::incidents::Incidents;
use crate::issue::{self, RequestError, ValidRequest};
use crate::metrics::RoleLabels;
use crate::oncall::OnCall;
use crate::policy::{Denied, DenyCode};
use crate::store::{self, Change, Conflict, IssuedCertificate, RequestStatus, StoredRequest};

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The request is malformed; the policy never saw it.
    #[error(transparent)]
    Rejected(RequestError),
    /// The policy (or a lock, or a resolution a moment ago) said no.
    #[error("{}", .0.message)]
    Denied(Denied),
    /// Signing or encoding the certificate failed.
    #[error("signing failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read the store: {0}")]
    Store(#[from] store::Error),
    #[error(transparent)]
    OnCall(crate::oncall::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::Rejected(e) => e.code(),
            Error::Denied(d) => d.code.as_str(),
            Error::Signing(_) | Error::Store(_) | Error::OnCall(_) => "internal-error",
            Error::Audit(_) => "audit-unavailable",
        }
    }

    fn message(&self) -> String {
        match self {
            Error::Rejected(e) => e.to_string(),
            Error::Denied(d) => d.message.clone(),
            Error::Signing(_) | Error::Store(_) | Error::OnCall(_) => {
                "the CA failed to handle the request".into()
            }
            Error::Audit(_) => "the CA cannot write its audit log, so it refuses to act".into(),
        }
    }
}

/// What a certificate request leads to.
#[derive(Debug)]
pub(crate) enum Issued {
    Certificate(CertificateResponse),
    /// The role needs approvals: an access request now waits for them.
    Pending(Box<AccessRequest>),
}

/// An approved access request being turned into its certificate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Approved<'a> {
    /// The request's ID, the key ID's `req=`.
    pub(crate) request: &'a str,
    pub(crate) approvals: &'a [String],
}

#[derive(Debug)]
pub(crate) struct Issuance {
    base: Base,
    incidents: Arc<Incidents>,
    oncall: Arc<OnCall>,
}

impl Issuance {
    pub(crate) fn new(base: &Base, incidents: Arc<Incidents>, oncall: Arc<OnCall>) -> Self {
        Self {
            base: base.clone(),
            incidents,
            oncall,
        }
    }

    /// The metrics label for a requested role: only roles the policy knows,
    /// so callers cannot grow the label set without bound.
    fn role_label<'a>(&self, role: &'a str) -> &'a str {
        if self.base.policy.get().role(role).is_some() {
            role
        } else {
            "(unknown)"
        }
    }

    /// Audits a request refused before the policy could see it (bad input,
    /// failed authentication) and hands back the error to answer with.
    pub(crate) async fn reject<E>(&self, actor: String, error: E, detail: serde_json::Value) -> E
    where
        E: Explain + From<audit::Error>,
    {
        self.base
            .audit
            .refuse("certificate.rejected", actor, Outcome::Deny, error, detail)
            .await
    }

    /// The one way a denial is answered: counted, audited as
    /// `certificate.denied` (with `detail`, the code and the message), then
    /// returned.
    async fn deny(
        &self,
        actor: String,
        role: &str,
        denied: Denied,
        detail: serde_json::Value,
    ) -> Error {
        self.base
            .metrics
            .deny(self.role_label(role), denied.code.as_str());
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("denied".into(), json!(denied.code.as_str()));
            map.insert("message".into(), json!(denied.message));
        }
        match self
            .base
            .audit
            .record(Event::new(
                "certificate.denied",
                actor,
                Outcome::Deny,
                detail,
            ))
            .await
        {
            Ok(_) => Error::Denied(denied),
            Err(e) => Error::Audit(e),
        }
    }

    /// `POST /v1/certificates`, after authentication.
    pub(crate) async fn issue(
        &self,
        caller: &Caller,
        request: CertificateRequest,
    ) -> Result<Issued, Error> {
        self.issue_as(caller, request, new_request_id(), None).await
    }

    /// The issuance decision. `approved` is set when an approved access
    /// request is being turned into its certificate.
    pub(crate) async fn issue_as(
        &self,
        caller: &Caller,
        request: CertificateRequest,
        request_id: String,
        approved: Option<Approved<'_>>,
    ) -> Result<Issued, Error> {
        let actor = caller.identity();
        let valid = match issue::validate(&request)
            .and_then(|v| issue::not_a_ca_key(&v.public_key, &self.base.keys).map(|()| v))
        {
            Ok(v) => v,
            Err(e) => {
                self.base
                    .metrics
                    .deny(self.role_label(&request.role), e.code());
                let detail = json!({ "req": request_id, "role": request.role.chars().take(64).collect::<String>() });
                return Err(self.reject(actor, Error::Rejected(e), detail).await);
            }
        };
        let policy = self.base.policy.get();
        // Any identity of the caller's person locked locks them all.
        if let Some(reason) =
            crate::authority::person_lock(self.base.store.as_ref(), &policy, &actor).await?
        {
            let denied = Denied {
                code: DenyCode::IdentityLocked,
                message: format!("an operator locked this identity out: {reason}"),
            };
            let detail = json!({ "req": request_id, "role": valid.role });
            return Err(self.deny(actor, &valid.role, denied, detail).await);
        }
        let incident_state = match &valid.incident {
            Some(id) => Some(self.incidents.state(id).await?),
            None => None,
        };
        // Overrides only matter to roles that ask who is on call; the others
        // skip the store read.
        let overrides = match policy.role(&valid.role) {
            Some(role) if !role.require_on_call().is_empty() => {
                self.oncall.overrides().await.map_err(Error::OnCall)?
            }
            _ => Vec::new(),
        };
        let approved_by = approved.map_or(&[][..], |a| a.approvals);
        let decision = policy.evaluate(&valid.query(
            &actor,
            caller.groups(),
            incident_state,
            approved_by,
            &overrides,
            Utc::now(),
        ));
        let allowed = match decision {
            Ok(allowed) => allowed,
            Err(denied) if denied.code == DenyCode::ApprovalRequired && approved.is_none() => {
                let pending = self
                    .create_request(caller, &request, &valid, &request_id, &denied)
                    .await?;
                return Ok(Issued::Pending(Box::new(pending)));
            }
            Err(denied) => {
                let detail = json!({
                    "req": request_id,
                    "role": valid.role,
                    "incident": valid.incident,
                    "reason": valid.reason,
                    "groups": caller.groups(),
                    "key_fingerprint": valid.fingerprint,
                });
                return Err(self.deny(actor, &valid.role, denied, detail).await);
            }
        };
        let serial = self.base.next_serial().await?;
        let signed = issue::certify(
            &self.base.keys.user(),
            &caller.key_id_subject(),
            &valid,
            &allowed,
            &request_id,
            serial,
        )
        .await;
        let issue::Signed {
            key_id,
            certificate,
            line,
        } = match signed {
            Ok(signed) => signed,
            Err(e) => {
                let detail = json!({ "req": request_id, "role": valid.role, "serial": serial });
                return Err(self
                    .base
                    .audit
                    .refuse(
                        "certificate.failed",
                        actor,
                        Outcome::Error,
                        Error::Signing(e.to_string()),
                        detail,
                    )
                    .await);
            }
        };
        let row = issued_row(
            caller,
            &valid,
            &request_id,
            serial,
            &key_id,
            &certificate,
            &line,
        );
        let detail = json!({
            "req": request_id,
            "serial": serial,
            "key_id": key_id,
            "role": valid.role,
            "incident": valid.incident,
            "reason": valid.reason,
            "groups": caller.groups(),
            "principals": row.principals,
            "logins": allowed.logins(),
            "valid_after": row.valid_after,
            "valid_before": row.valid_before,
            "limited_by": allowed.limited_by().as_str(),
            "break_glass": allowed.break_glass(),
            "key_fingerprint": valid.fingerprint,
        });
        let response = CertificateResponse {
            certificate: line,
            serial,
            key_id,
            principals: row.principals.clone(),
            valid_after: row.valid_after,
            valid_before: row.valid_before,
        };
        let change = match approved {
            Some(a) => Change::IssueForRequest {
                certificate: row,
                request: a.request.to_owned(),
            },
            None => Change::Issue(row),
        };
        let committed = self
            .base
            .audit
            .record_change(
                Event::new("certificate.issued", actor.clone(), Outcome::Allow, detail),
                change,
            )
            .await;
        match committed {
            Ok(_) => {}
            // The incident was resolved between the policy's look and this
            // commit: the store refused the certificate.
            Err(audit::Error::Conflict(Conflict::IncidentNotOpen)) => {
                let denied = Denied {
                    code: DenyCode::IncidentResolved,
                    message: "the incident was resolved while the certificate was being issued; access under it has ended"
                        .into(),
                };
                let detail = json!({ "req": request_id, "role": valid.role, "incident": valid.incident, "serial": serial });
                return Err(self.deny(actor, &valid.role, denied, detail).await);
            }
            Err(other) => return Err(Error::Audit(other)),
        }
        self.base
            .metrics
            .issued
            .get_or_create(&RoleLabels {
                role: valid.role.clone(),
            })
            .inc();
        if allowed.break_glass() {
            // Loud: its own row, which the event stream and the notification
            // webhook carry to people (the issuance row is flagged too).
            let detail = json!({
                "serial": response.serial,
                "key_id": response.key_id,
                "role": valid.role,
                "reason": valid.reason,
                "principals": response.principals,
                "valid_before": response.valid_before,
            });
            self.base
                .audit
                .record(Event::new(
                    "break_glass.used",
                    actor,
                    Outcome::Allow,
                    detail,
                ))
                .await?;
        }
        Ok(Issued::Certificate(response))
    }

    /// Records a pending access request for a certificate request that the
    /// policy said needs approvals.
    async fn create_request(
        &self,
        caller: &Caller,
        request: &CertificateRequest,
        valid: &ValidRequest,
        id: &str,
        denied: &Denied,
    ) -> Result<AccessRequest, Error> {
        let now = Utc::now().timestamp();
        let policy = self.base.policy.get();
        let pending_ttl = policy
            .role(&valid.role)
            .map_or(0, |r| i64::try_from(r.pending_ttl().as_secs()).unwrap_or(0));
        let stored = StoredRequest {
            id: id.to_owned(),
            requester: caller.identity(),
            role: valid.role.clone(),
            incident: valid.incident.clone(),
            reason: valid.reason.clone(),
            request: serde_json::to_string(request).map_err(|e| Error::Signing(e.to_string()))?,
            status: RequestStatus::Pending,
            approvals: Vec::new(),
            approvals_needed: policy.approvals_needed(&valid.role),
            denied_by: None,
            decision_reason: None,
            serial: None,
            created_at: now,
            expires_at: now.saturating_add(pending_ttl),
        };
        let detail = json!({
            "request": id, "role": valid.role, "incident": valid.incident, "reason": valid.reason,
            "approvals_needed": stored.approvals_needed, "why": denied.message, "key_fingerprint": valid.fingerprint,
        });
        self.base
            .audit
            .record_change(
                Event::new("request.created", caller.identity(), Outcome::Info, detail),
                Change::CreateRequest(stored.clone()),
            )
            .await?;
        Ok(access_request(&stored, now, None))
    }
}

/// An access request as the API shows it (`expired` once a pending or
/// approved one is past its time, even before the CA marked it so).
pub(crate) fn access_request(
    r: &StoredRequest,
    now: i64,
    certificate: Option<CertificateResponse>,
) -> AccessRequest {
    let status = if crate::requests::is_expired(r.status, r.expires_at, now) {
        "expired".to_owned()
    } else {
        r.status.as_str().to_owned()
    };
    AccessRequest {
        id: r.id.clone(),
        status,
        requester: r.requester.clone(),
        role: r.role.clone(),
        incident: r.incident.clone(),
        reason: r.reason.clone(),
        approvals: r.approvals.clone(),
        approvals_needed: r.approvals_needed,
        denied_by: r.denied_by.clone(),
        decision_reason: r.decision_reason.clone(),
        created_at: r.created_at,
        expires_at: r.expires_at,
        certificate,
    }
}

fn issued_row(
    caller: &Caller,
    valid: &ValidRequest,
    request_id: &str,
    serial: u64,
    key_id: &str,
    certificate: &ssh_key::Certificate,
    line: &str,
) -> IssuedCertificate {
    IssuedCertificate {
        serial,
        key_id: key_id.to_owned(),
        identity: caller.identity(),
        role: valid.role.clone(),
        incident: valid.incident.clone(),
        request_id: request_id.to_owned(),
        principals: certificate.valid_principals().to_vec(),
        valid_after: certificate.valid_after(),
        valid_before: certificate.valid_before(),
        key_fingerprint: valid.fingerprint.clone(),
        issued_at: now_rfc3339(),
        certificate: line.to_owned(),
    }
}

/// `r_` and 12 hex digits: names one request in key IDs and audit rows.
pub(crate) fn new_request_id() -> String {
    use ssh_key::rand_core::Rng;
    let mut bytes = [0u8; 6];
    crate::keys::rng().fill_bytes(&mut bytes);
    format!("r_{}", hex::encode(bytes))
}
