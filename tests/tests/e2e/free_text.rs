//! Free text that reaches the audit log and the review UI (issue 16): an
//! access reason, an incident title, the reason of a denial, an override
//! or a lock. Text holding a bidirectional control, a zero-width or a
//! control character is refused with a 400 that names the character, and
//! the refusal is audited; nothing is changed.

use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

/// What issue 16 tried: it reads "LGTM approved — per CISO".
const SPOOF: &str = "LGTM \u{202e}devorppa\u{202c} \u{2014} per CISO";

/// A role that needs an approval, so a request waits for a decision.
const APPROVED_ROLE: &str = r#"
[[role]]
name = "reviewed"
principals = ["deploy"]
hosts = ["app-1.prod.example.com"]
approvals = 1
approvers = ["group:sre-leads"]

[[grant]]
identities = ["local:root"]
roles = ["reviewed"]
"#;

fn refused(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"], "unsafe-text", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("U+"), "{what}: {message}");
    assert!(
        !message.contains("devorppa"),
        "{what}: the text is echoed: {message}"
    );
}

#[test]
fn text_that_hides_or_reorders_what_reviewers_read_is_refused_and_audited() -> anyhow::Result<()> {
    let ca = TestCa::init(&format!("{}\n{APPROVED_ROLE}", policy().0), None)?.start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let public = public.trim();

    // The access reason.
    let (status, body) =
        ca.request_local(&json!({ "public_key": public, "role": "shell", "reason": SPOOF }))?;
    refused(status, &body, "access reason");
    let row = ca.last_audit("certificate.rejected")?;
    assert_eq!(row["detail"]["error"], "unsafe-text", "{row}");
    assert_eq!(row["outcome"], "deny");

    // An incident title that borrows a change ticket's number.
    let (status, body) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-9", "title": "CHG-\u{200b}1234 approved", "severity": "sev3" }),
    )?;
    refused(status, &body, "incident title");
    let row = ca.last_audit("incident.rejected")?;
    assert_eq!(row["detail"]["error"], "unsafe-text", "{row}");
    let (_, list) = ca.local("GET", "/v1/incidents", &json!(null))?;
    assert_eq!(list, json!([]), "no incident was opened");

    // The reason of a denial (and of an approval).
    let (status, pending) =
        ca.request_local(&json!({ "public_key": public, "role": "reviewed", "reason": "hotfix" }))?;
    assert_eq!(status, 202, "{pending}");
    let id = pending["id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = ca.local(
        "POST",
        &format!("/v1/requests/{id}/deny"),
        &json!({ "reason": SPOOF }),
    )?;
    refused(status, &body, "deny reason");
    let row = ca.last_audit("request.denied")?;
    assert_eq!(row["outcome"], "deny", "{row}");
    assert_eq!(row["detail"]["error"], "unsafe-text", "{row}");
    let (_, look) = ca.local("GET", &format!("/v1/requests/{id}"), &json!(null))?;
    assert_eq!(look["status"], "pending", "nothing was decided: {look}");

    // Override reasons: create, shorten, delete.
    let now = chrono::Utc::now().timestamp();
    let (status, body) = ca.local(
        "POST",
        "/v1/oncall/overrides",
        &json!({ "schedule": "primary", "member": "user:bob@example.com", "start": now + 3600,
                 "end": now + 7200, "reason": "covers \u{2066}the\u{2069} night" }),
    )?;
    refused(status, &body, "override reason");
    let (status, made) = ca.local(
        "POST",
        "/v1/oncall/overrides",
        &json!({ "schedule": "primary", "member": "user:bob@example.com", "start": now + 3600,
                 "end": now + 7200, "reason": "bob covers the night" }),
    )?;
    assert_eq!(status, 201, "{made}");
    let ov = made["id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = ca.local(
        "PATCH",
        &format!("/v1/oncall/overrides/{ov}"),
        &json!({ "end": now + 5400, "reason": "back\u{7f}early" }),
    )?;
    refused(status, &body, "shorten reason");
    let (status, body) = ca.local(
        "DELETE",
        &format!("/v1/oncall/overrides/{ov}?reason=not%E2%80%8Fneeded"),
        &json!(null),
    )?;
    refused(status, &body, "delete reason");
    let rejected: Vec<Value> = ca
        .audit_rows()?
        .into_iter()
        .filter(|r| r["detail"]["error"] == "unsafe-text" && r["kind"] != "certificate.rejected")
        .collect();
    assert!(
        rejected.len() >= 5,
        "every refusal is audited: {rejected:?}"
    );

    // A lock reason, on the CA host's command line.
    let out = ca.cli(&[
        "lock",
        "--identity",
        "user:mallory@example.com",
        "--reason",
        SPOOF,
        "--data-dir",
        &ca.data_dir().display().to_string(),
    ])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("U+202E RLO"), "{stderr}");
    let row = ca.last_audit("operator.rejected")?;
    assert_eq!(row["detail"]["command"], "lock", "{row}");
    assert!(
        !ca.audit_rows()?
            .iter()
            .any(|r| r["kind"] == "identity.locked"),
        "nobody was locked"
    );
    Ok(())
}
