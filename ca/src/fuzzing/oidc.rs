//! OIDC targets (`crate::oidc`): ID tokens as `Authorization: Bearer` and
//! `POST /v1/login` carry them, and JWKS documents as a provider serves
//! them. Tokens are verified by the CA's own verifier over a fixed key set
//! (it never fetches), at a fixed time.
//!
//! Properties:
//! - every refusal is a typed [`Error`], never "provider unavailable" (no
//!   fetch happens), and verification never waits;
//! - a token verifies only if its signed part is one the test keys signed
//!   (a valid signature over changed header or claims never verifies), and
//!   what it yields meets the documented invariants of [`VerifiedToken`];
//! - a JWKS document parses or is refused; a token verifies against a
//!   parsed set only if the set holds the genuine public key that signed it.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PrivateSigningKey as _};
use serde_json::{Value, json};
use signature::Signer as _;
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::EcdsaPublicKey;

use crate::oidc::{Error, OidcSettings, OidcVerifier, VerifiedToken};

const ISSUER: &str = "https://idp.fuzz.example";
const AUDIENCE: &str = "shiftkey";
/// The fixed "now" of every verification (2026-09-21).
const NOW: i64 = 1_790_000_000;

/// Test-only signing keys, generated for the fuzz targets and trusted by
/// nothing but the fuzz verifier.
const RSA_PEM: &str = include_str!("keys/rsa2048.pem");
const ECDSA_OPENSSH: &str = include_str!("keys/ecdsa_p256");

/// The three signers, their public JWKs, and the signed parts of every
/// seed token they made.
struct Fixture {
    /// `(alg, kid, public JWK)`.
    keys: Vec<(&'static str, &'static str, Value)>,
    tokens: Vec<String>,
    signed: HashSet<String>,
    verifier: OidcVerifier,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn settings() -> OidcSettings {
    OidcSettings {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        groups_claim: crate::oidc::DEFAULT_GROUPS_CLAIM.to_owned(),
        allowed_algs: ["RS256", "ES256", "EdDSA"].map(str::to_owned).to_vec(),
        clock_skew: Duration::from_secs(60),
        danger_allow_http_issuer: false,
        danger_accept_unverified_email: false,
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(NOW, 0).unwrap_or_default()
}

/// An SSH ECDSA signature (`mpint r, mpint s`) as JWS wants it: `r || s`,
/// 32 bytes each.
fn jws_ecdsa(ssh_signature: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut rest = ssh_signature;
    for _ in 0..2 {
        let len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0) as usize;
        let int = rest.get(4..4 + len).unwrap_or_default();
        rest = rest.get(4 + len..).unwrap_or_default();
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0, 32 - int.len()));
        out.extend_from_slice(int);
    }
    out
}

/// Claim sets shaped as each provider's ID tokens are (the claims Google,
/// Microsoft Entra, Okta, Auth0 and Keycloak document), with our issuer
/// and audience.
fn claim_sets() -> Vec<Value> {
    let base = |extra: Value| {
        let mut claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 10, "exp": NOW + 3600,
            "email": "alice@example.com", "email_verified": true,
        });
        if let (Some(map), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            map.extend(extra);
        }
        claims
    };
    vec![
        // Google
        base(
            json!({"sub": "110169484474386276334", "azp": AUDIENCE, "hd": "example.com",
            "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q", "name": "Alice Doe", "groups": ["oncall-db"]}),
        ),
        // Microsoft Entra (v2.0)
        base(
            json!({"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "ver": "2.0",
            "tid": "9122040d-6c67-4c5b-b112-36a304b66dad", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "preferred_username": "alice@example.com", "nonce": "123523", "aio": "Df2UVXL1ix",
            "groups": ["0f6c2c4e-1d3a-4d7b-9a3e-2b9c1f0e5d71"]}),
        ),
        // Okta
        base(
            json!({"sub": "00uid4BxXw6I6TV4m0g3", "ver": 1, "jti": "ID.4eAWJOCMB3SX8XewDfVR",
            "amr": ["pwd"], "idp": "00ok1u7AsAkrwdZL3z0g3", "auth_time": NOW - 20,
            "groups": ["Everyone", "oncall-db"]}),
        ),
        // Auth0
        base(
            json!({"sub": "auth0|507f1f77bcf86cd799439020", "nickname": "alice",
            "name": "alice@example.com", "picture": "https://s.gravatar.com/avatar/x.png",
            "updated_at": "2026-09-01T12:00:00.000Z", "sid": "Ck3Jt1r0", "groups": []}),
        ),
        // Keycloak
        base(json!({"sub": "f:3e2b:alice", "typ": "ID", "azp": AUDIENCE,
            "session_state": "0f1f9b2c-4f1e-4c57-9a3e-3c2b1a0d9e8f", "acr": "1",
            "sid": "0f1f9b2c-4f1e-4c57-9a3e-3c2b1a0d9e8f", "preferred_username": "alice",
            "groups": ["/oncall/db", "oncall-db"]})),
    ]
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = CoreRsaPrivateSigningKey::from_pem(
            RSA_PEM,
            Some(JsonWebKeyId::new("fuzz-rs256".into())),
        )
        .unwrap_or_else(|e| panic!("fuzz RSA key: {e}"));
        let ecdsa = ssh_key::PrivateKey::from_openssh(ECDSA_OPENSSH)
            .unwrap_or_else(|e| panic!("fuzz ECDSA key: {e}"));
        let ed25519 = Ed25519Keypair::from_seed(&[0x3c; 32]);

        let point = match ecdsa.public_key().key_data().ecdsa() {
            Some(EcdsaPublicKey::NistP256(point)) => point.as_bytes().to_vec(),
            _ => panic!("the fuzz ECDSA key is not P-256"),
        };
        let (x, y) = (
            point.get(1..33).unwrap_or_default(),
            point.get(33..65).unwrap_or_default(),
        );
        let rsa_jwk = serde_json::to_value(rsa.as_verification_key())
            .unwrap_or_else(|e| panic!("fuzz RSA JWK: {e}"));
        let keys = vec![
            ("RS256", "fuzz-rs256", rsa_jwk),
            (
                "ES256",
                "fuzz-es256",
                json!({"kty": "EC", "use": "sig", "alg": "ES256", "kid": "fuzz-es256",
                    "crv": "P-256", "x": b64(x), "y": b64(y)}),
            ),
            (
                "EdDSA",
                "fuzz-eddsa",
                json!({"kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": "fuzz-eddsa",
                    "crv": "Ed25519", "x": b64(ed25519.public.as_ref())}),
            ),
        ];
        let sign = |alg: &str, input: &[u8]| -> Vec<u8> {
            match alg {
                "RS256" => rsa
                    .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input)
                    .unwrap_or_else(|e| panic!("RS256: {e}")),
                "ES256" => {
                    let KeypairData::Ecdsa(pair) = ecdsa.key_data() else {
                        panic!("the fuzz ECDSA key is not ECDSA")
                    };
                    let sig: ssh_key::Signature = pair
                        .try_sign(input)
                        .unwrap_or_else(|e| panic!("ES256: {e}"));
                    jws_ecdsa(sig.as_bytes())
                }
                _ => {
                    let sig: ssh_key::Signature = ed25519
                        .try_sign(input)
                        .unwrap_or_else(|e| panic!("EdDSA: {e}"));
                    sig.as_bytes().to_vec()
                }
            }
        };
        let mut tokens = Vec::new();
        let mut signed = HashSet::new();
        for claims in claim_sets() {
            for (alg, kid, _) in &keys {
                let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
                let input = format!(
                    "{}.{}",
                    b64(header.to_string().as_bytes()),
                    b64(claims.to_string().as_bytes())
                );
                let token = format!("{input}.{}", b64(&sign(alg, input.as_bytes())));
                signed.insert(input);
                tokens.push(token);
            }
        }
        let verifier =
            verifier_for(&json!({"keys": keys.iter().map(|k| &k.2).collect::<Vec<_>>()}))
                .unwrap_or_else(|| panic!("the fuzz JWKS does not load"));
        for token in &tokens {
            if let Err(e) = verify(&verifier, token) {
                panic!("a fuzz seed token does not verify: {e}");
            }
        }
        Fixture {
            keys,
            tokens,
            signed,
            verifier,
        }
    })
}

fn verifier_for(jwks: &Value) -> Option<OidcVerifier> {
    let keys: CoreJsonWebKeySet = serde_json::from_value(jwks.clone()).ok()?;
    OidcVerifier::with_fixed_keys(settings(), keys).ok()
}

/// Verifies now, without waiting: the fixed-key verifier never fetches.
fn verify(verifier: &OidcVerifier, token: &str) -> Result<VerifiedToken, Error> {
    let result = verifier
        .verify_at(token, now())
        .now_or_never()
        .unwrap_or_else(|| panic!("verifying a token waited (a JWKS fetch?)"));
    if let Err(e) = &result {
        assert!(
            !e.is_provider_unavailable() && !e.code().is_empty(),
            "refused as {}: {e}",
            e.code()
        );
    }
    result
}

/// The fuzz entry point for tokens: the input as the bearer token.
pub fn oidc_token(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let fixture = fixture();
    let Ok(verified) = verify(&fixture.verifier, token) else {
        return;
    };
    let signed_part = token.rsplit_once('.').map_or("", |(head, _)| head);
    assert!(
        fixture.signed.contains(signed_part),
        "a token whose header and claims no key signed verified: {token:?}"
    );
    let email = &verified.email;
    let (local, domain) = email.split_once('@').unwrap_or_default();
    assert!(
        email.len() <= 254
            && !local.is_empty()
            && !domain.is_empty()
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b)),
        "verified email {email:?}"
    );
    assert!(!verified.subject.is_empty() && !verified.subject.chars().any(char::is_control));
    assert!(verified.groups.len() <= 256 && verified.groups.iter().all(|g| g.len() <= 256));
    assert!(verified.expires_at > now() - chrono::Duration::seconds(60));
}

/// The fuzz entry point for JWKS documents: the input as a provider's
/// `jwks_uri` body.
pub fn oidc_jwks(data: &[u8]) {
    let Ok(keys) = serde_json::from_slice::<CoreJsonWebKeySet>(data) else {
        return;
    };
    assert!(keys.keys().len() <= data.len() / 2 + 1);
    let Ok(jwks) = serde_json::to_value(&keys) else {
        return;
    };
    let Ok(verifier) = OidcVerifier::with_fixed_keys(settings(), keys) else {
        return;
    };
    let fixture = fixture();
    for (index, (alg, _, genuine)) in fixture.keys.iter().enumerate() {
        // The first token each key signed (Google-shaped claims).
        let Some(token) = fixture.tokens.get(index) else {
            continue;
        };
        if verify(&verifier, token).is_ok() {
            let listed = jwks["keys"].as_array().into_iter().flatten();
            assert!(
                listed.clone().any(|k| same_material(k, genuine)),
                "a {alg} token verified against a JWKS without its key: {jwks}"
            );
        }
    }
}

/// Whether two JWKs hold the same public key (numbers compared as
/// integers: leading zero bytes do not count).
fn same_material(a: &Value, b: &Value) -> bool {
    let number = |v: &Value, name: &str| -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(v.get(name)?.as_str()?).ok()?;
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        Some(bytes[start..].to_vec())
    };
    let fields: &[&str] = match b.get("kty").and_then(Value::as_str) {
        Some("RSA") => &["n", "e"],
        Some("EC") => &["x", "y"],
        _ => &["x"],
    };
    fields.iter().all(|f| {
        let (x, y) = (number(a, f), number(b, f));
        x.is_some() && x == y
    })
}

/// Seed tokens: each provider's claim shape signed by each test key.
pub(super) fn token_seeds() -> Vec<Vec<u8>> {
    fixture()
        .tokens
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect()
}

/// Seed JWKS: the test keys' set, as one document and one key each.
pub(super) fn jwks_seeds() -> Vec<Vec<u8>> {
    let keys: Vec<&Value> = fixture().keys.iter().map(|k| &k.2).collect();
    let mut seeds = vec![json!({ "keys": keys }).to_string().into_bytes()];
    for key in keys {
        seeds.push(json!({ "keys": [key] }).to_string().into_bytes());
    }
    seeds
}
