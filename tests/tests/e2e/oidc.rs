//! OIDC ID tokens from a real provider on loopback, and every way a token can
//! be wrong; plus the policy's denials, each with a reason and an audit row.

use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

const CLIENT_ID: &str = "shiftkey-e2e";

fn setup() -> anyhow::Result<(OidcProvider, TestCa, String, u64)> {
    let provider = OidcProvider::start()?;
    let (text, shift_end) = policy();
    let ca = TestCa::init(&text, Some((provider.issuer(), CLIENT_ID)))?.start()?;
    let dir = tempfile::tempdir()?;
    let key = ssh_keygen(dir.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?
        .trim()
        .to_owned();
    Ok((provider, ca, public, shift_end))
}

#[test]
fn tokens_are_verified_and_every_bad_one_is_refused() -> anyhow::Result<()> {
    let (provider, ca, public, _) = setup()?;
    let body = json!({ "public_key": public, "role": "shell" });

    let good = provider.code_flow_token(CLIENT_ID, "alice@example.com", &["sre"])?;
    let (status, answer) = ca.request_https(&good, &body)?;
    assert_eq!(status, 200, "{answer}\n{}", ca.log());
    assert!(
        answer["key_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("alice@example.com role=shell ")
    );
    let who: Value = ca
        .client()
        .get(ca.url("/v1/whoami"))
        .bearer_auth(&good)
        .send()?
        .json()?;
    assert_eq!(
        who,
        json!({ "identity": "user:alice@example.com", "groups": ["sre"] })
    );

    let now = chrono::Utc::now().timestamp();
    let base = json!({ "email": "alice@example.com", "groups": ["sre"] });
    let with = |extra: Value| {
        let mut claims = base.clone();
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        claims
    };
    let mut bad: Vec<(&str, String, &str)> = vec![
        (
            "wrong issuer",
            provider.mint(with(
                json!({ "aud": CLIENT_ID, "iss": "http://localhost:1/evil" }),
            ))?,
            "wrong-issuer",
        ),
        (
            "wrong audience",
            provider.mint(with(json!({ "aud": "some-other-client" })))?,
            "wrong-audience",
        ),
        (
            "expired",
            provider.mint(with(
                json!({ "aud": CLIENT_ID, "iat": now - 7200, "exp": now - 3600 }),
            ))?,
            "expired",
        ),
        (
            "issued in the future",
            provider.mint(with(
                json!({ "aud": CLIENT_ID, "iat": now + 3600, "exp": now + 7200 }),
            ))?,
            "issued-in-future",
        ),
        (
            "no email",
            provider.mint(json!({ "aud": CLIENT_ID, "groups": ["sre"], "email": null }))?,
            "missing-email",
        ),
        (
            "email not verified",
            provider.mint(with(json!({ "aud": CLIENT_ID, "email_verified": false })))?,
            "email-not-verified",
        ),
        (
            "email that would forge a key ID field",
            provider.mint(with(
                json!({ "aud": CLIENT_ID, "email": "role=admin@example.com" }),
            ))?,
            "invalid-email",
        ),
        (
            "unknown kid, really signed by a key the provider never published",
            provider.mint_with(
                json!({ "claims": with(json!({ "aud": CLIENT_ID })), "key": "unpublished" }),
            )?,
            "unknown-key",
        ),
    ];
    // Bad signature: a valid token with one signature byte changed.
    let (head, sig) = good.rsplit_once('.').unwrap_or_default();
    let mut sig = sig.as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    bad.push((
        "bad signature",
        format!("{head}.{}", String::from_utf8_lossy(&sig)),
        "bad-signature",
    ));
    // alg none: the same claims, unsigned.
    let claims = good.split('.').nth(1).unwrap_or_default();
    bad.push((
        "alg none",
        format!("{}.{claims}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
        "algorithm-not-allowed",
    ));
    bad.push(("garbage", "not.a.jwt".to_owned(), "malformed"));

    for (name, token, code) in &bad {
        let (status, answer) = ca.request_https(token, &body)?;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["error"], *code, "{name}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains("refused"),
            "{name}: {answer}"
        );
    }
    let failures = ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["kind"] == "auth.failed")
        .count();
    assert_eq!(failures, bad.len(), "each refused token is one audit row");
    assert_eq!(ca.client().get(ca.url("/healthz")).send()?.status(), 200);
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn the_policy_denies_with_a_reason_and_an_audit_row() -> anyhow::Result<()> {
    let (provider, ca, public, shift_end) = setup()?;
    // The incident the requests name exists and is open.
    let (status, opened) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-42", "title": "replica lag", "severity": "sev2" }),
    )?;
    assert_eq!(status, 201, "{opened}");
    let alice = provider.code_flow_token(CLIENT_ID, "alice@example.com", &["sre"])?;
    let bob = provider.code_flow_token(CLIENT_ID, "bob@example.com", &["sre"])?;
    let carol = provider.code_flow_token(CLIENT_ID, "carol@example.com", &[])?;
    let ask = |token: &str, extra: Value| {
        let mut body = json!({ "public_key": public, "role": "db-debug", "incident": "INC-42", "reason": "replica lag" });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        ca.request_https(token, &body)
    };

    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "unknown role",
            &alice,
            json!({ "role": "db-admin" }),
            "unknown-role",
        ),
        ("not granted", &carol, json!({}), "not-granted"),
        (
            "role granted to nobody",
            &alice,
            json!({ "role": "nobody-has-this" }),
            "not-granted",
        ),
        ("not on call", &bob, json!({}), "not-on-call"),
        (
            "missing incident",
            &alice,
            json!({ "incident": null }),
            "incident-required",
        ),
        (
            "ttl above max",
            &alice,
            json!({ "ttl": "2h" }),
            "ttl-above-max",
        ),
    ];
    for (name, token, extra, code) in &cases {
        let (status, answer) = ask(token, extra.clone())?;
        assert_eq!(status, 403, "{name}: {answer}");
        assert_eq!(answer["error"], *code, "{name}: {answer}");
        assert!(
            answer["message"].as_str().unwrap_or_default().len() > 15,
            "{name}: a reason for a person"
        );
    }
    let denied: Vec<Value> = ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["kind"] == "certificate.denied")
        .collect();
    for (name, _, _, code) in &cases {
        assert!(
            denied
                .iter()
                .any(|r| r["detail"]["denied"] == *code && r["outcome"] == "deny"),
            "{name}: no audit row"
        );
    }

    // Alice is on call with an incident: allowed, and capped at her shift's end
    // even though she asked for longer and the role would allow it.
    let (status, answer) = ask(&alice, json!({ "ttl": "30m" }))?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["valid_before"].as_u64(), Some(shift_end), "{answer}");
    assert_eq!(answer["principals"], json!(["postgres@db-debug"]));
    let key_id = answer["key_id"].as_str().unwrap_or_default();
    assert!(
        key_id.starts_with("alice@example.com role=db-debug incident=INC-42 req=r_"),
        "{key_id}"
    );
    let row = ca.last_audit("certificate.issued")?;
    assert_eq!(row["detail"]["limited_by"], "shift-end");
    assert_eq!(row["detail"]["incident"], "INC-42");
    assert_eq!(row["detail"]["reason"], "replica lag");

    let metrics = ca.client().get(ca.url("/metrics")).send()?.text()?;
    assert!(
        metrics.contains(
            "shiftkey_ca_certificates_denied_total{role=\"db-debug\",reason=\"not-on-call\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("shiftkey_ca_certificates_issued_total{role=\"db-debug\"} 1"),
        "{metrics}"
    );
    Ok(())
}

/// One person, one identity (issue 13 §3): the identity provider may send
/// the email in any case; the CA compares and stores one spelling, so a
/// lock or a revocation by identity reaches every spelling.
#[test]
fn every_spelling_of_an_email_is_one_identity_for_revocation_and_locks() -> anyhow::Result<()> {
    let (provider, ca, public, _) = setup()?;
    let dir = tempfile::tempdir()?;
    let data_dir = ca.data_dir().display().to_string();
    let body = json!({ "public_key": public, "role": "shell" });
    let shouting = provider.code_flow_token(CLIENT_ID, "Alice@Example.COM", &["sre"])?;
    let (status, issued) = ca.request_https(&shouting, &body)?;
    assert_eq!(status, 200, "{issued}\n{}", ca.log());
    assert!(
        issued["key_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("alice@example.com role=shell "),
        "{issued}"
    );
    assert_eq!(
        ca.last_audit("certificate.issued")?["actor"],
        "user:alice@example.com"
    );
    let cert = dir.path().join("alice-cert.pub");
    std::fs::write(
        &cert,
        format!("{}\n", issued["certificate"].as_str().unwrap_or_default()),
    )?;

    // Revoking by identity, spelled as the policy does, reaches it.
    let out = ca.cli(&[
        "revoke",
        "--identity",
        "user:alice@example.com",
        "--reason",
        "rotate everything",
        "--data-dir",
        &data_dir,
        "--json",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(revoked["revoked_serials"], json!([issued["serial"]]));
    let krl = dir.path().join("revoked.krl");
    std::fs::write(&krl, ca.client().get(ca.url("/v1/krl")).send()?.bytes()?)?;
    assert!(
        shiftkey_tests::util::krl_revokes(&krl, &cert)?,
        "ssh-keygen -Q finds the certificate issued to Alice@Example.COM in the KRL"
    );

    // Locked under one spelling, refused under another.
    let out = ca.cli(&[
        "lock",
        "--identity",
        "user:ALICE@example.com",
        "--reason",
        "laptop stolen",
        "--data-dir",
        &data_dir,
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("locked user:alice@example.com"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (status, answer) = ca.request_https(&shouting, &body)?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("identity-locked")),
        "{answer}"
    );
    let lower = provider.code_flow_token(CLIENT_ID, "alice@example.com", &["sre"])?;
    let (status, _) = ca.request_https(&lower, &body)?;
    assert_eq!(status, 403);
    Ok(())
}
