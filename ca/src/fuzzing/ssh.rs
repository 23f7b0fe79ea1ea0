//! OpenSSH public keys and certificates as the CA and the bastion take
//! them: the `public_key` field of a certificate request
//! (`crate::issue::parse_public_key`), a user certificate as the bastion
//! forwards it to the CA (`Certificate::from_openssh`, as
//! `POST /v1/sessions` reads it) and a certificate blob as russh decodes it
//! from the SSH wire (`Certificate::from_bytes`) before the bastion's
//! checks.
//!
//! Properties:
//! - a refusal is a typed error;
//! - an accepted subject key is exactly one OpenSSH public key line of an
//!   allowed type (Ed25519, ECDSA, RSA of at least 3072 bits) and
//!   re-encodes to the same key;
//! - a certificate re-encodes (text and binary) to one that reads back
//!   equal; it never validates against a CA that did not sign it; and when
//!   its signature verifies, changing any one byte of what is signed makes
//!   it either unreadable or unverifiable.

use std::sync::OnceLock;

use ssh_key::encoding::Encode as _;
use ssh_key::private::Ed25519Keypair;
use ssh_key::{Algorithm, Certificate, Fingerprint, HashAlg, PrivateKey, PublicKey};

use super::Reader;
use crate::issue::{MIN_RSA_BITS, parse_public_key};

/// A CA fingerprint no seed is signed by (fixed seed; nothing trusts it).
fn stranger_ca() -> &'static Fingerprint {
    static CA: OnceLock<Fingerprint> = OnceLock::new();
    CA.get_or_init(|| {
        PrivateKey::from(Ed25519Keypair::from_seed(&[0x5a; 32]))
            .public_key()
            .fingerprint(HashAlg::Sha256)
    })
}

/// The fuzz entry point. The first byte picks the path: 0 the request's
/// `public_key` text, 1 a certificate line, 2 a certificate blob; the
/// second byte, for certificates, picks which signed bytes to change.
pub fn ssh_key(data: &[u8]) {
    let mut r = Reader(data);
    let (Some(selector), Some(flip_seed)) = (r.u8(), r.u8()) else {
        return;
    };
    let rest = r.0;
    match selector % 3 {
        0 => public_key_field(rest),
        1 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(cert) = Certificate::from_openssh(text.trim())
            {
                certificate(&cert, flip_seed);
            }
        }
        _ => {
            if let Ok(key) = PublicKey::from_bytes(rest) {
                let again = PublicKey::from_bytes(&key.to_bytes().unwrap_or_default());
                assert_eq!(
                    again.ok().as_ref().map(PublicKey::key_data),
                    Some(key.key_data())
                );
            }
            if let Ok(cert) = Certificate::from_bytes(rest) {
                certificate(&cert, flip_seed);
            }
        }
    }
}

fn public_key_field(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = parse_public_key(line) else {
        return;
    };
    let accepted = line.trim();
    assert!(
        !accepted.contains(['\n', '\r']),
        "the public_key field was accepted with more than one line: {accepted:?}"
    );
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        Algorithm::Rsa { .. } => {
            let bits = key.key_data().rsa().map_or(0, |rsa| rsa.key_size());
            assert!(
                bits >= MIN_RSA_BITS,
                "an RSA key of {bits} bits was accepted"
            );
        }
        other => panic!("a key of type {other} was accepted"),
    }
    let text = key
        .to_openssh()
        .unwrap_or_else(|e| panic!("an accepted key does not encode: {e}"));
    let again = parse_public_key(&text)
        .unwrap_or_else(|e| panic!("{text:?} (from {accepted:?}) is refused: {e}"));
    assert_eq!(again.key_data(), key.key_data());
}

fn certificate(cert: &Certificate, flip_seed: u8) {
    let text = cert
        .to_openssh()
        .unwrap_or_else(|e| panic!("a certificate that read does not encode: {e}"));
    let blob = cert
        .to_bytes()
        .unwrap_or_else(|e| panic!("a certificate that read does not encode: {e}"));
    match Certificate::from_openssh(&text) {
        // Compared as blobs: the text form's comment is not part of the
        // certificate (and not kept by every path).
        Ok(from_text) => assert_eq!(from_text.to_bytes().ok().as_ref(), Some(&blob)),
        // ssh-key reads an unknown algorithm name from a blob that its
        // text reader refuses (e.g. `ssh-'d25519-cert-v01@openssh.com`):
        // such a certificate is of no type we accept, and the CA refuses
        // its text, so this asymmetry lets nothing in.
        Err(_) if matches!(cert.algorithm(), Algorithm::Other(_)) => {}
        Err(e) => panic!("{text:?} does not read back: {e}"),
    }
    let from_blob = Certificate::from_bytes(&blob)
        .unwrap_or_else(|e| panic!("a certificate's own encoding does not read back: {e}"));
    assert_eq!(from_blob.to_bytes().ok().as_ref(), Some(&blob));

    let when = cert.valid_after();
    assert!(
        cert.validate_at(when, [stranger_ca()]).is_err(),
        "a certificate validated against a CA that did not sign it"
    );
    if cert.verify_signature().is_err() {
        return;
    }
    // What is signed: everything before the signature string.
    let signature_len = cert
        .signature()
        .encoded_len_prefixed()
        .unwrap_or_else(|e| panic!("signature length: {e}"));
    let signed = blob.len().saturating_sub(signature_len);
    assert!(signed > 0 && signed < blob.len());
    for round in 0..4u8 {
        let position =
            usize::from(flip_seed.wrapping_mul(31).wrapping_add(round * 67)) * 97 % signed;
        let mut changed = blob.clone();
        if let Some(byte) = changed.get_mut(position) {
            *byte ^= 1 << (round.wrapping_add(flip_seed) % 8);
        }
        if let Ok(forged) = Certificate::from_bytes(&changed) {
            assert!(
                forged.verify_signature().is_err(),
                "flipping byte {position} of {signed} signed bytes kept the signature valid"
            );
        }
    }
}
