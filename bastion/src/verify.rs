//! Every check of a user certificate, in one place. russh has verified the
//! signature, the validity window and possession of the key before it calls
//! us; the rest is here: which CA signed it, its type, the login, revocation,
//! `source-address`, unknown critical options.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::RwLock;

use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, PublicKey};

/// Critical options this bastion understands. OpenSSH refuses a certificate
/// with any other, and so do we.
const KNOWN_CRITICAL_OPTIONS: [&str; 2] = ["force-command", "source-address"];

/// What the bastion trusts: the CA's user keys (current and next, so a
/// rotation needs no restart) and the serials it has seen revoked.
#[derive(Debug, Default)]
pub(crate) struct Trust {
    user_ca_keys: RwLock<Vec<PublicKey>>,
    revoked: RwLock<HashSet<u64>>,
}

impl Trust {
    pub(crate) fn set_user_ca_keys(&self, keys: Vec<PublicKey>) {
        match self.user_ca_keys.write() {
            Ok(mut k) => *k = keys,
            Err(p) => *p.into_inner() = keys,
        }
    }

    pub(crate) fn revoke(&self, serials: impl IntoIterator<Item = u64>) {
        let mut set = match self.revoked.write() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        set.extend(serials);
    }

    fn is_revoked(&self, serial: u64) -> bool {
        match self.revoked.read() {
            Ok(s) => s.contains(&serial),
            Err(p) => p.into_inner().contains(&serial),
        }
    }

    fn ca_fingerprints(&self) -> Vec<ssh_key::Fingerprint> {
        let keys = match self.user_ca_keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        };
        keys.iter()
            .map(|k| k.fingerprint(HashAlg::Sha256))
            .collect()
    }
}

/// Proof that a certificate passed every check for this login from this
/// address. Only `verify_user_cert` makes one.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedUser {
    certificate: Certificate,
}

impl VerifiedUser {
    pub(crate) fn certificate(&self) -> &Certificate {
        &self.certificate
    }
    pub(crate) fn serial(&self) -> u64 {
        self.certificate.serial()
    }
    pub(crate) fn key_id(&self) -> &str {
        self.certificate.key_id()
    }
    pub(crate) fn valid_before(&self) -> u64 {
        self.certificate.valid_before()
    }
    /// True when the certificate carries this extension (`permit-pty`, ...).
    pub(crate) fn permits(&self, extension: &str) -> bool {
        self.certificate.extensions().contains_key(extension)
    }
}

/// Why a certificate was refused (for the log and the audit trail; the user
/// sees russh's generic refusal at the authentication stage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("not signed by a user CA key this bastion trusts")]
    UnknownCa,
    #[error("not a user certificate")]
    NotUser,
    #[error("expired or not yet valid")]
    NotValidNow,
    #[error("the certificate does not allow the login {0:?}")]
    Principal(String),
    #[error("certificate serial {0} is revoked")]
    Revoked(u64),
    #[error("the client address {0} is outside the certificate's source-address")]
    SourceAddress(IpAddr),
    #[error("unknown critical option {0:?}")]
    UnknownCriticalOption(String),
}

impl Refusal {
    /// True when the certificate's signature chains to one of the CA's
    /// user keys: a certificate the CA issued, refused for another reason.
    /// Only those are worth an audit row; anyone can make the others.
    pub(crate) fn chains_to_ca(&self) -> bool {
        !matches!(self, Refusal::UnknownCa)
    }

    /// Stable code for metrics and the audit log.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownCa => "unknown-ca",
            Refusal::NotUser => "not-a-user-certificate",
            Refusal::NotValidNow => "certificate-invalid",
            Refusal::Principal(_) => "principal-not-in-certificate",
            Refusal::Revoked(_) => "certificate-revoked",
            Refusal::SourceAddress(_) => "source-address",
            Refusal::UnknownCriticalOption(_) => "unknown-critical-option",
        }
    }
}

/// Checks `certificate` for `login` (None on the jump hop, where the login
/// is not a target's) from `client`, at `now` (unix seconds).
pub(crate) fn verify_user_cert(
    trust: &Trust,
    certificate: &Certificate,
    login: Option<&str>,
    client: IpAddr,
    now: u64,
) -> Result<VerifiedUser, Refusal> {
    // Which CA first: only a certificate of ours is worth more than a
    // counter (see `Refusal::chains_to_ca`).
    let fingerprints = trust.ca_fingerprints();
    let signer = certificate.signature_key().fingerprint(HashAlg::Sha256);
    if !fingerprints.contains(&signer) {
        return Err(Refusal::UnknownCa);
    }
    if certificate.cert_type() != CertType::User {
        return Err(Refusal::NotUser);
    }
    if certificate.validate_at(now, &fingerprints).is_err() {
        return Err(Refusal::NotValidNow);
    }
    // A principal is the login itself or `LOGIN@ROLE` (the CA scopes
    // principals by role, and decides the role per target).
    if let Some(login) = login
        && !certificate
            .valid_principals()
            .iter()
            .any(|p| p == login || p.split_once('@').is_some_and(|(l, _)| l == login))
    {
        return Err(Refusal::Principal(login.to_owned()));
    }
    if certificate.valid_principals().is_empty() {
        // OpenSSH would take an empty list as "any login"; we never do.
        return Err(Refusal::Principal(login.unwrap_or_default().to_owned()));
    }
    if trust.is_revoked(certificate.serial()) {
        return Err(Refusal::Revoked(certificate.serial()));
    }
    for (name, value) in certificate.critical_options().iter() {
        if !KNOWN_CRITICAL_OPTIONS.contains(&name.as_str()) {
            return Err(Refusal::UnknownCriticalOption(name.clone()));
        }
        if name == "source-address" && !source_address_allows(value, client) {
            return Err(Refusal::SourceAddress(client));
        }
    }
    Ok(VerifiedUser {
        certificate: certificate.clone(),
    })
}

/// `source-address` is a comma-separated list of addresses and CIDR blocks;
/// anything unparsable allows nothing.
fn source_address_allows(list: &str, client: IpAddr) -> bool {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    list.split(',').map(str::trim).any(|entry| {
        if let Ok(net) = entry.parse::<ipnet::IpNet>() {
            net.contains(&client)
        } else if let Ok(ip) = entry.parse::<IpAddr>() {
            ip == client
        } else {
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::certificate::Builder;
    use ssh_key::{Algorithm, PrivateKey};

    fn key() -> PrivateKey {
        PrivateKey::random(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            Algorithm::Ed25519,
        )
        .unwrap()
    }

    fn cert(
        ca: &PrivateKey,
        kind: CertType,
        principals: &[&str],
        options: &[(&str, &str)],
        serial: u64,
    ) -> Certificate {
        let user = key();
        let mut b =
            Builder::new([7; 16], user.public_key().key_data().clone(), 1000, 2000).unwrap();
        b.cert_type(kind).unwrap().serial(serial).unwrap();
        for p in principals {
            b.valid_principal(*p).unwrap();
        }
        if principals.is_empty() {
            b.all_principals_valid().unwrap();
        }
        for (n, v) in options {
            b.critical_option(*n, *v).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn trust(ca: &PrivateKey) -> Trust {
        let t = Trust::default();
        t.set_user_ca_keys(vec![ca.public_key().clone()]);
        t
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_good_certificate_passes_and_every_bad_one_is_refused_for_its_reason() {
        let ca = key();
        let t = trust(&ca);
        let good = cert(&ca, CertType::User, &["postgres"], &[], 5);
        assert!(verify_user_cert(&t, &good, Some("postgres"), LOCAL, 1500).is_ok());
        assert!(verify_user_cert(&t, &good, None, LOCAL, 1500).is_ok());
        assert_eq!(
            verify_user_cert(&t, &good, Some("root"), LOCAL, 1500).unwrap_err(),
            Refusal::Principal("root".into())
        );
        assert_eq!(
            verify_user_cert(&t, &good, Some("postgres"), LOCAL, 2500).unwrap_err(),
            Refusal::NotValidNow
        );
        let other = key();
        let foreign = cert(&other, CertType::User, &["postgres"], &[], 5);
        assert_eq!(
            verify_user_cert(&t, &foreign, Some("postgres"), LOCAL, 1500).unwrap_err(),
            Refusal::UnknownCa
        );
        let host = cert(&ca, CertType::Host, &["postgres"], &[], 5);
        assert_eq!(
            verify_user_cert(&t, &host, Some("postgres"), LOCAL, 1500).unwrap_err(),
            Refusal::NotUser
        );
        // Another CA's host certificate is another CA's, whatever its type.
        let foreign_host = cert(&other, CertType::Host, &["postgres"], &[], 5);
        let refusal = verify_user_cert(&t, &foreign_host, None, LOCAL, 1500).unwrap_err();
        assert_eq!(refusal, Refusal::UnknownCa);
        assert!(!refusal.chains_to_ca());
        assert!(Refusal::Revoked(5).chains_to_ca());
        let odd = cert(
            &ca,
            CertType::User,
            &["postgres"],
            &[("verify-required", "")],
            5,
        );
        assert_eq!(
            verify_user_cert(&t, &odd, Some("postgres"), LOCAL, 1500).unwrap_err(),
            Refusal::UnknownCriticalOption("verify-required".into())
        );
        let scoped = cert(&ca, CertType::User, &["postgres@db-debug"], &[], 6);
        assert!(verify_user_cert(&t, &scoped, Some("postgres"), LOCAL, 1500).is_ok());
        assert_eq!(
            verify_user_cert(&t, &scoped, Some("db-debug"), LOCAL, 1500).unwrap_err(),
            Refusal::Principal("db-debug".into())
        );
        let empty = cert(&ca, CertType::User, &[], &[], 5);
        assert!(verify_user_cert(&t, &empty, Some("postgres"), LOCAL, 1500).is_err());
        t.revoke([5]);
        assert_eq!(
            verify_user_cert(&t, &good, Some("postgres"), LOCAL, 1500).unwrap_err(),
            Refusal::Revoked(5)
        );
    }

    #[test]
    fn source_address_is_honoured() {
        let ca = key();
        let t = trust(&ca);
        let c = cert(
            &ca,
            CertType::User,
            &["ops"],
            &[("source-address", "10.20.0.0/16,192.0.2.7")],
            9,
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(verify_user_cert(&t, &c, Some("ops"), ip("10.20.3.4"), 1500).is_ok());
        assert!(verify_user_cert(&t, &c, Some("ops"), ip("192.0.2.7"), 1500).is_ok());
        assert!(verify_user_cert(&t, &c, Some("ops"), ip("::ffff:10.20.1.1"), 1500).is_ok());
        assert_eq!(
            verify_user_cert(&t, &c, Some("ops"), LOCAL, 1500).unwrap_err(),
            Refusal::SourceAddress(LOCAL)
        );
        assert!(!source_address_allows("garbage", LOCAL));
    }

    #[test]
    fn a_rotated_ca_key_is_trusted_beside_the_current_one() {
        let (old, new) = (key(), key());
        let t = Trust::default();
        t.set_user_ca_keys(vec![old.public_key().clone(), new.public_key().clone()]);
        for ca in [&old, &new] {
            let c = cert(ca, CertType::User, &["ops"], &[], 1);
            assert!(verify_user_cert(&t, &c, Some("ops"), LOCAL, 1500).is_ok());
        }
    }
}
