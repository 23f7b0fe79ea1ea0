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

use crate::audit::{Event, Outcome};
use crate::http::error::ApiError;
use crate::keys::rng;
use crate::service::Ca;
use crate::store::Change;
use crate::store::hosts::{self as store, HostCertificate, StoredHost, StoredToken};

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
/// a valid host certificate of ours for it. Only `Ca::authenticate_host`
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

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The token's public ID (`jt_...`), for audit rows, when it has the shape of one.
fn token_id(token: &str) -> Option<&str> {
    let mut parts = token.trim().split('.');
    match (parts.next(), parts.next()) {
        (Some(TOKEN_PREFIX), Some(id)) if id.starts_with("jt_") && id.len() == 15 => Some(id),
        _ => None,
    }
}

/// `shiftkey-ca hosts token`: writes the token to the store with its audit
/// row, from the command line (the CA may be running; SQLite serialises).
pub(crate) async fn create_token_offline(
    data_dir: &std::path::Path,
    token: &NewToken,
) -> anyhow::Result<()> {
    let conn = crate::store::open(&crate::store::db_path(data_dir))?;
    let audit = crate::audit::AuditLog::start(conn)?;
    let t = &token.stored;
    audit
        .record_change(
            Event {
                kind: "host.token_created",
                actor: t.created_by.clone(),
                outcome: Outcome::Info,
                detail: json!({ "token": t.id, "name": t.name, "kind": t.kind,
                                "principals": t.principals, "expires_at": t.expires_at }),
            },
            Change::CreateJoinToken(t.clone()),
        )
        .await?;
    Ok(())
}

/// Enrolled hosts, for `shiftkey-ca hosts list`.
pub(crate) fn list_offline(data_dir: &std::path::Path) -> anyhow::Result<Vec<StoredHost>> {
    let conn = crate::store::open_read_only(&crate::store::db_path(data_dir))?;
    Ok(store::hosts(&conn)?)
}

impl Ca {
    /// `POST /v1/hosts/enroll`: spends the join token, signs a host
    /// certificate for the presented key. Every refusal is audited.
    pub(crate) async fn enroll(
        &self,
        request: shiftkey_wire::EnrollRequest,
        peer: &str,
    ) -> Result<HostCertificateResponse, ApiError> {
        let id = token_id(&request.token).unwrap_or("(malformed)").to_owned();
        let refuse =
            |code: &'static str, message: String| ApiError::Unauthenticated { code, message };
        let now = Utc::now().timestamp();
        let hash = token_hash(&request.token);
        let token = match self.read(|conn| store::token_by_hash(conn, &hash))? {
            None => Err(refuse(
                "token-unknown",
                "this join token is not known to the CA; ask for a new one (`shiftkey-ca hosts token`)".into(),
            )),
            Some(t) if t.used_at.is_some() => Err(refuse(
                "token-used",
                "this join token was already used; join tokens work once, ask for a new one".into(),
            )),
            Some(t) if t.expires_at <= now => Err(refuse(
                "token-expired",
                "this join token has expired; ask for a new one".into(),
            )),
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
        let key = match crate::issue::parse_public_key(&request.host_key) {
            Ok(k) => k,
            Err(e) => {
                return Err(self
                    .refuse(
                        "host.enroll_refused",
                        actor,
                        ApiError::BadRequest(e),
                        json!({ "token": id }),
                    )
                    .await);
            }
        };
        let kind = HostKind::parse(&token.kind).unwrap_or(HostKind::Host);
        let (row, response) =
            self.sign_host(&token.name, kind, &token.principals, &key, "enroll")?;
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
            .audit
            .record_change(
                Event {
                    kind: "host.enrolled",
                    actor: actor.clone(),
                    outcome: Outcome::Allow,
                    detail,
                },
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
            Err(crate::audit::Error::Write(m)) if m.contains(store::TOKEN_SPENT) => Err(self
                .refuse(
                    "host.enroll_refused",
                    actor,
                    refuse(
                        "token-used",
                        "this join token was already used; ask for a new one".into(),
                    ),
                    json!({ "token": id }),
                )
                .await),
            Err(e) => Err(ApiError::AuditUnavailable(e.to_string())),
        }
    }

    /// `POST /v1/hosts/renew`: a new certificate for an enrolled host, for
    /// its current key or a new one (key rotation).
    pub(crate) async fn renew_host(
        &self,
        host: &EnrolledHost,
        request: shiftkey_wire::RenewRequest,
    ) -> Result<HostCertificateResponse, ApiError> {
        let key = match &request.host_key {
            None => host.key.clone(),
            Some(line) => match crate::issue::parse_public_key(line) {
                Ok(k) => k,
                Err(e) => {
                    return Err(self
                        .refuse(
                            "host.renew_refused",
                            host.identity(),
                            ApiError::BadRequest(e),
                            json!({}),
                        )
                        .await);
                }
            },
        };
        let (row, response) =
            self.sign_host(&host.name, host.kind, &host.principals, &key, "renew")?;
        let detail = json!({ "serial": row.serial, "key_fingerprint": row.key_fingerprint,
                             "valid_before": row.valid_before, "new_key": request.host_key.is_some() });
        self.audit
            .record_change(
                Event {
                    kind: "host.renewed",
                    actor: host.identity(),
                    outcome: Outcome::Allow,
                    detail,
                },
                Change::RenewHost(row),
            )
            .await
            .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
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
    ) -> Result<HostCertificateResponse, ApiError> {
        let actor = bastion.identity();
        if bastion.kind != HostKind::Bastion {
            return Err(self
                .refuse(
                    "host.present_refused",
                    actor,
                    ApiError::Forbidden(
                        "only bastions present certificates for other names".into(),
                    ),
                    json!({ "target": target }),
                )
                .await);
        }
        if check_names("target", &[target.to_owned()]).is_err()
            || !self.policy().roles().any(|role| role.covers_host(target))
        {
            return Err(self
                .refuse(
                    "host.present_refused",
                    actor,
                    ApiError::Forbidden(format!(
                        "no role of the policy covers the host {target:?}"
                    )),
                    json!({ "target": target.chars().take(253).collect::<String>() }),
                )
                .await);
        }
        let principals = vec![target.to_owned()];
        let (row, response) = self.sign_host(
            &bastion.name,
            HostKind::Bastion,
            &principals,
            &bastion.key,
            target,
        )?;
        let detail =
            json!({ "serial": row.serial, "target": target, "valid_before": row.valid_before });
        // Recorded, not made the bastion's identity: the hosts row keeps the
        // bastion's key, so this certificate authenticates nothing to the CA.
        self.audit
            .record_change(
                Event {
                    kind: "host.presented",
                    actor,
                    outcome: Outcome::Allow,
                    detail,
                },
                Change::RecordHostCertificate(row),
            )
            .await
            .map_err(|e| ApiError::AuditUnavailable(e.to_string()))?;
        Ok(response)
    }

    fn sign_host(
        &self,
        name: &str,
        kind: HostKind,
        principals: &[String],
        key: &PublicKey,
        purpose: &str,
    ) -> Result<(HostCertificate, HostCertificateResponse), ApiError> {
        let serial = self.next_serial();
        let now = Utc::now();
        let valid_after = u64::try_from(now.timestamp())
            .unwrap_or(0)
            .saturating_sub(BACKDATE.as_secs());
        let valid_before = u64::try_from(now.timestamp()).unwrap_or(0) + kind.ttl().as_secs();
        let key_id = format!("{}:{name} for={purpose} serial={serial}", kind.as_str());
        let sign = || -> Result<ssh_key::Certificate, ssh_key::Error> {
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
            builder.sign(self.keys.host.signing_key())
        };
        let certificate = sign()
            .map_err(|e| ApiError::Internal(format!("signing the host certificate failed: {e}")))?;
        let line = certificate.to_openssh().map_err(|e| {
            ApiError::Internal(format!("encoding the host certificate failed: {e}"))
        })?;
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
            user_ca_keys: vec![self.keys.user.public_line().to_owned()],
            host_ca_keys: vec![self.keys.host.public_line().to_owned()],
            authorized_principals: self.authorized_principals(principals),
        };
        Ok((row, response))
    }

    /// `AuthorizedPrincipalsFile` per login for a host with these names:
    /// every principal of every role whose host patterns match one of them.
    pub(crate) fn authorized_principals(&self, names: &[String]) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for role in self.policy().roles() {
            if names.iter().any(|n| role.covers_host(n)) {
                for login in role.principals() {
                    let entry = map.entry(login.clone()).or_default();
                    if !entry.contains(login) {
                        entry.push(login.clone());
                    }
                }
            }
        }
        map
    }

    /// Checks a `Shiftkey-Host` authorization for a request: our host CA
    /// signed the certificate, it is valid now, it is the latest key of an
    /// enrolled host, and the SSHSIG over this request is by that key.
    pub(crate) fn authenticate_host(
        &self,
        header: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<EnrolledHost, ApiError> {
        let fail =
            |code: &'static str, message: String| ApiError::Unauthenticated { code, message };
        let presented =
            host_auth::parse(header).map_err(|e| fail("malformed-host-auth", e.to_string()))?;
        let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
        if presented.ts.abs_diff(now) > host_auth::MAX_CLOCK_DIFFERENCE {
            return Err(fail(
                "host-auth-stale",
                "the request's timestamp is more than 5 minutes off; check the host's clock".into(),
            ));
        }
        let cert = &presented.certificate;
        let ca_fingerprint = self.keys.host.public_key().fingerprint(HashAlg::Sha256);
        if cert.cert_type() != CertType::Host {
            return Err(fail("host-cert-invalid", "not a host certificate".into()));
        }
        cert.validate_at(now, [&ca_fingerprint])
            .map_err(|e| fail("host-cert-invalid", format!("the host certificate is not valid now or not signed by this CA's host key ({e}); enroll again")))?;
        let key = PublicKey::from(cert.public_key().clone());
        key.verify(
            host_auth::NAMESPACE,
            &host_auth::message(method, path_and_query, presented.ts, body),
            &presented.signature,
        )
        .map_err(|_| {
            fail(
                "host-signature-invalid",
                "the request signature does not verify with the certificate's key".into(),
            )
        })?;
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let host = self
            .read(|conn| store::host_for_certificate(conn, cert.serial(), &fingerprint))?
            .ok_or_else(|| {
                fail(
                    "host-unknown",
                    "the certificate is not the current one of an enrolled host; enroll again"
                        .into(),
                )
            })?;
        Ok(EnrolledHost {
            name: host.name,
            kind: HostKind::parse(&host.kind).unwrap_or(HostKind::Host),
            principals: host.principals,
            key,
        })
    }
}
