//! `shiftkey-ca policy check|test|explain` as a policy repo's CI runs them.

use std::process::Command;

use shiftkey_tests::util::{binary, run};

fn shiftkey_ca(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = run(Command::new(binary("shiftkey-ca")?).args(args))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn check_points_at_line_and_column() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "[[role]]\nname = \"db\"\nprincipals = [\"postgres\"]\nhosts = [\"db-1\"]\nrequire_on_call = [\"sre-primry\"]\n\n[[grant]]\nidentities = [\"group:sre\"]\nroles = [\"dbb\"]\n",
    )?;
    let (ok, _, err) = shiftkey_ca(&["policy", "check", &file.to_string_lossy()])?;
    assert!(!ok);
    // Every error, each with file:line:column.
    assert!(err.contains("policy.toml:5:"), "{err}");
    assert!(err.contains("sre-primry"), "{err}");
    assert!(err.contains("policy.toml:9:"), "{err}");
    assert!(err.contains("dbb"), "{err}");

    std::fs::write(
        &file,
        "[[role]]\nname = \"db\"\nprincipals = [\"postgres\"\nhosts = []\n",
    )?;
    let (ok, _, err) = shiftkey_ca(&["policy", "check", &file.to_string_lossy()])?;
    assert!(!ok);
    assert!(
        err.contains("policy.toml:3:") || err.contains("policy.toml:4:"),
        "a syntax error is located: {err}"
    );

    let (ok, out, _) = shiftkey_ca(&["policy", "check", "--json", &file.to_string_lossy()])?;
    assert!(!ok);
    let json: serde_json::Value = serde_json::from_str(out.trim())?;
    assert_eq!(json["valid"], false);
    assert!(json["errors"][0]["line"].as_u64().is_some());
    Ok(())
}

#[test]
fn test_passes_good_expectations_and_fails_wrong_ones() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    let base = r#"
[[schedule]]
name = "sre"
timezone = "Europe/Berlin"
rotation = { members = ["alice@example.com", "bob@example.com"], start = "2026-11-02T09:00", shift = "7d" }

[[role]]
name = "db-debug"
principals = ["postgres"]
hosts = ["db-*"]
max_ttl = "30m"
require_on_call = ["sre"]
require_incident = true

[[grant]]
identities = ["group:sre"]
roles = ["db-debug"]

[[test]]
name = "alice is on call in her first week"
identity = "user:alice@example.com"
groups = ["sre"]
at = "2026-11-05T03:00:00+01:00"
role = "db-debug"
incident = "INC-1"
expect = "allow"
"#;
    std::fs::write(&file, base)?;
    let (ok, out, err) = shiftkey_ca(&["policy", "test", &file.to_string_lossy()])?;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("pass  alice is on call in her first week"),
        "{out}"
    );
    assert!(out.contains("1 passed, 0 failed"), "{out}");

    let wrong = format!(
        "{base}\n[[test]]\nname = \"bob is on call too (wrong)\"\nidentity = \"user:bob@example.com\"\ngroups = [\"sre\"]\nat = \"2026-11-05T03:00:00+01:00\"\nrole = \"db-debug\"\nincident = \"INC-1\"\nexpect = \"allow\"\n"
    );
    std::fs::write(&file, wrong)?;
    let (ok, out, _) = shiftkey_ca(&["policy", "test", &file.to_string_lossy()])?;
    assert!(!ok, "a wrong expectation fails the run: {out}");
    assert!(out.contains("FAIL  bob is on call too (wrong)"), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");

    let (ok, out, _) = shiftkey_ca(&[
        "policy",
        "explain",
        &file.to_string_lossy(),
        "--identity",
        "user:bob@example.com",
        "--group",
        "sre",
        "--role",
        "db-debug",
        "--incident",
        "INC-1",
        "--at",
        "2026-11-05T03:00:00+01:00",
    ])?;
    assert!(!ok, "explain exits non-zero on a denial");
    assert!(out.to_lowercase().contains("on call"), "{out}");
    Ok(())
}
