//! Fuzz target for the `Shiftkey-Host` request signature header
//! ([`crate::host_auth`]), called by the AFL binary in `fuzz/` and by the
//! corpus replay test. Not an API.
//!
//! Properties checked for every input:
//! - [`host_auth::parse`] of arbitrary text is a parse or a [`Malformed`]
//!   error, never a panic;
//! - a header signed for one request verifies for that request, and for no
//!   request whose method, path, timestamp or body differs in any way: the
//!   fuzzer picks the request and the tampering, and may also rewrite bytes
//!   of the header itself.
//!
//! Input layout: one selector byte, then the rest. Selector bit 0 clear:
//! the rest is a header value as the CA receives it. Set: the rest
//! describes a request and how to tamper with it (see [`Tamper`]).

use std::sync::OnceLock;

use ssh_key::certificate::{Builder, CertType};
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Certificate, PrivateKey, PublicKey};

use crate::host_auth::{self, Malformed};

/// The host key and host certificate the fuzzer signs with. Fixed seeds:
/// the fuzz loop must be deterministic, and nothing trusts these keys.
fn signer() -> &'static (PrivateKey, Certificate) {
    static SIGNER: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let host = PrivateKey::from(Ed25519Keypair::from_seed(&[0x11; 32]));
        let ca = PrivateKey::from(Ed25519Keypair::from_seed(&[0x22; 32]));
        let mut builder = Builder::new([7; 16], host.public_key().key_data().clone(), 0, u64::MAX)
            .unwrap_or_else(|e| panic!("fuzz host certificate: {e}"));
        builder
            .cert_type(CertType::Host)
            .and_then(|b| b.valid_principal("db-1.fuzz"))
            .unwrap_or_else(|e| panic!("fuzz host certificate: {e}"));
        let cert = builder
            .sign(&ca)
            .unwrap_or_else(|e| panic!("fuzz host certificate: {e}"));
        (host, cert)
    })
}

/// One request as the CA sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: String,
    path: String,
    ts: u64,
    body: Vec<u8>,
}

/// What the fuzzer changes between the signed request and the one the
/// signature is presented with, plus bytes spliced into the header.
struct Tamper<'a> {
    signed: Request,
    presented: Request,
    /// `(offset, bytes)`: replaces header bytes from `offset` on.
    header_splice: Option<(usize, &'a [u8])>,
}

/// The fuzz entry point.
pub fn host_auth(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        parse_any(rest);
    } else {
        signed_request(rest);
    }
}

/// Arbitrary header text: a parse or a typed error.
fn parse_any(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match host_auth::parse(text) {
        Ok(presented) => {
            // Whatever parsed must not verify for a request nobody signed.
            let key = PublicKey::from(presented.certificate.public_key().clone());
            let message = host_auth::message("POST", "/v1/fuzz/unsigned", presented.ts, b"");
            assert!(
                key.verify(host_auth::NAMESPACE, &message, &presented.signature)
                    .is_err(),
                "a header verified for a request no one signed"
            );
        }
        Err(Malformed(reason)) => assert!(!reason.is_empty()),
    }
}

/// A header we sign, possibly rewritten, presented with a possibly
/// different request: verifies exactly when nothing changed.
fn signed_request(data: &[u8]) {
    let Some(tamper) = Tamper::read(data) else {
        return;
    };
    let (key, cert) = signer();
    let s = &tamper.signed;
    let Ok(mut header) = host_auth::authorization(key, cert, &s.method, &s.path, s.ts, &s.body)
    else {
        return;
    };
    if let Some((offset, bytes)) = tamper.header_splice {
        let mut raw = header.into_bytes();
        let start = offset % (raw.len() + 1);
        let end = (start + bytes.len()).min(raw.len());
        raw.splice(start..end, bytes.iter().copied());
        match String::from_utf8(raw) {
            Ok(text) => header = text,
            Err(_) => return,
        }
    }
    let presented = match host_auth::parse(&header) {
        Ok(presented) => presented,
        Err(Malformed(reason)) => {
            assert!(
                tamper.header_splice.is_some(),
                "our own header did not parse: {reason}"
            );
            return;
        }
    };
    let p = &tamper.presented;
    let key = PublicKey::from(presented.certificate.public_key().clone());
    let message = host_auth::message(&p.method, &p.path, presented.ts, &p.body);
    let verified = key
        .verify(host_auth::NAMESPACE, &message, &presented.signature)
        .is_ok();
    let unchanged = p.method == s.method
        && p.path == s.path
        && presented.ts == s.ts
        && p.body == s.body
        && presented.certificate.public_key() == cert.public_key();
    if verified {
        assert!(
            unchanged,
            "a signature made for {s:?} verified for {p:?} at ts {}",
            presented.ts
        );
    } else {
        assert!(
            tamper.header_splice.is_some() || !unchanged,
            "our own signature did not verify for the request it was made for"
        );
    }
}

impl<'a> Tamper<'a> {
    /// Layout: `flags, ts (8 bytes), method_len, path_len, body_len,
    /// method, path, body`, then for each flag set in turn the new value
    /// (`len, bytes` for method, path and body; 8 bytes for ts) and, with
    /// flag 0x10, `offset (2 bytes), len, bytes` spliced into the header.
    fn read(data: &'a [u8]) -> Option<Self> {
        let mut r = Reader(data);
        let flags = r.byte()?;
        let ts = r.u64()?;
        let (ml, pl, bl) = (r.byte()?, r.byte()?, r.byte()?);
        let signed = Request {
            method: r.text(ml.into())?,
            path: r.text(pl.into())?,
            ts,
            body: r.take(bl.into())?.to_vec(),
        };
        let mut presented = signed.clone();
        if flags & 0x01 != 0 {
            let len = r.byte()?;
            presented.method = r.text(len.into())?;
        }
        if flags & 0x02 != 0 {
            let len = r.byte()?;
            presented.path = r.text(len.into())?;
        }
        if flags & 0x04 != 0 {
            presented.ts = r.u64()?;
        }
        if flags & 0x08 != 0 {
            let len = r.byte()?;
            presented.body = r.take(len.into())?.to_vec();
        }
        let header_splice = if flags & 0x10 != 0 {
            let offset = usize::from(u16::from_be_bytes([r.byte()?, r.byte()?]));
            let len = r.byte()?;
            Some((offset, r.take(len.into())?))
        } else {
            None
        };
        // What HTTP lets through: the signed message separates the fields
        // with newlines, which no method token or request target holds.
        for request in [&signed, &presented] {
            if !is_http_method(&request.method) || !is_request_target(&request.path) {
                return None;
            }
        }
        Some(Tamper {
            signed,
            presented,
            header_splice,
        })
    }
}

/// An HTTP method token (RFC 9110 `token`).
fn is_http_method(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An origin-form request target as hyper accepts it: visible ASCII.
fn is_request_target(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
    fn text(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Seed inputs for the corpus: valid headers and signed requests of the
/// shapes the bastion and `shiftkey host` send.
pub fn seeds() -> Vec<Vec<u8>> {
    let (key, cert) = signer();
    let requests: [(&str, &str, &[u8]); 4] = [
        (
            "POST",
            "/v1/hosts/renew",
            br#"{"host_key":"ssh-ed25519 AAAA"}"#,
        ),
        (
            "POST",
            "/v1/sessions",
            br#"{"user_certificate":"x","principal":"root"}"#,
        ),
        ("GET", "/v1/hosts/principals?names=db-1", b""),
        (
            "POST",
            "/v1/recordings/upload?id=s_1",
            b"[0.1, \"o\", \"$ \"]\n",
        ),
    ];
    let mut seeds = Vec::new();
    for (i, (method, path, body)) in requests.iter().enumerate() {
        let ts = 1_790_000_000 + i as u64;
        if let Ok(header) = host_auth::authorization(key, cert, method, path, ts, body) {
            let mut plain = vec![0];
            plain.extend_from_slice(header.as_bytes());
            seeds.push(plain);
        }
        for flags in [0x00, 0x04, 0x08] {
            let mut signed = vec![1, flags];
            signed.extend_from_slice(&ts.to_be_bytes());
            signed.extend([method.len() as u8, path.len() as u8, body.len() as u8]);
            signed.extend_from_slice(method.as_bytes());
            signed.extend_from_slice(path.as_bytes());
            signed.extend_from_slice(body);
            if flags & 0x04 != 0 {
                signed.extend_from_slice(&(ts + 1).to_be_bytes());
            }
            if flags & 0x08 != 0 {
                signed.push(body.len() as u8);
                signed.extend(body.iter().rev());
            }
            seeds.push(signed);
        }
    }
    seeds
}
