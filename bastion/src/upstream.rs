//! The bastion's hop to the target: an SSH client with the one-session
//! certificate, which accepts only a host certificate from the CA's host
//! key for exactly the name the user asked for (canonical form), issued to
//! an enrolled host — never one the CA minted for a bastion to present.

use std::sync::Arc;

use russh::client;
use russh::keys::{Certificate, HashAlg, PrivateKey, PublicKey};
use shiftkey_wire::PRESENTED_BY_BASTION_EXTENSION;
use ssh_key::certificate::CertType;

use crate::target::Route;

/// Key IDs of certificates the CA issues to bastions (their own, and those
/// they present for target names) start so.
const BASTION_KEY_ID: &str = "bastion:";

/// Checks the target's host key.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) host_ca_keys: Vec<PublicKey>,
    pub(crate) host: String,
    /// Why the host key was refused, for the user's message.
    pub(crate) refusal: Arc<std::sync::Mutex<Option<String>>>,
}

impl client::Handler for Upstream {
    type Error = anyhow::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match key {
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => self.check(cert),
            russh::keys::PublicKeyOrCertificate::PublicKey { .. } => Err(
                "the target offered a plain host key; it must present a host certificate from the CA (enroll it with `shiftkey host enroll`)".to_owned(),
            ),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(why) => {
                tracing::warn!(host = %self.host, %why, "target host key refused");
                *self
                    .refusal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
                Ok(false)
            }
        }
    }
}

impl Upstream {
    fn check(&self, cert: &Certificate) -> Result<(), String> {
        if cert.cert_type() != CertType::Host {
            return Err("the target's certificate is not a host certificate".into());
        }
        // A certificate the CA made for a bastion names the bastion's key,
        // not the target's: whoever shows it as the target holds a
        // bastion's key, and is not the target.
        if cert
            .extensions()
            .contains_key(PRESENTED_BY_BASTION_EXTENSION)
            || cert.key_id().starts_with(BASTION_KEY_ID)
        {
            return Err(format!(
                "the target presented a host certificate minted for a bastion (key ID {:?}), not one of an enrolled host",
                cert.key_id().chars().take(200).collect::<String>()
            ));
        }
        let fingerprints: Vec<_> = self
            .host_ca_keys
            .iter()
            .map(|k| k.fingerprint(HashAlg::Sha256))
            .collect();
        cert.validate_at(crate::ca::unix_now(), &fingerprints)
            .map_err(|_| {
                "the target's host certificate is expired or not signed by the CA's host key"
                    .to_owned()
            })?;
        if !cert
            .valid_principals()
            .iter()
            .any(|p| crate::target::TargetName::parse(p).is_ok_and(|p| p.as_str() == self.host))
        {
            return Err(format!(
                "the target's host certificate is not valid for {:?}",
                self.host
            ));
        }
        Ok(())
    }
}

/// Connects and authenticates to the target.
pub(crate) async fn connect(
    route: &Route,
    host_ca_keys: Vec<PublicKey>,
    principal: &str,
    key: Arc<PrivateKey>,
    certificate: Certificate,
) -> anyhow::Result<client::Handle<Upstream>> {
    let refusal = Arc::new(std::sync::Mutex::new(None));
    let handler = Upstream {
        host_ca_keys,
        host: route.name.to_string(),
        refusal: Arc::clone(&refusal),
    };
    let preferred = russh::Preferred {
        host_key_certificates: std::borrow::Cow::Owned(vec![
            ssh_key::Algorithm::Ed25519,
            ssh_key::Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            },
        ]),
        cipher: std::borrow::Cow::Borrowed(upstream_ciphers()),
        ..Default::default()
    };
    let config = Arc::new(client::Config {
        preferred,
        nodelay: true,
        inactivity_timeout: None,
        ..Default::default()
    });
    let target = route.dial.clone();
    let connect = client::connect(config, target.as_str(), handler);
    let mut handle = match tokio::time::timeout(std::time::Duration::from_secs(15), connect).await {
        Err(_) => anyhow::bail!("the target {target} did not answer within 15 s"),
        Ok(Err(e)) => {
            let why = refusal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            anyhow::bail!(
                "{}",
                why.unwrap_or_else(|| format!("cannot connect to {target}: {e}"))
            );
        }
        Ok(Ok(h)) => h,
    };
    let auth = handle
        .authenticate_openssh_cert(principal, key, certificate)
        .await?;
    if !auth.success() {
        anyhow::bail!(
            "the target refused the session certificate for {principal:?} (does the host trust the CA, and does its AuthorizedPrincipalsFile list {principal}?)"
        );
    }
    Ok(handle)
}

/// Ciphers offered on the hop to the target (the bastion is the client
/// there; the user's hop takes the user's client's choice). With AES-NI
/// and carry-less multiply, AES-GCM (ring) costs the bastion less CPU per
/// byte than ChaCha20-Poly1305 (docs/benchmarks.md); otherwise russh's
/// order.
fn upstream_ciphers() -> &'static [russh::cipher::Name] {
    const AES_FIRST: &[russh::cipher::Name] = &[
        russh::cipher::AES_256_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_192_CTR,
        russh::cipher::AES_128_CTR,
    ];
    const CHACHA_FIRST: &[russh::cipher::Name] = &[
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_GCM,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_192_CTR,
        russh::cipher::AES_128_CTR,
    ];
    if aes_in_hardware() {
        AES_FIRST
    } else {
        CHACHA_FIRST
    }
}

/// The cipher the bastion offers first on its hop to the target, as
/// OpenSSH names it (the bastion benchmark reports it).
pub fn first_upstream_cipher() -> &'static str {
    upstream_ciphers()
        .first()
        .map_or("chacha20-poly1305@openssh.com", |name| name.as_ref())
}

#[cfg(target_arch = "x86_64")]
fn aes_in_hardware() -> bool {
    std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
}

#[cfg(target_arch = "aarch64")]
fn aes_in_hardware() -> bool {
    std::arch::is_aarch64_feature_detected!("aes")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn aes_in_hardware() -> bool {
    false
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

    fn host_cert(ca: &PrivateKey, key_id: &str, principal: &str, presented: bool) -> Certificate {
        let now = crate::ca::unix_now();
        let mut b = Builder::new(
            [3; 16],
            key().public_key().key_data().clone(),
            now - 60,
            now + 600,
        )
        .unwrap();
        b.cert_type(CertType::Host)
            .unwrap()
            .key_id(key_id)
            .unwrap()
            .valid_principal(principal)
            .unwrap();
        if presented {
            b.extension(PRESENTED_BY_BASTION_EXTENSION, "").unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn upstream(ca: &PrivateKey, host: &str) -> Upstream {
        Upstream {
            host_ca_keys: vec![ca.public_key().clone()],
            host: host.into(),
            refusal: Arc::default(),
        }
    }

    #[test]
    fn an_enrolled_hosts_certificate_for_the_name_is_the_target() {
        let ca = key();
        let u = upstream(&ca, "web-1.test");
        assert!(
            u.check(&host_cert(
                &ca,
                "host:web-1 for=enroll serial=4",
                "web-1.test",
                false
            ))
            .is_ok()
        );
        assert!(
            u.check(&host_cert(
                &ca,
                "host:web-1 for=enroll serial=4",
                "WEB-1.Test.",
                false
            ))
            .is_ok()
        );
        assert!(
            u.check(&host_cert(
                &ca,
                "host:web-2 for=enroll serial=5",
                "web-2.test",
                false
            ))
            .is_err()
        );
        assert!(
            u.check(&host_cert(
                &key(),
                "host:web-1 for=enroll serial=4",
                "web-1.test",
                false
            ))
            .is_err()
        );
    }

    #[test]
    fn a_certificate_minted_for_a_bastion_is_never_the_target() {
        let ca = key();
        let u = upstream(&ca, "web-1.test");
        let marked = host_cert(&ca, "host:web-1 for=x serial=9", "web-1.test", true);
        assert!(
            u.check(&marked)
                .unwrap_err()
                .contains("minted for a bastion")
        );
        let presented = host_cert(
            &ca,
            "bastion:bastion-1 for=web-1.test serial=9",
            "web-1.test",
            false,
        );
        assert!(
            u.check(&presented)
                .unwrap_err()
                .contains("minted for a bastion")
        );
    }
}
