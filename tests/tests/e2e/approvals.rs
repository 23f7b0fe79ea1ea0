//! Access requests and approvals, with real OIDC identities: auto-approval
//! for someone on call during a severe incident, a second person's approval,
//! refused self-approval, denial, and the policy still deciding at issuance.

use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

const CLIENT_ID: &str = "shiftkey-e2e";

const ROLES: &str = r#"
[[role]]
name = "reviewed"
principals = ["deploy"]
hosts = ["app-1.prod.example.com"]
approvals = 1
approvers = ["group:sre"]

[[role]]
name = "prod-write"
principals = ["deploy"]
hosts = ["app-*.prod.example.com"]
max_ttl = "30m"
require_on_call = ["primary"]
require_incident = true
approvals = 1
approvers = ["group:sre-leads"]
auto_approve = { on_call = true, incident_severity = "sev2" }

[[grant]]
identities = ["group:sre"]
roles = ["reviewed", "prod-write"]
"#;

struct World {
    provider: OidcProvider,
    ca: TestCa,
    public: String,
    shift_end: u64,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> anyhow::Result<Self> {
        let provider = OidcProvider::start()?;
        let (text, shift_end) = policy();
        let ca = TestCa::init(
            &format!("{text}\n{ROLES}"),
            Some((provider.issuer(), CLIENT_ID)),
        )?
        .start()?;
        let dir = tempfile::tempdir()?;
        let key = ssh_keygen(dir.path(), "id", &["-t", "ed25519"])?;
        let public = std::fs::read_to_string(key.with_extension("pub"))?
            .trim()
            .to_owned();
        Ok(Self {
            provider,
            ca,
            public,
            shift_end,
            _dir: dir,
        })
    }

    fn token(&self, email: &str, groups: &[&str]) -> anyhow::Result<String> {
        self.provider.code_flow_token(CLIENT_ID, email, groups)
    }

    fn ask(&self, token: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let mut full = json!({ "public_key": self.public });
        if let (Some(f), Some(b)) = (full.as_object_mut(), body.as_object()) {
            f.extend(b.clone());
        }
        self.ca.request_https(token, &full)
    }

    fn call(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let client = self.ca.client();
        let request = match method {
            "POST" => client
                .post(self.ca.url(path))
                .json(&body.unwrap_or(json!({}))),
            _ => client.get(self.ca.url(path)),
        };
        let response = request.bearer_auth(token).send()?;
        let status = response.status().as_u16();
        Ok((status, response.json().unwrap_or(Value::Null)))
    }
}

#[test]
fn on_call_with_a_severe_incident_is_approved_at_once_until_the_shift_ends() -> anyhow::Result<()> {
    let w = World::new()?;
    let (status, _) = w.ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-1", "title": "outage", "severity": "sev1" }),
    )?;
    assert_eq!(status, 201);
    let alice = w.token("alice@example.com", &["sre"])?;
    let (status, answer) = w.ask(
        &alice,
        json!({ "role": "prod-write", "incident": "INC-1", "reason": "failover", "ttl": "30m" }),
    )?;
    assert_eq!(status, 200, "auto-approved: {answer}");
    assert_eq!(
        answer["valid_before"].as_u64(),
        Some(w.shift_end),
        "ends with alice's shift"
    );
    let explained =
        w.ca.audit_rows()?
            .into_iter()
            .rev()
            .find(|r| r["kind"] == "certificate.issued")
            .unwrap_or_default();
    assert_eq!(explained["detail"]["role"], "prod-write");

    // Off shift: denied with the reason, no request created.
    let bob = w.token("bob@example.com", &["sre"])?;
    let (status, answer) = w.ask(
        &bob,
        json!({ "role": "prod-write", "incident": "INC-1", "reason": "failover" }),
    )?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("not-on-call")),
        "{answer}"
    );
    Ok(())
}

#[test]
fn a_second_person_approves_and_self_approval_is_refused() -> anyhow::Result<()> {
    let w = World::new()?;
    let carol = w.token("carol@example.com", &["sre"])?;
    let bob = w.token("bob@example.com", &["sre"])?;
    let mallory = w.token("mallory@example.com", &["dev"])?;

    let (status, pending) = w.ask(
        &carol,
        json!({ "role": "reviewed", "reason": "deploy hotfix 1.2.3" }),
    )?;
    assert_eq!(status, 202, "{pending}");
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["approvals_needed"], 1);
    let id = pending["id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/v1/requests/{id}");

    // The requester cannot approve their own request; strangers cannot either.
    let (status, answer) = w.call(&carol, "POST", &format!("{path}/approve"), None)?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("self-approval")),
        "{answer}"
    );
    let (status, answer) = w.call(&mallory, "POST", &format!("{path}/approve"), None)?;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = w.call(&mallory, "GET", &path, None)?;
    assert_eq!(status, 403, "only requester and approvers see it: {answer}");

    // Bob sees it waiting for him and approves.
    let (status, waiting) = w.call(&bob, "GET", "/v1/requests", None)?;
    assert_eq!(status, 200);
    assert!(
        waiting
            .as_array()
            .is_some_and(|l| l.iter().any(|r| r["id"] == id.as_str())),
        "{waiting}"
    );
    let (status, approved) = w.call(
        &bob,
        "POST",
        &format!("{path}/approve"),
        Some(json!({ "reason": "looks right" })),
    )?;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approvals"], json!(["user:bob@example.com"]));

    // Carol's next look issues the certificate; its key ID names the request.
    let (status, issued) = w.call(&carol, "GET", &path, None)?;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["status"], "issued");
    let key_id = issued["certificate"]["key_id"].as_str().unwrap_or_default();
    assert!(
        key_id.starts_with(&format!("carol@example.com role=reviewed req={id} ")),
        "{key_id}"
    );
    for kind in ["request.created", "request.approved", "certificate.issued"] {
        w.ca.last_audit(kind)?;
    }
    let (status, _) = w.call(&carol, "GET", &path, None)?;
    assert_eq!(status, 200, "looking again is harmless");

    // Revoking the request revokes its certificate.
    let dir = w.ca.data_dir().to_string_lossy().into_owned();
    let out = shiftkey_tests::util::run_ok(
        std::process::Command::new(shiftkey_tests::util::binary("shiftkey-ca")?).args([
            "revoke",
            "--data-dir",
            &dir,
            "--request",
            &id,
            "--reason",
            "approved by mistake",
            "--json",
        ]),
    )?;
    let revoked: Value = serde_json::from_str(out.trim())?;
    assert_eq!(
        revoked["revoked_serials"],
        json!([issued["certificate"]["serial"]])
    );

    // A denial needs a reason and ends the request.
    let (_, second) = w.ask(
        &carol,
        json!({ "role": "reviewed", "reason": "deploy hotfix 1.2.4" }),
    )?;
    let second_path = format!("/v1/requests/{}", second["id"].as_str().unwrap_or_default());
    let (status, _) = w.call(&bob, "POST", &format!("{second_path}/deny"), None)?;
    assert_eq!(status, 400, "a denial without a reason is refused");
    let (status, denied) = w.call(
        &bob,
        "POST",
        &format!("{second_path}/deny"),
        Some(json!({ "reason": "not during the freeze" })),
    )?;
    assert_eq!(status, 200, "{denied}");
    let (_, seen) = w.call(&carol, "GET", &second_path, None)?;
    assert_eq!(seen["status"], "denied");
    assert_eq!(seen["decision_reason"], "not during the freeze");
    assert!(seen.get("certificate").is_none());
    Ok(())
}
