//! Issue 13's escalation, through the real API: `local:skbob` holds a role
//! that requires being on call, an open sev1 incident and an approval (with
//! `auto_approve` for on call + sev1), and is named nowhere else. Before
//! issue 13 he put himself on call for 20 days, opened a sev1 and got a
//! certificate for `root` on every host. Now each step is refused with an
//! audit row; with the powers to make those facts himself, they still do
//! not count for him; made by someone else, they do.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::Context;
use serde_json::{Value, json};
use shiftkey_tests::ca::{TestCa, http_over_socket};
use shiftkey_tests::util::{ensure_login_user, run, run_ok, ssh_keygen};

/// The Unix user who tries it (a `local:` identity on the CA's socket).
const BOB: &str = "skbob";

fn policy(bob_powers: &str) -> String {
    format!(
        r#"
[settings]
max_ttl = "1h"

[[schedule]]
name = "primary"
timezone = "UTC"
rotation = {{ members = ["carol@example.com"], start = "2026-01-01T00:00", shift = "24h" }}

[[role]]
name = "prod-root"
principals = ["root"]
hosts = ["*"]
max_ttl = "30m"
require_on_call = ["primary"]
require_incident = true
approvals = 1
approvers = ["user:carol@example.com"]
auto_approve = {{ on_call = true, incident_severity = "sev1" }}

[[grant]]
identities = ["local:{BOB}"]
roles = ["prod-root"]
{bob_powers}
"#
    )
}

/// The CA, with its socket in a directory other users can reach (the data
/// directory is 0700).
struct World {
    ca: TestCa,
    socket: std::path::PathBuf,
    _public: tempfile::TempDir,
    uid: u32,
    gid: u32,
    public_key: String,
    _keys: tempfile::TempDir,
}

impl World {
    fn new() -> anyhow::Result<Self> {
        ensure_login_user(BOB)?;
        let id = |flag: &str| -> anyhow::Result<u32> {
            Ok(run_ok(Command::new("id").args([flag, BOB]))?
                .trim()
                .parse()?)
        };
        let (uid, gid) = (id("-u")?, id("-g")?);
        let ca = TestCa::init(&policy(""), None)?;
        let public = tempfile::Builder::new()
            .prefix("shiftkey-sock-")
            .tempdir()?;
        std::fs::set_permissions(
            public.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let socket = public.path().join("ca.sock");
        let config = ca.data_dir().join("ca.toml");
        let text = std::fs::read_to_string(&config)?.replace(
            "socket = \"ca.sock\"",
            &format!("socket = \"{}\"", socket.display()),
        );
        std::fs::write(&config, text)?;
        let ca = ca.start()?;
        let keys = tempfile::tempdir()?;
        let key = ssh_keygen(keys.path(), "bob", &["-t", "ed25519"])?;
        let public_key = std::fs::read_to_string(key.with_extension("pub"))?
            .trim()
            .to_owned();
        Ok(Self {
            ca,
            socket,
            _public: public,
            uid,
            gid,
            public_key,
            _keys: keys,
        })
    }

    /// One API request as `local:skbob`: `curl` over the CA's socket, run
    /// as that Unix user (the CA learns who from the kernel).
    fn as_bob(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let out = run(Command::new("curl")
            .uid(self.uid)
            .gid(self.gid)
            .current_dir("/")
            .args(["-sS", "--unix-socket"])
            .arg(&self.socket)
            .args(["-X", method, "-H", "Content-Type: application/json"])
            .args(["--data-binary", &body.to_string(), "-w", "\n%{http_code}"])
            .arg(format!("http://localhost{path}")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (answer, status) = text.rsplit_once('\n').context("no status from curl")?;
        Ok((
            status
                .trim()
                .parse()
                .with_context(|| format!("curl: {text}"))?,
            serde_json::from_str(answer).unwrap_or(Value::Null),
        ))
    }

    /// One API request as `local:root` (an admin, on the CA host).
    fn as_root(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let (status, bytes) =
            http_over_socket(&self.socket, method, path, body.to_string().as_bytes())?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    fn override_for_bob(&self, hours: i64, by_root: bool) -> anyhow::Result<(u16, Value)> {
        let now = chrono::Utc::now().timestamp();
        let body = json!({
            "schedule": "primary", "member": format!("local:{BOB}"),
            "start": now, "end": now + hours * 3600, "reason": "covering primary",
        });
        if by_root {
            self.as_root("POST", "/v1/oncall/overrides", &body)
        } else {
            self.as_bob("POST", "/v1/oncall/overrides", &body)
        }
    }

    fn open_sev1(&self, id: &str, by_root: bool) -> anyhow::Result<(u16, Value)> {
        let body = json!({ "id": id, "title": "prod down", "severity": "sev1" });
        if by_root {
            self.as_root("POST", "/v1/incidents", &body)
        } else {
            self.as_bob("POST", "/v1/incidents", &body)
        }
    }

    fn ask_for_root(&self, incident: &str) -> anyhow::Result<(u16, Value)> {
        self.as_bob(
            "POST",
            "/v1/certificates",
            &json!({
                "public_key": self.public_key, "role": "prod-root", "incident": incident,
                "reason": "need root everywhere", "ttl": "30m",
            }),
        )
    }

    /// The last audit row of `kind`, which must be about this actor.
    fn last(&self, kind: &str) -> anyhow::Result<Value> {
        let row = self.ca.last_audit(kind)?;
        anyhow::ensure!(row["actor"] == format!("local:{BOB}"), "{row}");
        Ok(row)
    }

    fn set_policy(&self, text: &str) -> anyhow::Result<()> {
        let reloads = || -> anyhow::Result<usize> {
            Ok(self
                .ca
                .audit_rows()?
                .iter()
                .filter(|r| r["kind"] == "policy.reloaded")
                .count())
        };
        let before = reloads()?;
        std::fs::write(self.ca.data_dir().join("policy.toml"), text)?;
        self.ca.signal("HUP")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while reloads()? == before {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "no reload:\n{}",
                self.ca.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    fn issued_to_bob(&self) -> anyhow::Result<usize> {
        Ok(self
            .ca
            .audit_rows()?
            .iter()
            .filter(|r| r["kind"] == "certificate.issued" && r["actor"] == format!("local:{BOB}"))
            .count())
    }
}

fn assert_refused(answer: (u16, Value), code: &str) {
    assert_eq!(
        (answer.0, answer.1["error"].as_str()),
        (403, Some(code)),
        "{}",
        answer.1
    );
}

#[test]
fn a_role_holder_cannot_put_himself_on_call_open_a_sev1_and_get_root() -> anyhow::Result<()> {
    let w = World::new()?;

    // 1. Twenty days on call: longer than any override may be, and no
    //    entry lets bob change who is on call at all.
    assert_refused(w.override_for_bob(20 * 24, false)?, "override-too-long");
    let row = w.last("authority.denied")?;
    assert_eq!(row["detail"]["action"], "override.create");
    assert_eq!(row["detail"]["denied"], "override-too-long");
    let refused = w.override_for_bob(1, false)?;
    assert!(
        refused.1["message"]
            .as_str()
            .is_some_and(|m| m.contains("no [[authority]] entry allows this")),
        "the refusal says what the policy says: {}",
        refused.1
    );
    assert_refused(refused, "not-authorized");
    assert_eq!(
        w.last("authority.denied")?["detail"]["denied"],
        "not-authorized"
    );
    let (status, overrides) = w.as_root("GET", "/v1/oncall/overrides", &Value::Null)?;
    assert_eq!((status, overrides), (200, json!([])), "nothing was created");

    // 2. A sev1 incident: not his to open.
    assert_refused(w.open_sev1("INC-ESC", false)?, "not-authorized");
    let row = w.last("authority.denied")?;
    assert_eq!(row["detail"]["action"], "incident.open");
    let (_, incidents) = w.as_root("GET", "/v1/incidents", &Value::Null)?;
    assert_eq!(incidents, json!([]), "nothing was opened");

    // 3. The certificate: refused, audited, and nothing pending.
    let (status, answer) = w.ask_for_root("INC-ESC")?;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(w.last("certificate.denied")?["outcome"], "deny");
    assert_eq!(w.issued_to_bob()?, 0);

    // With the powers to make both facts himself, they are made — and do
    // not count for him: no auto-approval, no certificate.
    w.set_policy(&policy(&format!(
        r#"
[[authority]]
identities = ["local:{BOB}"]
actions = ["override.create"]
schedules = ["primary"]
for = "self"
take_shifts = true

[[authority]]
identities = ["local:{BOB}"]
actions = ["incident.open"]
"#
    )))?;
    let (status, made) = w.override_for_bob(1, false)?;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        w.last("oncall.override")?["detail"]["authority"]["action"],
        "override.create"
    );
    let (status, opened) = w.open_sev1("INC-BOB", false)?;
    assert_eq!(status, 201, "{opened}");
    assert_refused(w.ask_for_root("INC-BOB")?, "self-served");
    assert_eq!(
        w.last("certificate.denied")?["detail"]["denied"],
        "self-served"
    );
    assert_eq!(w.issued_to_bob()?, 0);
    let (status, pending) = w.as_root("GET", "/v1/requests", &Value::Null)?;
    assert_eq!(
        (status, pending),
        (200, json!([])),
        "no request waits either"
    );

    // Made by someone else (root on the CA host, an admin), the same facts
    // count: the role's auto-approval holds and the certificate names the
    // role with its login.
    let (status, made) = w.override_for_bob(1, true)?;
    assert_eq!(status, 201, "{made}");
    let (status, opened) = w.open_sev1("INC-PAGE", true)?;
    assert_eq!(status, 201, "{opened}");
    let (status, issued) = w.ask_for_root("INC-PAGE")?;
    assert_eq!(status, 200, "{issued}\n{}", w.ca.log());
    assert_eq!(issued["principals"], json!(["root@prod-root"]));
    assert_eq!(w.issued_to_bob()?, 1);
    Ok(())
}
