//! The CA as a service: the state every request shares, and the issuance
//! decision from authenticated caller to signed, audited certificate.
//!
//! Never: sign without a policy `Allowed`; answer before the audit row is
//! committed; return a certificate whose row failed to commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use shiftkey_wire::{CertificateRequest, CertificateResponse};

use crate::audit::{AuditLog, Event, Outcome};
use crate::http::error::ApiError;
use crate::identity::Caller;
use crate::issue::{self, ValidRequest};
use crate::keys::CaKeys;
use crate::metrics::{Metrics, RoleLabels};
use crate::oidc::OidcVerifier;
use crate::policy::Policy;
use crate::store::{Change, IssuedCertificate};

/// What `POST /v1/certificates` leads to.
#[derive(Debug)]
pub(crate) enum Issued {
    Certificate(CertificateResponse),
    /// The role needs approvals: an access request now waits for them.
    Pending(Box<shiftkey_wire::AccessRequest>),
}

/// Shared state of a running CA.
#[derive(Debug)]
pub(crate) struct Ca {
    pub(crate) keys: CaKeys,
    policy: RwLock<Arc<Policy>>,
    policy_path: PathBuf,
    pub(crate) audit: AuditLog,
    pub(crate) oidc: Option<OidcVerifier>,
    pub(crate) oidc_client_id: Option<String>,
    pub(crate) metrics: Metrics,
    /// Broadcast of revocations and incidents to `/v1/events` subscribers.
    pub(crate) events: crate::events::Events,
    /// Incoming webhooks' secrets and replay state (`http::webhooks`).
    pub(crate) webhooks: crate::http::webhooks::Webhooks,
    /// A read-only connection for lookups (incidents, revocations); writes
    /// go through `audit`.
    reader: std::sync::Mutex<rusqlite::Connection>,
    /// Last serial handed out. Serials only grow while the CA runs. After a
    /// restart the counter resumes from the highest stored serial, so a serial
    /// burned by a failed commit (signed, never recorded, never answered) may
    /// be used again; one that was answered never is.
    last_serial: AtomicU64,
}

impl Ca {
    // One argument per piece of shared state; called once, in `server::start`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        keys: CaKeys,
        policy: Policy,
        policy_path: PathBuf,
        audit: AuditLog,
        oidc: Option<(OidcVerifier, String)>,
        last_serial: u64,
        reader: rusqlite::Connection,
        webhooks: crate::http::webhooks::Webhooks,
    ) -> Self {
        let (oidc, oidc_client_id) = match oidc {
            Some((verifier, client_id)) => (Some(verifier), Some(client_id)),
            None => (None, None),
        };
        Self {
            reader: std::sync::Mutex::new(reader),
            events: crate::events::Events::new(),
            keys,
            policy: RwLock::new(Arc::new(policy)),
            policy_path,
            audit,
            oidc,
            oidc_client_id,
            metrics: Metrics::new(),
            webhooks,
            last_serial: AtomicU64::new(last_serial),
        }
    }

    /// The next certificate serial (user and host certificates share them).
    pub(crate) fn next_serial(&self) -> u64 {
        self.last_serial.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Runs a read-only query on the store.
    pub(crate) fn read<T>(
        &self,
        query: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ApiError> {
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        query(&conn).map_err(|e| ApiError::Internal(format!("store read failed: {e}")))
    }

    pub(crate) fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            // A panic while holding the lock cannot leave a half-written Arc.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the policy. A valid one replaces the current one; an invalid
    /// one is refused and the current one stays. Audited either way.
    pub(crate) async fn reload_policy(&self) -> Result<(), String> {
        let path = self.policy_path.clone();
        let loaded = tokio::task::spawn_blocking(move || Policy::load(&path))
            .await
            .map_err(|e| format!("policy loader failed: {e}"))?;
        match loaded {
            Ok(policy) => {
                let detail = json!({ "path": self.policy_path.display().to_string(), "roles": policy.roles().count() });
                self.audit
                    .record(Event {
                        kind: "policy.reloaded",
                        actor: "system".into(),
                        outcome: Outcome::Info,
                        detail,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                match self.policy.write() {
                    Ok(mut p) => *p = Arc::new(policy),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
                }
                self.metrics
                    .policy_reloads
                    .get_or_create(&crate::metrics::KindLabels { kind: "ok".into() })
                    .inc();
                tracing::info!(path = %self.policy_path.display(), "policy reloaded");
                Ok(())
            }
            Err(errors) => {
                let message = errors.to_string();
                let detail =
                    json!({ "path": self.policy_path.display().to_string(), "errors": message });
                self.audit
                    .record(Event {
                        kind: "policy.reload_refused",
                        actor: "system".into(),
                        outcome: Outcome::Error,
                        detail,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                self.metrics
                    .policy_reloads
                    .get_or_create(&crate::metrics::KindLabels {
                        kind: "invalid".into(),
                    })
                    .inc();
                tracing::warn!(path = %self.policy_path.display(), errors = %message, "new policy is invalid; keeping the current one");
                Err(message)
            }
        }
    }

    /// Audits a request refused before the policy could see it (bad input,
    /// failed authentication), then hands back the error to answer with.
    pub(crate) async fn refuse(
        &self,
        kind: &'static str,
        actor: String,
        error: ApiError,
        detail: serde_json::Value,
    ) -> ApiError {
        self.record_failure(kind, actor, Outcome::Deny, error, detail)
            .await
    }

    /// Audits a request the CA could not complete after deciding to (signing
    /// or encoding failed), then hands back the error to answer with.
    async fn fail(&self, actor: String, error: ApiError, detail: serde_json::Value) -> ApiError {
        self.record_failure("certificate.failed", actor, Outcome::Error, error, detail)
            .await
    }

    async fn record_failure(
        &self,
        kind: &'static str,
        actor: String,
        outcome: Outcome,
        error: ApiError,
        detail: serde_json::Value,
    ) -> ApiError {
        let mut detail = detail;
        if let Some(map) = detail.as_object_mut() {
            map.insert("error".into(), json!(error.code()));
            map.insert("message".into(), json!(error.message()));
        }
        match self
            .audit
            .record(Event {
                kind,
                actor,
                outcome,
                detail,
            })
            .await
        {
            Ok(_) => error,
            Err(e) => ApiError::AuditUnavailable(e.to_string()),
        }
    }

    /// The metrics label for a requested role: only roles the policy knows,
    /// so callers cannot grow the label set without bound.
    fn role_label<'a>(&self, role: &'a str) -> &'a str {
        if self.policy().role(role).is_some() {
            role
        } else {
            "(unknown)"
        }
    }

    /// `POST /v1/certificates`, after authentication.
    pub(crate) async fn issue(
        &self,
        caller: &Caller,
        request: CertificateRequest,
    ) -> Result<Issued, ApiError> {
        self.issue_as(caller, request, new_request_id(), &[], None)
            .await
    }

    /// The issuance decision. `approved_by` and `for_request` are set when an
    /// approved access request is being turned into its certificate (the
    /// request's ID is then the key ID's `req=`).
    pub(crate) async fn issue_as(
        &self,
        caller: &Caller,
        request: CertificateRequest,
        request_id: String,
        approved_by: &[String],
        for_request: Option<&str>,
    ) -> Result<Issued, ApiError> {
        let actor = caller.identity();
        let valid = match issue::validate(&request) {
            Ok(v) => v,
            Err(e) => {
                self.metrics.deny(self.role_label(&request.role), e.code());
                let detail = json!({ "req": request_id, "role": request.role.chars().take(64).collect::<String>() });
                return Err(self
                    .refuse(
                        "certificate.rejected",
                        actor,
                        ApiError::BadRequest(e),
                        detail,
                    )
                    .await);
            }
        };
        if let Some(reason) = self.read(|conn| crate::store::lock_of(conn, &actor))? {
            let denied = crate::policy::Denied {
                code: crate::policy::DenyCode::IdentityLocked,
                message: format!("an operator locked this identity out: {reason}"),
            };
            self.metrics
                .deny(self.role_label(&valid.role), denied.code.as_str());
            let detail = json!({ "req": request_id, "role": valid.role, "denied": denied.code.as_str(), "message": denied.message });
            self.audit
                .record(Event {
                    kind: "certificate.denied",
                    actor,
                    outcome: Outcome::Deny,
                    detail,
                })
                .await
                .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
            return Err(ApiError::Denied(denied));
        }
        let policy = self.policy();
        let now = Utc::now();
        let incident_state = match &valid.incident {
            Some(id) => Some(self.incident_state(id)?),
            None => None,
        };
        // Overrides only matter to roles that ask who is on call; the others
        // skip the store read.
        let overrides = match policy.role(&valid.role) {
            Some(role) if !role.require_on_call().is_empty() => self.overrides()?,
            _ => Vec::new(),
        };
        let allowed = match policy.evaluate(&valid.query(
            &actor,
            caller.groups(),
            incident_state,
            approved_by,
            &overrides,
            now,
        )) {
            Ok(allowed) => allowed,
            Err(denied)
                if denied.code == crate::policy::DenyCode::ApprovalRequired
                    && for_request.is_none() =>
            {
                let pending = self
                    .create_request(caller, &request, &valid, &request_id, &denied)
                    .await?;
                return Ok(Issued::Pending(Box::new(pending)));
            }
            Err(denied) => {
                self.metrics
                    .deny(self.role_label(&valid.role), denied.code.as_str());
                let detail = json!({
                    "req": request_id,
                    "role": valid.role,
                    "incident": valid.incident,
                    "reason": valid.reason,
                    "groups": caller.groups(),
                    "key_fingerprint": valid.fingerprint,
                    "denied": denied.code.as_str(),
                    "message": denied.message,
                });
                self.audit
                    .record(Event {
                        kind: "certificate.denied",
                        actor,
                        outcome: Outcome::Deny,
                        detail,
                    })
                    .await
                    .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
                return Err(ApiError::Denied(denied));
            }
        };
        let serial = self.next_serial();
        let signed = issue::certify(
            &self.keys.user,
            &caller.key_id_subject(),
            &valid,
            &allowed,
            &request_id,
            serial,
        );
        let issue::Signed {
            key_id,
            certificate,
            line,
        } = match signed {
            Ok(signed) => signed,
            Err(e) => {
                let detail = json!({ "req": request_id, "role": valid.role, "serial": serial });
                return Err(self
                    .fail(actor, ApiError::Internal(e.to_string()), detail)
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
        let committed = self
            .audit
            .record_change(
                Event {
                    kind: "certificate.issued",
                    actor,
                    outcome: Outcome::Allow,
                    detail,
                },
                match for_request {
                    Some(id) => Change::IssueForRequest {
                        certificate: row,
                        request: id.to_owned(),
                    },
                    None => Change::Issue(row),
                },
            )
            .await;
        match committed {
            Ok(_) => {}
            // The incident was resolved between the policy's look and this
            // commit: the store's trigger refused the certificate.
            Err(crate::audit::Error::Write(m)) if m.contains(crate::store::INCIDENT_NOT_OPEN) => {
                let denied = crate::policy::Denied {
                    code: crate::policy::DenyCode::IncidentResolved,
                    message: "the incident was resolved while the certificate was being issued; access under it has ended"
                        .into(),
                };
                self.metrics
                    .deny(self.role_label(&valid.role), denied.code.as_str());
                let detail = json!({ "req": request_id, "role": valid.role, "incident": valid.incident, "serial": serial,
                                     "denied": denied.code.as_str(), "message": denied.message });
                self.audit
                    .record(Event {
                        kind: "certificate.denied",
                        actor: caller.identity(),
                        outcome: Outcome::Deny,
                        detail,
                    })
                    .await
                    .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
                return Err(ApiError::Denied(denied));
            }
            Err(other) => return Err(ApiError::AuditUnavailable(other.to_string())),
        }
        self.metrics
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
            self.audit
                .record(Event {
                    kind: "break_glass.used",
                    actor: caller.identity(),
                    outcome: Outcome::Allow,
                    detail,
                })
                .await
                .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        }
        Ok(Issued::Certificate(response))
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
        issued_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        certificate: line.to_owned(),
    }
}

/// `r_` and 12 hex digits: names one request in key IDs and audit rows.
fn new_request_id() -> String {
    use ssh_key::rand_core::Rng;
    let mut bytes = [0u8; 6];
    crate::keys::rng().fill_bytes(&mut bytes);
    format!("r_{}", hex::encode(bytes))
}
