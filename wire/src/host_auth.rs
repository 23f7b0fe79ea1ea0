//! How an enrolled host or bastion proves who it is to the CA: every request
//! carries its current host certificate and an SSHSIG, made with the host
//! key, over the method, path, a timestamp and the body's SHA-256.
//!
//! ```text
//! Authorization: Shiftkey-Host cert=BASE64(certificate line);ts=UNIX;sig=BASE64(SSHSIG)
//! ```
//!
//! No shared secret exists: the credential is the host key (which sshd, or
//! the bastion, holds anyway) plus a short-lived certificate the CA signed.
//! A stolen header is useless for another path or body, and after
//! `MAX_CLOCK_DIFFERENCE` for anything. Written here, not taken from a crate:
//! HTTP message signatures (RFC 9421) have no SSH-key implementation in Rust.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use ssh_key::{Certificate, HashAlg, PrivateKey, SshSig};

/// The `Authorization` scheme.
pub const SCHEME: &str = "Shiftkey-Host";
/// SSHSIG namespace: a signature made for this cannot be replayed as an
/// SSHSIG for anything else (git commits, files).
pub const NAMESPACE: &str = "shiftkey-host-request@shiftkey";
/// How far the request's timestamp may be from the CA's clock, in seconds.
pub const MAX_CLOCK_DIFFERENCE: u64 = 300;

/// What is signed: `METHOD\nPATH_AND_QUERY\nTS\nHEX(SHA256(BODY))`.
pub fn message(method: &str, path_and_query: &str, ts: u64, body: &[u8]) -> Vec<u8> {
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("{method}\n{path_and_query}\n{ts}\n{hex}").into_bytes()
}

/// The `Authorization` header value for one request.
pub fn authorization(
    key: &PrivateKey,
    certificate: &Certificate,
    method: &str,
    path_and_query: &str,
    ts: u64,
    body: &[u8],
) -> Result<String, ssh_key::Error> {
    let signature = key.sign(
        NAMESPACE,
        HashAlg::Sha512,
        &message(method, path_and_query, ts, body),
    )?;
    let pem = signature.to_pem(ssh_key::LineEnding::LF)?;
    Ok(format!(
        "{SCHEME} cert={};ts={ts};sig={}",
        STANDARD.encode(certificate.to_openssh()?),
        STANDARD.encode(pem)
    ))
}

/// A parsed header, not yet verified.
#[derive(Debug)]
pub struct Presented {
    pub certificate: Certificate,
    pub ts: u64,
    pub signature: SshSig,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Malformed {}

/// Reads a header value (`Shiftkey-Host cert=..;ts=..;sig=..`).
pub fn parse(value: &str) -> Result<Presented, Malformed> {
    let rest = value
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(Malformed("not a Shiftkey-Host authorization"))?;
    let (mut cert, mut ts, mut sig) = (None, None, None);
    for part in rest.split(';') {
        let (name, value) = part
            .split_once('=')
            .ok_or(Malformed("expected cert=..;ts=..;sig=.."))?;
        let slot = match name.trim() {
            "cert" => &mut cert,
            "ts" => &mut ts,
            "sig" => &mut sig,
            _ => return Err(Malformed("unknown field in the authorization")),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(Malformed("a field appears twice in the authorization"));
        }
    }
    let decode = |v: Option<&str>, what: &'static str| -> Result<String, Malformed> {
        let bytes = STANDARD
            .decode(v.ok_or(Malformed(what))?.as_bytes())
            .map_err(|_| Malformed(what))?;
        String::from_utf8(bytes).map_err(|_| Malformed(what))
    };
    let certificate = Certificate::from_openssh(&decode(cert, "cert is not a base64 certificate")?)
        .map_err(|_| Malformed("cert is not an OpenSSH certificate"))?;
    let signature = SshSig::from_pem(decode(sig, "sig is not a base64 SSHSIG")?)
        .map_err(|_| Malformed("sig is not an SSHSIG"))?;
    let ts = ts
        .ok_or(Malformed("ts is missing"))?
        .parse()
        .map_err(|_| Malformed("ts is not unix seconds"))?;
    Ok(Presented {
        certificate,
        ts,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::certificate::{Builder, CertType};

    fn host_cert(key: &PrivateKey, ca: &PrivateKey) -> Certificate {
        let mut b = Builder::new(
            [0; 16],
            key.public_key().key_data().clone(),
            0,
            u64::MAX / 2,
        )
        .unwrap();
        b.cert_type(CertType::Host).unwrap();
        b.valid_principal("db-1").unwrap();
        b.sign(ca).unwrap()
    }

    fn key() -> PrivateKey {
        PrivateKey::random(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap()
    }

    #[test]
    fn a_signed_header_parses_and_verifies_only_for_its_request() {
        let (k, ca) = (key(), key());
        let cert = host_cert(&k, &ca);
        let header = authorization(&k, &cert, "POST", "/v1/hosts/renew", 1000, b"{}").unwrap();
        let p = parse(&header).unwrap();
        assert_eq!(p.ts, 1000);
        let public = ssh_key::PublicKey::from(p.certificate.public_key().clone());
        public
            .verify(
                NAMESPACE,
                &message("POST", "/v1/hosts/renew", 1000, b"{}"),
                &p.signature,
            )
            .unwrap();
        assert!(
            public
                .verify(
                    NAMESPACE,
                    &message("POST", "/v1/hosts/renew", 1000, b"{ }"),
                    &p.signature
                )
                .is_err()
        );
        assert!(
            public
                .verify(
                    NAMESPACE,
                    &message("POST", "/v1/sessions", 1000, b"{}"),
                    &p.signature
                )
                .is_err()
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "Bearer x",
            "Shiftkey-Host cert=;ts=1;sig=",
            "Shiftkey-Host cert=a;cert=b",
            "Shiftkey-Host what=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
