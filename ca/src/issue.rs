//! Turning a certificate request into a signed certificate.
//!
//! `validate` parses the untrusted request (public key, names, TTL) into a
//! [`ValidRequest`]; `sign` builds the certificate from that and a policy
//! [`Allowed`] — the proof that the policy said yes. There is no other way to
//! reach the CA key: no `Allowed`, no signature.

use std::time::Duration;

use shiftkey_wire::CertificateRequest;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, Certificate, HashAlg, PublicKey};

use crate::identity::is_safe_token;
use crate::keys::{CaKeys, rng};
use chrono::{DateTime, Utc};

use crate::policy::{AccessQuery, Allowed, HARD_MAX_TTL, IncidentState};
use crate::signer::CaSigner;

/// RSA keys below this many bits are refused (NIST SP 800-57: 3072 for 128-bit security).
pub(crate) const MIN_RSA_BITS: u32 = 3072;
/// Longest OpenSSH public key line we accept (an RSA-16384 key is ~2.8 KiB).
const MAX_PUBLIC_KEY_LEN: usize = 8 * 1024;
const MAX_REASON_LEN: usize = 1000;
/// Shortest `ttl` a request may ask for. Certificates count whole seconds,
/// so a TTL under a second (`1ns`) made a certificate that had expired when
/// it was issued, and one of a second may expire before it arrives.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(2);

/// Why a request was refused before the policy saw it. Each variant is a 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RequestError {
    #[error("public_key is not an OpenSSH public key line ({0})")]
    MalformedKey(String),
    #[error(
        "public_key is a certificate; send the plain public key (e.g. the contents of id_ed25519.pub)"
    )]
    CertificateNotKey,
    #[error("{0} keys are not accepted; use ed25519, ecdsa or RSA of at least 3072 bits")]
    KeyTypeNotAllowed(String),
    #[error("RSA key of {0} bits is too small; at least 3072 bits are required")]
    RsaTooSmall(u32),
    #[error(
        "public_key is this CA's own {0} key; certify your own key (e.g. the contents of id_ed25519.pub)"
    )]
    CaKeyAsSubject(&'static str),
    #[error("{field} {value:?} is not valid: {why}")]
    InvalidField {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    /// Free text holding a character that could hide or reorder it.
    #[error(transparent)]
    UnsafeText(#[from] crate::free_text::Unsafe),
}

impl RequestError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            RequestError::MalformedKey(_) => "invalid-public-key",
            RequestError::CertificateNotKey => "certificate-not-key",
            RequestError::KeyTypeNotAllowed(_) => "key-type-not-allowed",
            RequestError::RsaTooSmall(_) => "rsa-key-too-small",
            RequestError::CaKeyAsSubject(_) => "ca-key-as-subject",
            RequestError::InvalidField { field, .. } => match *field {
                "role" => "invalid-role",
                "incident" => "invalid-incident",
                "reason" => "invalid-reason",
                "title" => "invalid-title",
                "ttl" => "invalid-ttl",
                _ => "invalid-principal",
            },
            RequestError::UnsafeText(_) => crate::free_text::CODE,
        }
    }
}

/// A request whose every field has been checked.
#[derive(Debug, Clone)]
pub(crate) struct ValidRequest {
    pub(crate) public_key: PublicKey,
    /// `SHA256:...` of the subject key.
    pub(crate) fingerprint: String,
    pub(crate) role: String,
    pub(crate) incident: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) principals: Option<Vec<String>>,
}

fn invalid(field: &'static str, value: &str, why: &'static str) -> RequestError {
    // Echo at most a short, printable prefix of what was sent.
    let shown: String = value.chars().take(64).collect();
    RequestError::InvalidField {
        field,
        value: shown,
        why,
    }
}

/// Names that go into key IDs and principals: letters, digits, `._@+-`, not
/// starting with `-`, 1 to 64 characters.
pub(crate) fn is_valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'))
}

pub(crate) fn validate(req: &CertificateRequest) -> Result<ValidRequest, RequestError> {
    let public_key = parse_public_key(&req.public_key)?;
    if !is_valid_name(&req.role) {
        return Err(invalid(
            "role",
            &req.role,
            "use letters, digits and . _ @ + - (at most 64)",
        ));
    }
    let incident = match &req.incident {
        Some(i) if !is_valid_name(i) => {
            return Err(invalid(
                "incident",
                i,
                "use letters, digits and . _ @ + - (at most 64), e.g. INC-42",
            ));
        }
        Some(i) => Some(i.clone()),
        None => None,
    };
    let reason = match &req.reason {
        Some(r) if r.len() > MAX_REASON_LEN => {
            return Err(invalid("reason", r, "at most 1000 bytes"));
        }
        Some(r) => {
            crate::free_text::check("reason", r)?;
            if r.trim().is_empty() {
                None
            } else {
                Some(r.trim().to_owned())
            }
        }
        None => None,
    };
    let ttl = match &req.ttl {
        Some(t) => {
            let d = humantime::parse_duration(t)
                .map_err(|_| invalid("ttl", t, "use a duration such as 15m or 1h"))?;
            if d < MIN_TTL {
                return Err(invalid("ttl", t, "at least 2s"));
            }
            if d > HARD_MAX_TTL {
                return Err(invalid("ttl", t, "at most 24h"));
            }
            Some(d)
        }
        None => None,
    };
    let principals = match &req.principals {
        Some(list) => {
            if list.is_empty() || list.len() > 32 {
                return Err(invalid(
                    "principals",
                    "",
                    "give between 1 and 32 principals, or leave it out",
                ));
            }
            for p in list {
                if !is_valid_name(p) {
                    return Err(invalid(
                        "principal",
                        p,
                        "use letters, digits and . _ @ + - (at most 64)",
                    ));
                }
            }
            Some(list.clone())
        }
        None => None,
    };
    let fingerprint = public_key.fingerprint(HashAlg::Sha256).to_string();
    Ok(ValidRequest {
        public_key,
        fingerprint,
        role: req.role.clone(),
        incident,
        reason,
        ttl,
        principals,
    })
}

pub(crate) fn parse_public_key(line: &str) -> Result<PublicKey, RequestError> {
    if line.len() > MAX_PUBLIC_KEY_LEN {
        return Err(RequestError::MalformedKey("longer than 8 KiB".into()));
    }
    let line = line.trim();
    // One key, one line: a second line (a second key) would be silently
    // ignored after the first one's comment.
    if line.contains(['\n', '\r']) {
        return Err(RequestError::MalformedKey(
            "more than one line; give exactly one OpenSSH public key line".into(),
        ));
    }
    let algorithm = line.split_whitespace().next().unwrap_or_default();
    if algorithm.contains("-cert-v01@openssh.com") {
        return Err(RequestError::CertificateNotKey);
    }
    if algorithm == "ssh-dss" {
        return Err(RequestError::KeyTypeNotAllowed("DSA".into()));
    }
    // The parser's message quotes the input: control and bidi characters
    // become visible markers before it reaches the caller and the audit log.
    let key = PublicKey::from_openssh(line)
        .map_err(|e| RequestError::MalformedKey(shown(&e.to_string())))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(key),
        Algorithm::Rsa { .. } => {
            let bits = key.key_data().rsa().map_or(0, |rsa| rsa.key_size());
            if bits < MIN_RSA_BITS {
                Err(RequestError::RsaTooSmall(bits))
            } else {
                Ok(key)
            }
        }
        other => Err(RequestError::KeyTypeNotAllowed(shown(other.as_str()))),
    }
}

/// Text from the caller's key as an error may quote it.
fn shown(text: &str) -> String {
    crate::free_text::marked(text).into_owned()
}

/// The CA's own keys never become a certificate's subject: a certificate
/// for the CA's key would let whoever holds a copy of the public half pose
/// as the CA's key in logs and listings.
pub(crate) fn not_a_ca_key(key: &PublicKey, keys: &CaKeys) -> Result<(), RequestError> {
    for (which, ca) in [("user CA", &keys.user()), ("host CA", &keys.host())] {
        if ca.public_key().key_data() == key.key_data() {
            return Err(RequestError::CaKeyAsSubject(which));
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} cannot go into a certificate key ID (spaces, commas, `=` or control characters)")]
pub(crate) struct UnsafeKeyIdPart(String);

/// The structured key ID: `SUBJECT role=R [incident=I] req=Q serial=N`.
/// Every part is checked here, whatever its caller checked before, so spaces
/// and `=` only ever separate fields.
pub(crate) fn key_id(
    subject: &str,
    role: &str,
    incident: Option<&str>,
    request_id: &str,
    serial: u64,
) -> Result<String, UnsafeKeyIdPart> {
    for part in [subject, role, request_id].into_iter().chain(incident) {
        if !is_safe_token(part) {
            return Err(UnsafeKeyIdPart(part.chars().take(64).collect()));
        }
    }
    Ok(match incident {
        Some(i) => format!("{subject} role={role} incident={i} req={request_id} serial={serial}"),
        None => format!("{subject} role={role} req={request_id} serial={serial}"),
    })
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SignError {
    #[error("cannot sign the certificate: {0}")]
    Crypto(#[from] ssh_key::Error),
    #[error("cannot sign the certificate: {0}")]
    Signer(#[from] crate::signer::Error),
    #[error(transparent)]
    KeyId(#[from] UnsafeKeyIdPart),
}

impl ValidRequest {
    /// The question this request puts to the policy.
    pub(crate) fn query<'a>(
        &'a self,
        identity: &'a str,
        groups: &'a [String],
        incident_state: Option<IncidentState>,
        approved_by: &'a [String],
        overrides: &'a [crate::policy::Override],
        at: DateTime<Utc>,
    ) -> AccessQuery<'a> {
        AccessQuery {
            identity,
            groups,
            role: &self.role,
            incident: self.incident.as_deref(),
            incident_state,
            approved_by,
            overrides,
            reason: self.reason.as_deref(),
            ttl: self.ttl,
            principals: self.principals.as_deref(),
            at,
        }
    }
}

/// A signed certificate, with its key ID and OpenSSH line.
#[derive(Debug)]
pub(crate) struct Signed {
    pub(crate) key_id: String,
    pub(crate) certificate: Certificate,
    pub(crate) line: String,
}

/// Everything between the policy's yes and the audit commit: the key ID,
/// the signature (by `ca`, wherever its key lives), the OpenSSH encoding.
pub(crate) async fn certify(
    ca: &CaSigner,
    subject: &str,
    request: &ValidRequest,
    allowed: &Allowed,
    request_id: &str,
    serial: u64,
) -> Result<Signed, SignError> {
    let (key_id, builder) = prepare(subject, request, allowed, request_id, serial)?;
    finish(key_id, ca.certify(builder).await?)
}

/// [`certify`] on this thread, for the in-process benchmark.
pub(crate) fn certify_blocking(
    ca: &CaSigner,
    subject: &str,
    request: &ValidRequest,
    allowed: &Allowed,
    request_id: &str,
    serial: u64,
) -> Result<Signed, SignError> {
    let (key_id, builder) = prepare(subject, request, allowed, request_id, serial)?;
    finish(key_id, ca.certify_blocking(builder)?)
}

fn prepare(
    subject: &str,
    request: &ValidRequest,
    allowed: &Allowed,
    request_id: &str,
    serial: u64,
) -> Result<(String, Builder), SignError> {
    let key_id = key_id(
        subject,
        &request.role,
        request.incident.as_deref(),
        request_id,
        serial,
    )?;
    let builder = builder(request, allowed, serial, &key_id)?;
    Ok((key_id, builder))
}

fn finish(key_id: String, certificate: Certificate) -> Result<Signed, SignError> {
    let line = certificate.to_openssh()?;
    Ok(Signed {
        key_id,
        certificate,
        line,
    })
}

/// The user certificate for `request.public_key` exactly as `allowed` says,
/// ready to sign.
fn builder(
    request: &ValidRequest,
    allowed: &Allowed,
    serial: u64,
    key_id: &str,
) -> Result<Builder, SignError> {
    let valid_after = u64::try_from(allowed.valid_after().timestamp()).unwrap_or(0);
    let valid_before = u64::try_from(allowed.valid_before().timestamp()).unwrap_or(0);
    let mut builder = Builder::new_with_random_nonce(
        &mut rng(),
        request.public_key.key_data().clone(),
        valid_after,
        valid_before,
    )?;
    builder
        .serial(serial)?
        .cert_type(CertType::User)?
        .key_id(key_id)?;
    for principal in allowed.principals() {
        builder.valid_principal(principal.clone())?;
    }
    for (name, value) in allowed.critical_options() {
        builder.critical_option(name.clone(), value.clone())?;
    }
    for extension in allowed.extensions() {
        builder.extension(extension.clone(), "")?;
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(public_key: &str) -> CertificateRequest {
        CertificateRequest {
            public_key: public_key.into(),
            role: "db-debug".into(),
            incident: Some("INC-42".into()),
            reason: Some("disk full on db-1".into()),
            ttl: Some("15m".into()),
            principals: None,
        }
    }

    fn fresh_key(alg: Algorithm) -> String {
        ssh_key::PrivateKey::random(&mut rng(), alg)
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap()
    }

    #[test]
    fn accepts_ed25519() {
        let v = validate(&request(&fresh_key(Algorithm::Ed25519))).unwrap();
        assert_eq!(v.ttl, Some(Duration::from_secs(900)));
        assert!(v.fingerprint.starts_with("SHA256:"));
    }

    #[test]
    fn refuses_malformed_and_truncated_keys() {
        let good = fresh_key(Algorithm::Ed25519);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 AAAA",
            &good[..good.len() - 10],
            "not a key at all",
        ] {
            let err = validate(&request(bad)).unwrap_err();
            assert_eq!(err.code(), "invalid-public-key", "{bad:?}: {err}");
        }
        assert_eq!(
            validate(&request(&"A".repeat(10_000))).unwrap_err().code(),
            "invalid-public-key"
        );
    }

    #[test]
    fn refuses_dsa_and_certificates() {
        let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPo= x";
        assert_eq!(
            validate(&request(dsa)).unwrap_err().code(),
            "key-type-not-allowed"
        );
        let cert =
            "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t x";
        assert_eq!(
            validate(&request(cert)).unwrap_err().code(),
            "certificate-not-key"
        );
    }

    #[test]
    fn refuses_injection_in_names() {
        let key = fresh_key(Algorithm::Ed25519);
        for bad in [
            "a,b",
            "a b",
            "a\nb",
            "a\0b",
            "-oProxyCommand",
            "role=admin",
            "",
        ] {
            let mut r = request(&key);
            r.principals = Some(vec![bad.into()]);
            assert_eq!(
                validate(&r).unwrap_err().code(),
                "invalid-principal",
                "{bad:?}"
            );
            let mut r = request(&key);
            r.incident = Some(bad.into());
            assert_eq!(
                validate(&r).unwrap_err().code(),
                "invalid-incident",
                "{bad:?}"
            );
            let mut r = request(&key);
            r.role = bad.into();
            assert_eq!(validate(&r).unwrap_err().code(), "invalid-role", "{bad:?}");
        }
    }

    #[test]
    fn refuses_bad_ttls() {
        let key = fresh_key(Algorithm::Ed25519);
        for bad in ["0s", "1ns", "999ms", "1s", "forever", "25h", "-5m"] {
            let mut r = request(&key);
            r.ttl = Some(bad.into());
            assert_eq!(validate(&r).unwrap_err().code(), "invalid-ttl", "{bad:?}");
        }
    }

    #[test]
    fn key_id_is_structured() {
        assert_eq!(
            key_id(
                "alice@example.com",
                "db-debug",
                Some("INC-42"),
                "r_7f3a",
                1042
            )
            .unwrap(),
            "alice@example.com role=db-debug incident=INC-42 req=r_7f3a serial=1042"
        );
        assert!(key_id("role=admin@example.com", "db-debug", None, "r_1", 1).is_err());
        assert!(key_id("alice@example.com", "db-debug", Some("INC-1 x"), "r_1", 1).is_err());
    }
}
