//! Enrolled hosts and bastions: one-time join tokens, host certificates,
//! and how an enrolled machine proves who it is on each request.
//!
//! A host is enrolled once with a join token from `shiftkey-ca hosts token`
//! (one use, short-lived, only its hash stored). From then on its identity is
//! its host key plus the host certificate the CA signed for it: requests
//! carry an SSHSIG by that key (`shiftkey_wire::host_auth`), and renewal
//! needs a certificate that is still valid. No standing secret exists.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use shiftkey_wire::{HostCertificateResponse, host_auth};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{HashAlg, PublicKey};

use crate::audit::{self, Audit, Event, Explain, Outcome};
use crate::base::Base;
use crate::issue::RequestError;
use crate::keys::rng;
use crate::store::{self, Change, Conflict, HostCertificate, StoredHost, StoredToken};

/// How long a host's certificate is valid; the refresh timer renews it once
/// less than a third is left.
pub(crate) const HOST_CERT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a bastion's own certificate (its identity towards the CA) and the
/// certificates it presents for targets are valid.
pub(crate) const BASTION_CERT_TTL: Duration = Duration::from_secs(3600);
/// Certificates start this much in the past, for hosts whose clock runs behind.
const BACKDATE: Duration = Duration::from_secs(300);
/// The longest a join token may be valid.
pub(crate) const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const TOKEN_PREFIX: &str = "skjt1";

/// `host` (sshd trusts the CA) or `bastion` (may also ask for sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKind {
    Host,
    Bastion,
}

impl HostKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HostKind::Host => "host",
            HostKind::Bastion => "bastion",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "host" => Some(HostKind::Host),
            "bastion" => Some(HostKind::Bastion),
            _ => None,
        }
    }

    fn ttl(self) -> Duration {
        match self {
            HostKind::Host => HOST_CERT_TTL,
            HostKind::Bastion => BASTION_CERT_TTL,
        }
    }
}

/// An enrolled machine that proved possession of its host key and presented
/// a valid host certificate of ours for it. Only [`Hosts::authenticate`]
/// builds one.
#[derive(Debug, Clone)]
pub(crate) struct EnrolledHost {
    pub(crate) name: String,
    pub(crate) kind: HostKind,
    pub(crate) principals: Vec<String>,
    /// The host key the request was signed with.
    pub(crate) key: PublicKey,
}

impl EnrolledHost {
    /// How audit rows name it: `host:db-1`, `bastion:bastion-1`.
    pub(crate) fn identity(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.name)
    }
}

/// A new join token: the text to hand to the host (printed once) and its row.
#[derive(Debug)]
pub(crate) struct NewToken {
    pub(crate) token: zeroize::Zeroizing<String>,
    pub(crate) stored: StoredToken,
}

/// Checks a host name and its principals as `hosts token` takes them.
pub(crate) fn check_names(name: &str, principals: &[String]) -> Result<(), String> {
    if !crate::issue::is_valid_name(name) {
        return Err(format!(
            "host name {name:?}: use letters, digits and . _ - (at most 64)"
        ));
    }
    if principals.is_empty() || principals.len() > 32 {
        return Err("give between 1 and 32 principals (the names clients use for the host)".into());
    }
    for p in principals {
        let ok = !p.is_empty()
            && p.len() <= 253
            && !p.starts_with(['-', '.'])
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !ok {
            return Err(format!(
                "principal {p:?}: a host name or IP address (letters, digits, . - _ :)"
            ));
        }
    }
    Ok(())
}

/// A target's name as the CA compares, authorizes and records it: the
/// policy's one canonical form (`policy::canonical_host`: ASCII lowercase,
/// no trailing dot, an address as an address), so every spelling of one
/// host meets the same decision and the same audit rows. A name the policy
/// cannot read (refused later by the same check) is only lowercased, for
/// the audit row.
pub(crate) fn canonical_target(name: &str) -> String {
    crate::policy::canonical_host(name).map_or_else(
        |_| name.trim_end_matches('.').to_ascii_lowercase(),
        |target| target.to_string(),
    )
}

/// Makes a join token. The token's text is `skjt1.ID.SECRET`; only the
/// SHA-256 of the whole text is stored, so a copy of the database cannot
/// enroll anything.
pub(crate) fn new_token(
    name: &str,
    principals: Vec<String>,
    kind: HostKind,
    ttl: Duration,
    created_by: String,
) -> Result<NewToken, String> {
    check_names(name, &principals)?;
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err("--ttl must be longer than zero and at most 7d".into());
    }
    use ssh_key::rand_core::Rng;
    let mut id = [0u8; 6];
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    let mut rng = rng();
    rng.fill_bytes(&mut id);
    rng.fill_bytes(secret.as_mut());
    let id = format!("jt_{}", hex::encode(id));
    let token = zeroize::Zeroizing::new(format!(
        "{TOKEN_PREFIX}.{id}.{}",
        hex::encode(secret.as_ref())
    ));
    let now = Utc::now();
    let expires_at = now.timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    Ok(NewToken {
        stored: StoredToken {
            id,
            token_hash: token_hash(&token),
            name: name.to_owned(),
            kind: kind.as_str().to_owned(),
            principals,
            created_by,
            created_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            expires_at,
            used_at: None,
        },
        token,
    })
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The token's public ID (`jt_` and 12 lower-case hex digits, as
/// [`new_token`] makes it), for audit rows, when it has exactly that shape:
/// nothing else a caller writes reaches the audit log.
pub(crate) fn token_id(token: &str) -> Option<&str> {
    let mut parts = token.trim().split('.');
    match (parts.next(), parts.next()) {
        (Some(TOKEN_PREFIX), Some(id))
            if id.len() == 15
                && id.strip_prefix("jt_").is_some_and(|hex| {
                    hex.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                }) =>
        {
            Some(id)
        }
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(
        "this join token is not known to the CA; ask for a new one (`shiftkey-ca hosts token`)"
    )]
    TokenUnknown,
    #[error("this join token was already used; join tokens work once, ask for a new one")]
    TokenUsed,
    #[error("this join token has expired; ask for a new one")]
    TokenExpired,
    #[error(transparent)]
    BadKey(RequestError),
    /// What only bastions may do, asked by a plain host.
    #[error("only bastions {0}")]
    NotABastion(&'static str),
    #[error("no role of the policy covers the host {0:?}")]
    NotCovered(String),
    #[error("signing the host certificate failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Audit(#[from] audit::Error),
    #[error("cannot read the store: {0}")]
    Store(#[from] store::Error),
}

impl Explain for Error {
    fn code(&self) -> &'static str {
        match self {
            Error::TokenUnknown => "token-unknown",
            Error::TokenUsed => "token-used",
            Error::TokenExpired => "token-expired",
            Error::BadKey(e) => e.code(),
            Error::NotABastion(_) | Error::NotCovered(_) => "forbidden",
            Error::Signing(_) | Error::Store(_) => "internal-error",
            Error::Audit(_) => "audit-unavailable",
        }
    }
}

/// Why a `Shiftkey-Host` authorization was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error(
        "enrolled hosts sign their requests (`Authorization: Shiftkey-Host ...`); enroll first with a join token"
    )]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("the request's timestamp is more than 5 minutes off; check the host's clock")]
    Stale,
    #[error("not a host certificate")]
    NotHostCertificate,
    #[error(
        "the host certificate is not valid now or not signed by this CA's host key ({0}); enroll again"
    )]
    CertificateInvalid(String),
    #[error("the request signature does not verify with the certificate's key")]
    SignatureInvalid,
    #[error("the certificate is not the current one of an enrolled host; enroll again")]
    Unknown,
    #[error("cannot read the store: {0}")]
    Store(#[from] store::Error),
    #[error(transparent)]
    Audit(#[from] audit::Error),
}

impl Explain for AuthError {
    fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing-host-auth",
            AuthError::Malformed(_) => "malformed-host-auth",
            AuthError::Stale => "host-auth-stale",
            AuthError::NotHostCertificate | AuthError::CertificateInvalid(_) => "host-cert-invalid",
            AuthError::SignatureInvalid => "host-signature-invalid",
            AuthError::Unknown => "host-unknown",
            AuthError::Store(_) => "internal-error",
            AuthError::Audit(_) => "audit-unavailable",
        }
    }
}

/// A host reports at most this many trusted CA keys (a rotation publishes
/// two or three).
const MAX_REPORTED_CA_KEYS: usize = 16;

/// `shiftkey-ca hosts token`: records the token with its audit row (the
/// CA may be running; the store serialises writers).
pub(crate) async fn record_token(
    audit: &Audit,
    token: &NewToken,
    granted: &crate::authority::Granted,
) -> Result<(), audit::Error> {
    let t = &token.stored;
    audit
        .record_change(
            Event::new(
                "host.token_created",
                t.created_by.clone(),
                Outcome::Info,
                granted.annotate(json!({ "token": t.id, "name": t.name, "kind": t.kind,
                        "principals": t.principals, "expires_at": t.expires_at })),
            ),
            Change::CreateJoinToken(t.clone()),
        )
        .await?;
    Ok(())
}

/// Enrollment, renewal, the certificates a bastion presents, and checking
/// who an enrolled machine is.
#[derive(Debug)]
pub(crate) struct Hosts {
    base: Base,
}

impl Hosts {
    pub(crate) fn new(base: &Base) -> Self {
        Self { base: base.clone() }
    }

    /// Audits a refused host request and hands the error back.
    async fn refuse(
        &self,
        kind: &'static str,
        actor: String,
        error: Error,
        detail: serde_json::Value,
    ) -> Error {
        self.base
            .audit
            .refuse(kind, actor, Outcome::Deny, error, detail)
            .await
    }

    /// `POST /v1/hosts/enroll`: spends the join token, signs a host
    /// certificate for the presented key. Every refusal is audited.
    pub(crate) async fn enroll(
        &self,
        request: shiftkey_wire::EnrollRequest,
        peer: &str,
    ) -> Result<HostCertificateResponse, Error> {
        let id = token_id(&request.token).unwrap_or("(malformed)").to_owned();
        let now = Utc::now().timestamp();
        let hash = token_hash(&request.token);
        let token = match self.base.store.token_by_hash(&hash).await? {
            None => Err(Error::TokenUnknown),
            Some(t) if t.used_at.is_some() => Err(Error::TokenUsed),
            Some(t) if t.expires_at <= now => Err(Error::TokenExpired),
            Some(t) => Ok(t),
        };
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                return Err(self
                    .refuse(
                        "host.enroll_refused",
                        format!("peer:{peer}"),
                        e,
                        json!({ "token": id }),
                    )
                    .await);
            }
        };
        let actor = format!("{}:{}", token.kind, token.name);
        let key = match crate::issue::parse_public_key(&request.host_key)
            .and_then(|k| crate::issue::not_a_ca_key(&k, &self.base.keys).map(|()| k))
        {
            Ok(k) => k,
            Err(e) => {
                return Err(self
                    .refuse(
                        "host.enroll_refused",
                        actor,
                        Error::BadKey(e),
                        json!({ "token": id }),
                    )
                    .await);
            }
        };
        let kind = HostKind::parse(&token.kind).unwrap_or(HostKind::Host);
        let (row, response) = self
            .sign_host(&token.name, kind, &token.principals, &key, "enroll", &[])
            .await?;
        let host = StoredHost {
            name: token.name.clone(),
            kind: token.kind.clone(),
            principals: token.principals.clone(),
            key_fingerprint: row.key_fingerprint.clone(),
            enrolled_at: row.issued_at.clone(),
            renewed_at: None,
        };
        let detail = json!({ "token": id, "serial": row.serial, "principals": token.principals,
                             "key_fingerprint": row.key_fingerprint, "valid_before": row.valid_before });
        let committed = self
            .base
            .audit
            .record_change(
                Event::new("host.enrolled", actor.clone(), Outcome::Allow, detail),
                Change::Enroll {
                    token_hash: hash,
                    now,
                    host,
                    certificate: row,
                },
            )
            .await;
        match committed {
            Ok(_) => Ok(response),
            // Another host spent it between our look and this commit.
            Err(audit::Error::Conflict(Conflict::TokenSpent)) => Err(self
                .refuse(
                    "host.enroll_refused",
                    actor,
                    Error::TokenUsed,
                    json!({ "token": id }),
                )
                .await),
            Err(e) => Err(Error::Audit(e)),
        }
    }

    /// Records which user CA keys `host` reported trusting (`keys status`
    /// shows hosts that lack a published one). A report, not a decision:
    /// not audited, and a failure to record it is logged, not answered.
    pub(crate) async fn note_ca_keys(&self, host: &EnrolledHost, fingerprints: Vec<String>) {
        if fingerprints.is_empty() || fingerprints.len() > MAX_REPORTED_CA_KEYS {
            return;
        }
        if !fingerprints
            .iter()
            .all(|f| f.len() <= 80 && f.starts_with("SHA256:") && f.is_ascii())
        {
            return;
        }
        let report = crate::store::HostCaReport {
            name: host.name.clone(),
            fingerprints,
            reported_at: i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX),
        };
        if let Err(e) = self.base.store.report_ca_keys(report).await {
            tracing::warn!(host = %host.name, error = %e, "cannot record the host's CA keys");
        }
    }

    /// `POST /v1/hosts/renew`: a new certificate for an enrolled host, for
    /// its current key or a new one (key rotation).
    pub(crate) async fn renew(
        &self,
        host: &EnrolledHost,
        request: shiftkey_wire::RenewRequest,
    ) -> Result<HostCertificateResponse, Error> {
        self.note_ca_keys(host, request.ca_keys.clone()).await;
        let key = match &request.host_key {
            None => host.key.clone(),
            Some(line) => match crate::issue::parse_public_key(line)
                .and_then(|k| crate::issue::not_a_ca_key(&k, &self.base.keys).map(|()| k))
            {
                Ok(k) => k,
                Err(e) => {
                    return Err(self
                        .refuse(
                            "host.renew_refused",
                            host.identity(),
                            Error::BadKey(e),
                            json!({}),
                        )
                        .await);
                }
            },
        };
        let (row, response) = self
            .sign_host(&host.name, host.kind, &host.principals, &key, "renew", &[])
            .await?;
        let detail = json!({ "serial": row.serial, "key_fingerprint": row.key_fingerprint,
                             "valid_before": row.valid_before, "new_key": request.host_key.is_some() });
        self.base
            .audit
            .record_change(
                Event::new("host.renewed", host.identity(), Outcome::Allow, detail),
                Change::RenewHost(row),
            )
            .await?;
        Ok(response)
    }

    /// `POST /v1/hosts/present` (bastions only): a host certificate for the
    /// bastion's own key under a target's name, so `ssh -J` through the
    /// bastion shows no warning. Only for names some role covers: the
    /// bastion fronts the policy's hosts, nothing else.
    pub(crate) async fn present_as(
        &self,
        bastion: &EnrolledHost,
        target: &str,
    ) -> Result<HostCertificateResponse, Error> {
        let actor = bastion.identity();
        let asked = target;
        let target = canonical_target(target);
        let target = target.as_str();
        if bastion.kind != HostKind::Bastion {
            return Err(self
                .refuse(
                    "host.present_refused",
                    actor,
                    Error::NotABastion("present certificates for other names"),
                    json!({ "target": asked.chars().take(253).collect::<String>() }),
                )
                .await);
        }
        if check_names("target", &[target.to_owned()]).is_err()
            || !self
                .base
                .policy
                .get()
                .roles()
                .any(|role| role.covers_host(target))
        {
            return Err(self
                .refuse(
                    "host.present_refused",
                    actor,
                    Error::NotCovered(target.chars().take(253).collect()),
                    json!({ "target": asked.chars().take(253).collect::<String>() }),
                )
                .await);
        }
        let principals = vec![target.to_owned()];
        // Marked, so that no client takes it for the target's own identity.
        let (row, response) = self
            .sign_host(
                &bastion.name,
                HostKind::Bastion,
                &principals,
                &bastion.key,
                target,
                &[shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION],
            )
            .await?;
        let detail =
            json!({ "serial": row.serial, "target": target, "valid_before": row.valid_before });
        // Recorded, not made the bastion's identity: the hosts row keeps the
        // bastion's key, so this certificate authenticates nothing to the CA.
        self.base
            .audit
            .record_change(
                Event::new("host.presented", actor, Outcome::Allow, detail),
                Change::RecordHostCertificate(row),
            )
            .await?;
        Ok(response)
    }

    async fn sign_host(
        &self,
        name: &str,
        kind: HostKind,
        principals: &[String],
        key: &PublicKey,
        purpose: &str,
        extensions: &[&str],
    ) -> Result<(HostCertificate, HostCertificateResponse), Error> {
        let serial = self.base.next_serial().await?;
        let now = Utc::now();
        let valid_after = u64::try_from(now.timestamp())
            .unwrap_or(0)
            .saturating_sub(BACKDATE.as_secs());
        let valid_before = u64::try_from(now.timestamp()).unwrap_or(0) + kind.ttl().as_secs();
        let key_id = format!("{}:{name} for={purpose} serial={serial}", kind.as_str());
        let build = || -> Result<Builder, ssh_key::Error> {
            let mut builder = Builder::new_with_random_nonce(
                &mut rng(),
                key.key_data().clone(),
                valid_after,
                valid_before,
            )?;
            builder
                .serial(serial)?
                .cert_type(CertType::Host)?
                .key_id(key_id.as_str())?;
            for p in principals {
                builder.valid_principal(p.clone())?;
            }
            for e in extensions {
                builder.extension(*e, "")?;
            }
            Ok(builder)
        };
        let builder = build().map_err(|e| Error::Signing(e.to_string()))?;
        let certificate = self
            .base
            .keys
            .host()
            .certify(builder)
            .await
            .map_err(|e| Error::Signing(e.to_string()))?;
        let line = certificate
            .to_openssh()
            .map_err(|e| Error::Signing(format!("encoding: {e}")))?;
        let row = HostCertificate {
            serial,
            name: name.to_owned(),
            key_fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            valid_after,
            valid_before,
            issued_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            certificate: line.clone(),
        };
        let response = HostCertificateResponse {
            certificate: line,
            serial,
            name: name.to_owned(),
            kind: kind.as_str().to_owned(),
            principals: principals.to_vec(),
            valid_after,
            valid_before,
            user_ca_keys: self.base.keys.snapshot().user_published.clone(),
            host_ca_keys: self.base.keys.snapshot().host_published.clone(),
            authorized_principals: self.authorized_principals(principals),
        };
        Ok((row, response))
    }

    /// `POST /v1/hosts/principals`: what `host`'s principals files say
    /// under the policy in force now (its certificate's names decide).
    pub(crate) fn principals(&self, host: &EnrolledHost) -> shiftkey_wire::HostPrincipals {
        shiftkey_wire::HostPrincipals {
            authorized_principals: self.authorized_principals(&host.principals),
        }
    }

    /// `AuthorizedPrincipalsFile` per login for a host with these names:
    /// the role-scoped principals (`LOGIN@ROLE`) of every role whose host
    /// patterns match one of them (see `Policy::principals_for_host`).
    fn authorized_principals(&self, names: &[String]) -> BTreeMap<String, Vec<String>> {
        self.base.policy.get().principals_for_host_names(names)
    }

    /// Checks a `Shiftkey-Host` authorization for a request: our host CA
    /// signed the certificate, it is valid now, it is the latest key of an
    /// enrolled host, and the SSHSIG over this request is by that key.
    /// A refusal is audited (`auth.failed`) before it is returned.
    pub(crate) async fn authenticate(
        &self,
        header: Option<&str>,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<EnrolledHost, AuthError> {
        let checked = async {
            let header = header.ok_or(AuthError::Missing)?;
            let presented =
                host_auth::parse(header).map_err(|e| AuthError::Malformed(e.to_string()))?;
            let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
            if presented.ts.abs_diff(now) > host_auth::MAX_CLOCK_DIFFERENCE {
                return Err(AuthError::Stale);
            }
            let cert = &presented.certificate;
            // Any host CA key we ever had: a host renews under the new key
            // with the certificate the previous one signed, even after an
            // emergency rotation (the store check below ties the serial
            // to this host's key, so a certificate forged with a leaked
            // key still needs the host's own private key).
            let cas = self.base.keys.host_auth_fingerprints();
            if cert.cert_type() != CertType::Host {
                return Err(AuthError::NotHostCertificate);
            }
            cert.validate_at(now, cas.iter())
                .map_err(|e| AuthError::CertificateInvalid(e.to_string()))?;
            let key = PublicKey::from(cert.public_key().clone());
            key.verify(
                host_auth::NAMESPACE,
                &host_auth::message(method, path_and_query, presented.ts, body),
                &presented.signature,
            )
            .map_err(|_| AuthError::SignatureInvalid)?;
            let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
            let host = self
                .base
                .store
                .host_for_certificate(cert.serial(), &fingerprint)
                .await?
                .ok_or(AuthError::Unknown)?;
            Ok(EnrolledHost {
                name: host.name,
                kind: HostKind::parse(&host.kind).unwrap_or(HostKind::Host),
                principals: host.principals,
                key,
            })
        }
        .await;
        match checked {
            Ok(host) => Ok(host),
            Err(error) => Err(self
                .base
                .audit
                .refuse(
                    "auth.failed",
                    "anonymous".into(),
                    Outcome::Deny,
                    error,
                    json!({ "path": path_and_query }),
                )
                .await),
        }
    }
}

#[cfg(test)]
mod tests;
