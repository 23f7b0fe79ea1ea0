//! Between PKCS#11's encodings of EC keys and signatures and SSH's.
//!
//! - `CKA_EC_PARAMS` names the curve: a DER OBJECT IDENTIFIER, or for
//!   Ed25519 also the DER PrintableString `edwards25519` (PKCS#11 3.0 allows
//!   both; SoftHSM2 2.6 and OpenSC's `pkcs11-tool` write the string).
//! - `CKA_EC_POINT` is the public point as a DER OCTET STRING (SoftHSM2
//!   wraps both Ed25519 and P-256 points so); some modules return the bare
//!   point, which we accept only when its length leaves no doubt.
//! - `CKM_ECDSA` signatures are `r || s`, each as wide as the curve order
//!   (PKCS#11 v2.40 section 2.3.1); SSH wants `mpint r, mpint s`
//!   (RFC 5656 section 3.1.2). `CKM_EDDSA` signatures are the 64 bytes SSH
//!   carries as they are.

use ssh_key::encoding::Encode;
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData};
use ssh_key::{Algorithm, EcdsaCurve, Mpint, Signature};

use super::KeyAlgorithm;

/// DER OID 1.3.101.112 (id-Ed25519, RFC 8410).
pub(super) const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER PrintableString "edwards25519".
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";
/// DER OID 1.2.840.10045.3.1.7 (prime256v1 / secp256r1).
pub(super) const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

const ED25519_POINT: usize = 32;
/// Uncompressed SEC1 point: 0x04, X, Y.
const P256_POINT: usize = 65;
const P256_SCALAR: usize = 32;
const ED25519_SIGNATURE: usize = 64;
/// DER tag of an OCTET STRING.
const OCTET_STRING: u8 = 0x04;

/// Why a key or signature from the token cannot be used as SSH's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EncodingError {
    #[error(
        "CKA_EC_PARAMS names a curve Shiftkey cannot use (DER {0}); CA keys are Ed25519 or ECDSA P-256"
    )]
    UnknownCurve(String),
    #[error("CKA_EC_POINT is not a {algorithm} public point ({len} bytes)")]
    BadPoint { algorithm: KeyAlgorithm, len: usize },
    #[error(
        "the token returned a malformed {algorithm} signature ({len} bytes, expected {expected})"
    )]
    BadSignature {
        algorithm: KeyAlgorithm,
        len: usize,
        expected: usize,
    },
}

/// The curve `CKA_EC_PARAMS` names.
pub(super) fn curve(params: &[u8]) -> Result<KeyAlgorithm, EncodingError> {
    if params == ED25519_OID || params == ED25519_NAME {
        Ok(KeyAlgorithm::Ed25519)
    } else if params == P256_OID {
        Ok(KeyAlgorithm::EcdsaP256)
    } else {
        Err(EncodingError::UnknownCurve(hex::encode(params)))
    }
}

/// The SSH public key for `CKA_EC_POINT` of a key on `algorithm`'s curve.
pub(super) fn public_key(algorithm: KeyAlgorithm, point: &[u8]) -> Result<KeyData, EncodingError> {
    let bad = || EncodingError::BadPoint {
        algorithm,
        len: point.len(),
    };
    match algorithm {
        KeyAlgorithm::Ed25519 => {
            let raw = unwrap_point(point, ED25519_POINT).ok_or_else(bad)?;
            let key = Ed25519PublicKey::try_from(raw).map_err(|_| bad())?;
            Ok(KeyData::Ed25519(key))
        }
        KeyAlgorithm::EcdsaP256 => {
            let raw = unwrap_point(point, P256_POINT).ok_or_else(bad)?;
            if raw.first() != Some(&0x04) {
                return Err(bad());
            }
            let key = EcdsaPublicKey::from_sec1_bytes(raw).map_err(|_| bad())?;
            Ok(KeyData::Ecdsa(key))
        }
    }
}

/// The point inside a DER OCTET STRING of exactly `len` bytes, or the bare
/// point when that is what the module returned.
fn unwrap_point(point: &[u8], len: usize) -> Option<&[u8]> {
    match point {
        // len < 128, so DER's length is one byte.
        [OCTET_STRING, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => Some(rest),
        bare if bare.len() == len => Some(bare),
        _ => None,
    }
}

/// The token's raw signature as an SSH [`Signature`].
pub(super) fn signature(algorithm: KeyAlgorithm, raw: &[u8]) -> Result<Signature, EncodingError> {
    match algorithm {
        KeyAlgorithm::Ed25519 => {
            if raw.len() != ED25519_SIGNATURE {
                return Err(EncodingError::BadSignature {
                    algorithm,
                    len: raw.len(),
                    expected: ED25519_SIGNATURE,
                });
            }
            Signature::new(Algorithm::Ed25519, raw).map_err(|_| EncodingError::BadSignature {
                algorithm,
                len: raw.len(),
                expected: ED25519_SIGNATURE,
            })
        }
        KeyAlgorithm::EcdsaP256 => {
            let bad = || EncodingError::BadSignature {
                algorithm,
                len: raw.len(),
                expected: 2 * P256_SCALAR,
            };
            if raw.len() != 2 * P256_SCALAR {
                return Err(bad());
            }
            let (r, s) = raw.split_at(P256_SCALAR);
            let mut data = Vec::with_capacity(2 * (4 + 1 + P256_SCALAR));
            Mpint::from_positive_bytes(r)
                .encode(&mut data)
                .and_then(|()| Mpint::from_positive_bytes(s).encode(&mut data))
                .map_err(|_| bad())?;
            Signature::new(
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256,
                },
                data,
            )
            .map_err(|_| bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::{Signer, Verifier};
    use ssh_key::PrivateKey;

    #[test]
    fn curve_names_in_both_ed25519_forms_and_p256() {
        assert_eq!(curve(ED25519_OID), Ok(KeyAlgorithm::Ed25519));
        assert_eq!(curve(ED25519_NAME), Ok(KeyAlgorithm::Ed25519));
        assert_eq!(curve(P256_OID), Ok(KeyAlgorithm::EcdsaP256));
        // secp384r1 is a real curve, but not one of ours.
        let p384 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        assert!(
            matches!(curve(&p384), Err(EncodingError::UnknownCurve(h)) if h == "06052b81040022")
        );
    }

    #[test]
    fn points_wrapped_and_bare() {
        let key = PrivateKey::random(&mut crate::signer::file::rng(), Algorithm::Ed25519).unwrap();
        let KeyData::Ed25519(public) = key.public_key().key_data() else {
            panic!("not ed25519")
        };
        let mut wrapped = vec![OCTET_STRING, 32];
        wrapped.extend_from_slice(&public.0);
        let want = KeyData::Ed25519(*public);
        assert_eq!(
            public_key(KeyAlgorithm::Ed25519, &wrapped),
            Ok(want.clone())
        );
        assert_eq!(public_key(KeyAlgorithm::Ed25519, &public.0), Ok(want));
        // A wrapper whose length disagrees with its content is refused.
        wrapped[1] = 31;
        assert!(public_key(KeyAlgorithm::Ed25519, &wrapped).is_err());
        assert!(public_key(KeyAlgorithm::Ed25519, &public.0[..31]).is_err());

        let ec = PrivateKey::random(
            &mut crate::signer::file::rng(),
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        )
        .unwrap();
        let KeyData::Ecdsa(ec_public) = ec.public_key().key_data() else {
            panic!("not ecdsa")
        };
        let point = ec_public.as_sec1_bytes().to_vec();
        assert_eq!(point.len(), P256_POINT);
        let mut wrapped = vec![OCTET_STRING, 65];
        wrapped.extend_from_slice(&point);
        let want = KeyData::Ecdsa(*ec_public);
        assert_eq!(
            public_key(KeyAlgorithm::EcdsaP256, &wrapped),
            Ok(want.clone())
        );
        assert_eq!(public_key(KeyAlgorithm::EcdsaP256, &point), Ok(want));
        // Compressed points (0x02/0x03, 33 bytes) are not what PKCS#11 returns.
        let mut compressed = point[..33].to_vec();
        compressed[0] = 0x02;
        assert!(public_key(KeyAlgorithm::EcdsaP256, &compressed).is_err());
    }

    /// `r || s` from a P-256 key, converted, verifies under SSH's rules;
    /// values with the high bit set get their leading zero, and a short
    /// value (leading zero bytes) is encoded minimally.
    #[test]
    fn ecdsa_raw_signatures_become_ssh_mpints() {
        let key = PrivateKey::random(
            &mut crate::signer::file::rng(),
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
        )
        .unwrap();
        for i in 0..64u8 {
            let message = [i; 40];
            let ssh: Signature = key.try_sign(&message).unwrap();
            // SSH -> raw r||s, as a PKCS#11 token would return it.
            let mut reader = ssh.as_bytes();
            let r = Mpint::decode_positive(&mut reader);
            let s = Mpint::decode_positive(&mut reader);
            let mut raw = vec![0u8; 64];
            raw[32 - r.len()..32].copy_from_slice(&r);
            raw[64 - s.len()..].copy_from_slice(&s);
            let back = signature(KeyAlgorithm::EcdsaP256, &raw).unwrap();
            assert_eq!(back, ssh, "message {i}");
            Verifier::verify(key.public_key().key_data(), &message, &back).unwrap();
        }
        assert!(matches!(
            signature(KeyAlgorithm::EcdsaP256, &[1u8; 70]),
            Err(EncodingError::BadSignature { expected: 64, .. })
        ));
        assert!(signature(KeyAlgorithm::Ed25519, &[1u8; 63]).is_err());
    }

    trait DecodePositive {
        fn decode_positive(reader: &mut &[u8]) -> Vec<u8>;
    }

    impl DecodePositive for Mpint {
        fn decode_positive(reader: &mut &[u8]) -> Vec<u8> {
            use ssh_key::encoding::Decode;
            let m = Mpint::decode(reader).unwrap();
            m.as_positive_bytes().unwrap().to_vec()
        }
    }
}
