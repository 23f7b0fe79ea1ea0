//! The bastion's hop to the target: an SSH client with the one-session
//! certificate, which accepts only a host certificate from the CA's host
//! key for exactly the name the user asked for.

use std::sync::Arc;

use russh::client;
use russh::keys::{Certificate, HashAlg, PrivateKey, PublicKey};
use ssh_key::certificate::CertType;

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
            .any(|p| p.eq_ignore_ascii_case(&self.host))
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
    address: &str,
    host: &str,
    port: u16,
    host_ca_keys: Vec<PublicKey>,
    principal: &str,
    key: Arc<PrivateKey>,
    certificate: Certificate,
) -> anyhow::Result<client::Handle<Upstream>> {
    let refusal = Arc::new(std::sync::Mutex::new(None));
    let handler = Upstream {
        host_ca_keys,
        host: host.to_owned(),
        refusal: Arc::clone(&refusal),
    };
    let preferred = russh::Preferred {
        host_key_certificates: std::borrow::Cow::Owned(vec![
            ssh_key::Algorithm::Ed25519,
            ssh_key::Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            },
        ]),
        ..Default::default()
    };
    let config = Arc::new(client::Config {
        preferred,
        nodelay: true,
        inactivity_timeout: None,
        ..Default::default()
    });
    let target = if address.is_empty() {
        format!("{host}:{port}")
    } else {
        address.to_owned()
    };
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
