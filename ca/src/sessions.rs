//! `POST /v1/sessions`: the CA decides whether a bastion may open a session
//! for a user's certificate to a target, and mints the certificate for the
//! bastion's one-session key.
//!
//! The bastion has checked the certificate already (`verify_user_cert`); the
//! CA checks again against what only it knows: the certificate is one it
//! issued and recorded, not revoked, nobody of its person locked, it names
//! the login for its role (`LOGIN@ROLE`, or the bare login where the role
//! keeps `bare_principals`), its role (as the policy says now) covers the
//! target host and port, its incident is still open. Allowed or denied, the
//! decision is audited before the answer leaves. The one-session
//! certificate carries the same principals for that login, so an enrolled
//! target's principals file decides by role as it does for direct access.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use shiftkey_wire::{SessionGrant, SessionRequest};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Certificate, HashAlg, PublicKey};

use crate::audit::{self, Event, Outcome};
use crate::base::Base;
use crate::hosts::{EnrolledHost, HostKind, canonical_target};
use crate::incidents::Incidents;
use crate::keys::rng;
use crate::metrics::{KindLabels, RoleLabels};
use crate::policy::{IncidentState, scoped_principal};
use crate::store::{
    self, Change, Conflict, IssuedCertificate, KnownCertificate, Session, SessionStatus,
};

mod forwards;

/// Lifetime of a one-session certificate: long enough to connect, useless
/// soon after (the session itself then lives on the open connection).
pub(crate) const SESSION_CERT_TTL: Duration = Duration::from_secs(120);
/// Backdating for the target's clock.
const BACKDATE: Duration = Duration::from_secs(30);
/// User certificate extensions carried to the one-session certificate. The
/// bastion enforces forwarding itself; the target sees what the user holds.
const CARRIED_EXTENSIONS: [&str; 5] = [
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Why a session was refused: the code goes to the audit row and the
/// answer, the message to the user's terminal.
struct Refusal {
    code: &'static str,
    message: String,
    /// Who, when the certificate told us.
    identity: Option<String>,
}

fn refusal(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        identity: None,
    }
}

/// What the checks establish about an allowed session.
struct Checked {
    user_cert: Certificate,
    known: KnownCertificate,
    role: crate::policy::Role,
    session_key: PublicKey,
    /// The user certificate's principals for the requested login.
    principals: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The CA refused the session; the code is in the audit row and the
    /// answer, the message goes to the user's terminal.
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    #[error("only bastions report refusals")]
    NotABastion,
    #[error("signing failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

/// The CA's decisions on bastion sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    base: Base,
    incidents: Arc<Incidents>,
}

impl Sessions {
    pub(crate) fn new(base: &Base, incidents: Arc<Incidents>) -> Self {
        Self {
            base: base.clone(),
            incidents,
        }
    }

    /// `POST /v1/sessions`: checks, audits and, when allowed, signs the
    /// one-session certificate.
    pub(crate) async fn authorize(
        &self,
        bastion: &EnrolledHost,
        request: SessionRequest,
    ) -> Result<SessionGrant, Error> {
        let mut request = request;
        let asked = clip(&request.target_host);
        // One host, one name: what is checked, recorded and signed for.
        request.target_host = canonical_target(&request.target_host);
        let mut detail = json!({
            "bastion": bastion.name,
            "target": format!("{}:{}", clip(&request.target_host), request.target_port),
            "principal": clip(&request.principal),
            "client_address": clip(&request.client_address),
        });
        if asked != request.target_host {
            detail["target_as_asked"] = json!(asked);
        }
        match self.check(bastion, &request).await {
            Ok(checked) => self.grant(bastion, &request, checked, detail).await,
            Err(refusal) => Err(self.deny(bastion, refusal, detail).await),
        }
    }

    /// Audits a refused session (`session.denied`), counts it, and hands
    /// back the answer: every refusal, whichever path found it, goes
    /// through here before it leaves.
    async fn deny(
        &self,
        bastion: &EnrolledHost,
        refusal: Refusal,
        detail: serde_json::Value,
    ) -> Error {
        self.deny_as("session.denied", bastion, refusal, detail)
            .await
    }

    /// [`Self::deny`] under another audit action (`session.forward_denied`).
    async fn deny_as(
        &self,
        action: &'static str,
        bastion: &EnrolledHost,
        refusal: Refusal,
        detail: serde_json::Value,
    ) -> Error {
        let Refusal {
            code,
            message,
            identity,
        } = refusal;
        let mut detail = detail;
        detail["denied"] = json!(code);
        detail["message"] = json!(message);
        self.base.metrics.deny("(session)", code);
        let recorded = self
            .base
            .audit
            .record(Event::new(
                action,
                identity.unwrap_or_else(|| bastion.identity()),
                Outcome::Deny,
                detail,
            ))
            .await;
        match recorded {
            Ok(_) => Error::Denied { code, message },
            Err(e) => Error::Audit(e),
        }
    }

    /// `POST /v1/sessions/refused`: a refusal the bastion made on its own,
    /// recorded as `session.denied` with the bastion as its source — only
    /// for a certificate this CA's user key signed. Anyone can make
    /// certificates with a CA of their own, as many as they like: those are
    /// counted (`bastion_reports_dropped`) and dropped, so that they cannot
    /// flood the audit log through a bastion. Returns whether it was
    /// recorded.
    pub(crate) async fn record_bastion_refusal(
        &self,
        bastion: &EnrolledHost,
        refusal: shiftkey_wire::SessionRefusal,
    ) -> Result<bool, Error> {
        if bastion.kind != HostKind::Bastion {
            return Err(Error::NotABastion);
        }
        let parsed = Certificate::from_openssh(refusal.user_certificate.trim()).ok();
        let Some(cert) = parsed.filter(|c| self.signed_by_user_ca(c)) else {
            self.base
                .metrics
                .reports_dropped
                .get_or_create(&KindLabels {
                    kind: "not-this-ca".into(),
                })
                .inc();
            tracing::debug!(
                bastion = %bastion.name,
                "dropped a refused-login report: the certificate is not signed by this CA's user key"
            );
            return Ok(false);
        };
        // Who it was, as far as the certificate says.
        let subject = cert
            .key_id()
            .split(' ')
            .next()
            .map(clip)
            .filter(|s| crate::identity::is_safe_token(s))
            .map_or_else(|| bastion.identity(), |s| format!("presented:{s}"));
        let detail = json!({
            "reported_by": bastion.identity(),
            "denied": clip(&refusal.code),
            "message": clip(&refusal.message),
            "principal": refusal.principal.as_deref().map(clip),
            "target": refusal.target.as_deref().map(clip),
            "client_address": clip(&refusal.client_address),
            "key_id": clip(cert.key_id()),
            "user_serial": cert.serial(),
            "signed_by": cert.signature_key().fingerprint(HashAlg::Sha256).to_string(),
        });
        self.base.metrics.deny("(session)", "bastion-refused");
        self.base
            .audit
            .record(Event::new("session.denied", subject, Outcome::Deny, detail))
            .await?;
        Ok(true)
    }

    /// Whether this CA's user key signed `cert`: the signature and the
    /// signer only, not the validity window (an expired certificate, one
    /// of ours, is worth its audit row; checked at its own start, the
    /// window holds for any certificate that was ever valid).
    fn signed_by_user_ca(&self, cert: &Certificate) -> bool {
        let cas = self.base.keys.user_fingerprints();
        cert.validate_at(cert.valid_after(), cas.iter()).is_ok()
    }

    async fn check(
        &self,
        bastion: &EnrolledHost,
        request: &SessionRequest,
    ) -> Result<Checked, Refusal> {
        let unavailable =
            |_: store::Error| refusal("store-unavailable", "the CA cannot read its store");
        if bastion.kind != HostKind::Bastion {
            return Err(refusal(
                "not-a-bastion",
                "only enrolled bastions may open sessions",
            ));
        }
        let user_cert = Certificate::from_openssh(request.user_certificate.trim())
            .map_err(|_| refusal("invalid-certificate", "the user certificate cannot be read"))?;
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        let cas = self.base.keys.user_fingerprints();
        if user_cert.cert_type() != CertType::User {
            return Err(refusal("invalid-certificate", "not a user certificate"));
        }
        user_cert.validate_at(now, cas.iter()).map_err(|_| {
            refusal(
                "certificate-invalid",
                "the certificate is expired or not signed by this CA; run `shiftkey access` again",
            )
        })?;
        let known = self
            .base
            .store
            .user_certificate(user_cert.serial())
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                refusal(
                    "certificate-unknown",
                    "this CA has no record of the certificate",
                )
            })?;
        let fingerprint = user_cert
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        let with_identity = |code, message: String| Refusal {
            code,
            message,
            identity: Some(known.identity.clone()),
        };
        if known.key_fingerprint != fingerprint || known.key_id != user_cert.key_id() {
            return Err(with_identity(
                "certificate-unknown",
                "the certificate does not match the one this CA recorded under its serial".into(),
            ));
        }
        let policy = self.base.policy.get();
        if let Some(reason) =
            crate::authority::person_lock(self.base.store.as_ref(), &policy, &known.identity)
                .await
                .map_err(unavailable)?
        {
            return Err(with_identity(
                "identity-locked",
                format!("an operator locked this identity out: {reason}"),
            ));
        }
        if known.revoked {
            return Err(with_identity(
                "certificate-revoked",
                format!("certificate serial {} is revoked", user_cert.serial()),
            ));
        }
        // The bastion asks for the login the user gave; the certificate
        // names it for its role (`LOGIN@ROLE`), and bare only where the
        // role keeps bare principals.
        let principals: Vec<String> = if crate::issue::is_valid_name(&request.principal) {
            [
                scoped_principal(&request.principal, &known.role),
                request.principal.clone(),
            ]
            .into_iter()
            .filter(|p| user_cert.valid_principals().contains(p))
            .collect()
        } else {
            Vec::new()
        };
        if principals.is_empty() {
            return Err(with_identity(
                "principal-not-in-certificate",
                format!(
                    "the certificate does not allow the login {:?} (it allows {})",
                    clip(&request.principal),
                    user_cert.valid_principals().join(", ")
                ),
            ));
        }
        let role = policy.role(&known.role).cloned().ok_or_else(|| {
            with_identity(
                "role-gone",
                format!("the role {:?} is no longer in the policy", known.role),
            )
        })?;
        if crate::hosts::check_names("target", std::slice::from_ref(&request.target_host)).is_err()
        {
            return Err(with_identity(
                "host-not-in-role",
                format!(
                    "{:?} is not a host name or address",
                    clip(&request.target_host)
                ),
            ));
        }
        policy
            .check_target(&known.role, &request.target_host, request.target_port)
            .map_err(|denied| with_identity(denied.code.as_str(), denied.message))?;
        if let Some(incident) = &known.incident {
            match self.incidents.state(incident).await.map_err(unavailable)? {
                IncidentState::Open { .. } => {}
                _ => {
                    return Err(with_identity(
                        "incident-resolved",
                        format!("incident {incident} is resolved; access under it has ended"),
                    ));
                }
            }
        }
        let session_key = crate::issue::parse_public_key(&request.session_key)
            .ok()
            .filter(|k| k.algorithm() == ssh_key::Algorithm::Ed25519)
            .ok_or_else(|| {
                refusal(
                    "invalid-session-key",
                    "the session key must be an ed25519 public key",
                )
            })?;
        Ok(Checked {
            user_cert,
            known,
            role,
            session_key,
            principals,
        })
    }

    async fn grant(
        &self,
        bastion: &EnrolledHost,
        request: &SessionRequest,
        checked: Checked,
        detail: serde_json::Value,
    ) -> Result<SessionGrant, Error> {
        let Checked {
            user_cert,
            known,
            role,
            session_key,
            principals,
        } = checked;
        let session_id = new_session_id();
        let serial = self.base.next_serial().await?;
        let now = Utc::now();
        let now_secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let valid_after = now_secs.saturating_sub(BACKDATE.as_secs());
        let valid_before = (now_secs + SESSION_CERT_TTL.as_secs()).min(user_cert.valid_before());
        // The user's key ID, with the session named: `alice@example.com
        // role=db-debug incident=INC-42 session=s_.. via=1042 serial=1043`.
        let subject = known.key_id.split(' ').next().unwrap_or("unknown");
        let mut key_id = format!("{subject} role={}", known.role);
        if let Some(incident) = &known.incident {
            key_id.push_str(&format!(" incident={incident}"));
        }
        key_id.push_str(&format!(
            " session={session_id} via={} serial={serial}",
            user_cert.serial()
        ));
        let build = || -> Result<Builder, ssh_key::Error> {
            let mut b = Builder::new_with_random_nonce(
                &mut rng(),
                session_key.key_data().clone(),
                valid_after,
                valid_before,
            )?;
            b.serial(serial)?
                .cert_type(CertType::User)?
                .key_id(key_id.as_str())?;
            for principal in &principals {
                b.valid_principal(principal.clone())?;
            }
            if let Some(command) = user_cert.critical_options().get("force-command") {
                b.critical_option("force-command", command.clone())?;
            }
            for (name, _) in user_cert.extensions().iter() {
                if CARRIED_EXTENSIONS.contains(&name.as_str()) {
                    b.extension(name.clone(), "")?;
                }
            }
            Ok(b)
        };
        let builder = build().map_err(|e| Error::Signing(e.to_string()))?;
        let certificate = self
            .base
            .keys
            .user()
            .certify(builder)
            .await
            .map_err(|e| Error::Signing(e.to_string()))?;
        let line = certificate
            .to_openssh()
            .map_err(|e| Error::Signing(format!("encoding: {e}")))?;
        let target = format!("{}:{}", request.target_host, request.target_port);
        let row = IssuedCertificate {
            serial,
            key_id: key_id.clone(),
            identity: known.identity.clone(),
            role: known.role.clone(),
            incident: known.incident.clone(),
            request_id: session_id.clone(),
            principals: principals.clone(),
            valid_after,
            valid_before,
            key_fingerprint: session_key.fingerprint(HashAlg::Sha256).to_string(),
            issued_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            certificate: line.clone(),
        };
        let session = Session {
            id: session_id.clone(),
            identity: known.identity.clone(),
            user_serial: user_cert.serial(),
            session_serial: serial,
            role: known.role.clone(),
            incident: known.incident.clone(),
            principal: request.principal.clone(),
            target,
            client_address: request.client_address.clone(),
            bastion: bastion.name.clone(),
            started_at: now.timestamp(),
            ended_at: None,
            exit_status: None,
            end_reason: None,
            status: SessionStatus::Live,
            last_seen: None,
            recording_deleted_at: None,
            held: None,
        };
        let denied_detail = detail.clone();
        let mut detail = detail;
        detail["session"] = json!(session_id);
        detail["user_serial"] = json!(user_cert.serial());
        detail["serial"] = json!(serial);
        detail["key_id"] = json!(key_id);
        detail["role"] = json!(known.role);
        detail["incident"] = json!(known.incident);
        detail["valid_before"] = json!(valid_before);
        let committed = self
            .base
            .audit
            .record_change(
                Event::new(
                    "session.authorized",
                    known.identity.clone(),
                    Outcome::Allow,
                    detail,
                ),
                Change::StartSession {
                    certificate: row,
                    session: Box::new(session),
                },
            )
            .await;
        match committed {
            Ok(_) => {}
            // Resolved between the check and the commit: denied like any
            // other refusal, audited before the answer.
            Err(audit::Error::Conflict(Conflict::IncidentNotOpen)) => {
                let refusal = Refusal {
                    code: "incident-resolved",
                    message: "the incident was resolved a moment ago; access under it has ended"
                        .into(),
                    identity: Some(known.identity.clone()),
                };
                return Err(self.deny(bastion, refusal, denied_detail).await);
            }
            Err(e) => return Err(Error::Audit(e)),
        }
        self.base
            .metrics
            .sessions
            .get_or_create(&RoleLabels {
                role: known.role.clone(),
            })
            .inc();
        Ok(SessionGrant {
            session_id,
            certificate: line,
            valid_before,
            identity: known.identity,
            role: known.role,
            incident: known.incident,
            user_serial: user_cert.serial(),
            max_session_seconds: role.max_session().as_secs(),
            idle_timeout_seconds: role.idle_timeout().as_secs(),
        })
    }
}

/// `s_` and 16 hex digits.
fn new_session_id() -> String {
    use ssh_key::rand_core::Rng;
    let mut bytes = [0u8; 8];
    rng().fill_bytes(&mut bytes);
    format!("s_{}", hex::encode(bytes))
}

/// Caller-supplied text as it may appear in an audit row.
fn clip(s: &str) -> String {
    s.chars().take(253).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests;
