//! Certificate request target (`crate::issue::validate`): the body of
//! `POST /v1/certificates` as JSON, to the checked request the policy
//! sees. Properties: the body either does not parse, or is refused with a
//! typed error that carries its API code and echoes no control character,
//! or becomes a request whose every field has the shape issuance relies
//! on: one OpenSSH public key line of an allowed type that is the key the
//! caller sent, its SHA-256 fingerprint, names (role, incident,
//! principals) the key ID and principals may hold, a reason that is one
//! trimmed line free of characters that hide or reorder text, and a TTL
//! between the documented minimum and the hard maximum.

use shiftkey_wire::CertificateRequest;
use ssh_key::{Algorithm, HashAlg, PublicKey};

use crate::issue::{MIN_RSA_BITS, MIN_TTL, is_valid_name, validate};
use crate::policy::HARD_MAX_TTL;

/// The fuzz entry point: the input is the request body.
pub fn certificate_request(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<CertificateRequest>(data) else {
        return;
    };
    let valid = match validate(&request) {
        Ok(valid) => valid,
        Err(e) => {
            assert!(!e.code().is_empty());
            let message = e.to_string();
            assert!(
                !message.chars().any(char::is_control),
                "a refusal echoes a control character: {message:?}"
            );
            assert!(
                message.len() <= 1024,
                "a {}-byte refusal message",
                message.len()
            );
            return;
        }
    };
    let line = request.public_key.trim();
    assert!(
        !line.contains(['\n', '\r']),
        "a public_key of several lines is accepted: {:?}",
        request.public_key
    );
    let sent = PublicKey::from_openssh(line)
        .unwrap_or_else(|e| panic!("accepted a key OpenSSH's format refuses ({e})"));
    assert_eq!(sent.key_data(), valid.public_key.key_data());
    match valid.public_key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        Algorithm::Rsa { .. } => {
            let bits = valid
                .public_key
                .key_data()
                .rsa()
                .map(|rsa| rsa.key_size())
                .unwrap_or_default();
            assert!(bits >= MIN_RSA_BITS, "an RSA key of {bits} bits");
        }
        other => panic!("a {other} subject key is accepted"),
    }
    assert_eq!(
        valid.fingerprint,
        valid.public_key.fingerprint(HashAlg::Sha256).to_string()
    );
    assert!(is_valid_name(&valid.role), "role {:?}", valid.role);
    if let Some(incident) = &valid.incident {
        assert!(is_valid_name(incident), "incident {incident:?}");
    }
    if let Some(reason) = &valid.reason {
        assert!(!reason.is_empty() && reason.len() <= 1000);
        assert_eq!(reason, reason.trim());
        assert!(
            crate::free_text::check("reason", reason).is_ok(),
            "reason {reason:?}"
        );
    }
    if let Some(ttl) = valid.ttl {
        assert!(
            (MIN_TTL..=HARD_MAX_TTL).contains(&ttl),
            "a ttl of {ttl:?} is accepted"
        );
    }
    if let Some(principals) = &valid.principals {
        assert!((1..=32).contains(&principals.len()));
        assert!(
            principals.iter().all(|p| is_valid_name(p)),
            "{principals:?}"
        );
    }
}

/// Request bodies as `shiftkey access` and the API documentation send
/// them, and near misses the CA refuses.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMCzD0yWZTTUU3h7WHMcAF81n9eC6Al3f2S0GTV2ZD9b alice@laptop";
    [
        serde_json::json!({ "public_key": key, "role": "oncall-db" }),
        serde_json::json!({
            "public_key": key, "role": "incident-responder", "incident": "INC-4211",
            "reason": "Disk full on db-1, rotating logs", "ttl": "15m",
            "principals": ["postgres", "ops"]
        }),
        serde_json::json!({ "public_key": format!("{key}\n{key}"), "role": "oncall-db" }),
        serde_json::json!({ "public_key": key, "role": "oncall-db", "ttl": "1ns" }),
        serde_json::json!({ "public_key": key, "role": "oncall-db", "reason": "LGTM \u{202e}devorppa\u{202c}" }),
        serde_json::json!({ "public_key": key, "role": "-oops", "principals": [] }),
        serde_json::json!({ "public_key": key, "role": "oncall-db", "ttl": "25h" }),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}
