//! Malformed and hostile requests: each a 4xx with a clear message, an audit
//! row where the request got that far, and a CA that keeps serving.

use serde_json::{Value, json};
use shiftkey_tests::ca::{TestCa, http_over_socket};
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

fn key_line(dir: &std::path::Path, name: &str, args: &[&str]) -> anyhow::Result<String> {
    let key = ssh_keygen(dir, name, args)?;
    Ok(std::fs::read_to_string(key.with_extension("pub"))?
        .trim()
        .to_owned())
}

#[test]
fn bad_requests_are_refused_clearly_and_audited() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let good = key_line(work.path(), "ed", &["-t", "ed25519"])?;
    let dsa = key_line(work.path(), "dsa", &["-t", "dsa"])?;
    let rsa2048 = key_line(work.path(), "rsa", &["-t", "rsa", "-b", "2048"])?;
    // A certificate where a key belongs: issue one, send it back.
    let (_, issued) = ca.request_local(&json!({ "public_key": good, "role": "shell" }))?;
    let cert = issued["certificate"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let with = |field: &str, value: Value| {
        let mut body = json!({ "public_key": good, "role": "shell" });
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "malformed key",
            with("public_key", json!("ssh-ed25519 not-base64!!")),
            "invalid-public-key",
        ),
        (
            "truncated key",
            with("public_key", json!(&good[..good.len() - 12])),
            "invalid-public-key",
        ),
        (
            "empty key",
            with("public_key", json!("")),
            "invalid-public-key",
        ),
        (
            "DSA key",
            with("public_key", json!(dsa)),
            "key-type-not-allowed",
        ),
        (
            "RSA 2048",
            with("public_key", json!(rsa2048)),
            "rsa-key-too-small",
        ),
        (
            "certificate as key",
            with("public_key", json!(cert)),
            "certificate-not-key",
        ),
        (
            "principal with comma",
            with("principals", json!(["sktest,root"])),
            "invalid-principal",
        ),
        (
            "principal with space",
            with("principals", json!(["sk test"])),
            "invalid-principal",
        ),
        (
            "principal with newline",
            with("principals", json!(["sktest\nroot"])),
            "invalid-principal",
        ),
        (
            "principal with NUL",
            with("principals", json!(["sktest\u{0}root"])),
            "invalid-principal",
        ),
        (
            "incident with key-id injection",
            with("incident", json!("INC-1 role=admin")),
            "invalid-incident",
        ),
        (
            "incident with newline",
            with("incident", json!("INC-1\nserial=1")),
            "invalid-incident",
        ),
        (
            "role with comma",
            with("role", json!("shell,admin")),
            "invalid-role",
        ),
        ("ttl above 24h", with("ttl", json!("48h")), "invalid-ttl"),
        ("unknown field", with("admin", json!(true)), "invalid-json"),
        (
            "principal outside the role",
            with("principals", json!(["root"])),
            "principal-not-in-role",
        ),
    ];
    for (name, body, code) in &cases {
        let (status, answer) = ca.request_local(body)?;
        assert!(
            (400..500).contains(&status),
            "{name}: status {status} {answer}"
        );
        assert_eq!(answer["error"], *code, "{name}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| m.len() > 10),
            "{name}: a message says what was wrong"
        );
    }

    // Bodies that are not JSON at all, or far too large.
    let socket = ca.socket();
    let (status, body) = http_over_socket(&socket, "POST", "/v1/certificates", b"{not json")?;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("invalid-json"));
    let huge = format!(
        "{{\"public_key\":\"{}\",\"role\":\"shell\"}}",
        "A".repeat(10 * 1024 * 1024)
    );
    let (status, body) = http_over_socket(&socket, "POST", "/v1/certificates", huge.as_bytes())?;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("body-too-large"));

    // Still serving, and still issuing.
    let (status, _) = ca.request_local(&json!({ "public_key": good, "role": "shell" }))?;
    assert_eq!(status, 200);
    assert_eq!(ca.client().get(ca.url("/healthz")).send()?.status(), 200);

    // Every refusal is one audit row with its code: as many rows per code as
    // cases with that code, plus the two body-level refusals.
    let rows = ca.audit_rows()?;
    let refused: Vec<&Value> = rows
        .iter()
        .filter(|r| r["kind"] == "certificate.rejected" || r["kind"] == "certificate.denied")
        .collect();
    let code_of = |r: &Value| {
        r["detail"]["error"]
            .as_str()
            .or(r["detail"]["denied"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    for (_, _, code) in &cases {
        let expected = cases.iter().filter(|(_, _, c)| c == code).count()
            + usize::from(*code == "invalid-json");
        let found = refused.iter().filter(|r| code_of(r) == *code).count();
        assert_eq!(found, expected, "audit rows for {code}");
    }
    assert_eq!(
        refused
            .iter()
            .filter(|r| code_of(r) == "body-too-large")
            .count(),
        1
    );
    assert_eq!(
        refused.len(),
        cases.len() + 2,
        "one row per refusal, no more"
    );
    assert!(
        refused
            .iter()
            .all(|r| r["outcome"] == "deny" && r["actor"] == "local:root")
    );

    // A role name built to inject lines into /metrics is refused, and the
    // metrics keep their shape (labels only ever name roles the policy has).
    let injection = "x\"} 1\nshiftkey_ca_certificates_issued_total{role=\"shell\"} 9e9\n#";
    let (status, _) = ca.request_local(&with("role", json!(injection)))?;
    assert_eq!(status, 400);
    let metrics = ca.client().get(ca.url("/metrics")).send()?.text()?;
    assert!(!metrics.contains("9e9"), "{metrics}");
    assert!(
        metrics.contains("role=\"(unknown)\",reason=\"invalid-role\""),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn unknown_paths_and_missing_credentials_get_json_errors() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let resp = ca.client().get(ca.url("/v1/nope")).send()?;
    assert_eq!(resp.status(), 404);
    let resp = ca
        .client()
        .post(ca.url("/v1/certificates"))
        .json(&json!({}))
        .send()?;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json()?;
    assert_eq!(body["error"], "missing-token");
    assert!(
        body["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("shiftkey login")
    );
    let spec: Value = ca.client().get(ca.url("/v1/openapi.json")).send()?.json()?;
    assert!(spec["paths"]["/v1/certificates"]["post"].is_object());
    let metrics = ca.client().get(ca.url("/metrics")).send()?.text()?;
    assert!(
        metrics.contains("shiftkey_ca_auth_failures_total{kind=\"missing-token\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shiftkey_ca_issue_latency_seconds_bucket"),
        "{metrics}"
    );
    Ok(())
}

/// The CA's own public keys are never certified, and a TTL too short to
/// make a certificate that is valid when it arrives is refused (the
/// documented minimum is 2 s).
#[test]
fn the_cas_own_keys_and_already_expired_ttls_are_refused() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?.start()?;
    let work = tempfile::tempdir()?;
    let good = key_line(work.path(), "ed", &["-t", "ed25519"])?;
    for path in ["/v1/ca/user.pub", "/v1/ca/host.pub"] {
        let (status, line) = http_over_socket(&ca.socket(), "GET", path, b"")?;
        assert_eq!(status, 200);
        let line = String::from_utf8(line)?;
        let line = line.lines().next().unwrap_or_default().trim();
        let (status, answer) = ca.request_local(&json!({ "public_key": line, "role": "shell" }))?;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"], "ca-key-as-subject", "{path}: {answer}");
    }
    let refused = ca.last_audit("certificate.rejected")?;
    assert_eq!(refused["detail"]["error"], "ca-key-as-subject", "{refused}");

    for ttl in ["1ns", "999ms", "1s"] {
        let (status, answer) =
            ca.request_local(&json!({ "public_key": good, "role": "shell", "ttl": ttl }))?;
        assert_eq!(status, 400, "{ttl}: {answer}");
        assert_eq!(answer["error"], "invalid-ttl", "{ttl}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains("at least 2s"),
            "{ttl}: {answer}"
        );
    }
    let (status, answer) =
        ca.request_local(&json!({ "public_key": good, "role": "shell", "ttl": "2s" }))?;
    assert_eq!(status, 200, "{answer}");
    let valid_before = answer["valid_before"].as_u64().unwrap_or(0);
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    assert!(valid_before > now, "valid until {valid_before}, now {now}");
    Ok(())
}
