//! `shiftkey-ca audit verify` on a real log, before and after tampering with
//! the SQLite file by hand.

use std::process::Command;

use serde_json::json;
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::util::{require_tool, run_ok, ssh_keygen};

use crate::fixtures::policy;

fn issue_some(ca: &TestCa, n: usize) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    for _ in 0..n {
        let (status, body) =
            ca.request_local(&json!({ "public_key": public.trim(), "role": "shell" }))?;
        assert_eq!(status, 200, "{body}");
    }
    Ok(())
}

fn verify(ca: &TestCa) -> anyhow::Result<(bool, String)> {
    let dir = ca.data_dir().to_string_lossy().into_owned();
    let out = ca.cli(&["audit", "verify", "--data-dir", &dir])?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn sqlite(ca: &TestCa, sql: &str) -> anyhow::Result<()> {
    require_tool("sqlite3", "sqlite3")?;
    run_ok(
        Command::new("sqlite3")
            .arg(ca.data_dir().join("shiftkey.db"))
            .arg(sql),
    )?;
    Ok(())
}

#[test]
fn verify_names_the_edited_row() -> anyhow::Result<()> {
    let mut ca = TestCa::init(&policy().0, None)?.start()?;
    issue_some(&ca, 3)?;
    ca.stop()?;
    let (ok, out) = verify(&ca)?;
    assert!(ok, "{out}");
    assert!(out.contains("audit log OK"), "{out}");

    // The append-only triggers stop a casual edit...
    let casual = Command::new("sqlite3")
        .arg(ca.data_dir().join("shiftkey.db"))
        .arg("UPDATE audit SET actor = 'local:mallory' WHERE kind = 'certificate.issued'")
        .output()?;
    assert!(!casual.status.success());
    assert!(String::from_utf8_lossy(&casual.stderr).contains("append-only"));
    // ...and the hash chain catches a deliberate one.
    let rows = ca.audit_rows()?;
    let target = rows
        .iter()
        .find(|r| r["kind"] == "certificate.issued")
        .map(|r| r["seq"].clone())
        .unwrap_or_default();
    sqlite(
        &ca,
        &format!(
            "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'local:mallory' WHERE seq = {target};"
        ),
    )?;
    let (ok, out) = verify(&ca)?;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "row {target}: contents do not match its hash (edited)"
        )),
        "{out}"
    );
    Ok(())
}

#[test]
fn verify_names_the_deleted_row() -> anyhow::Result<()> {
    let mut ca = TestCa::init(&policy().0, None)?.start()?;
    issue_some(&ca, 3)?;
    ca.stop()?;
    sqlite(
        &ca,
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3;",
    )?;
    let (ok, out) = verify(&ca)?;
    assert!(!ok, "{out}");
    assert!(out.contains("row 4: rows 3..=3 are missing"), "{out}");
    Ok(())
}

#[test]
fn sighup_reloads_a_valid_policy_and_keeps_the_old_one_otherwise() -> anyhow::Result<()> {
    let (text, _) = policy();
    let ca = TestCa::init(&text, None)?.start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let ask = |role: &str| ca.request_local(&json!({ "public_key": public.trim(), "role": role }));
    let policy_file = ca.data_dir().join("policy.toml");

    std::fs::write(
        &policy_file,
        "[[role]]\nname = \"broken\"\nprincipals = [\"a b\"]\n",
    )?;
    ca.signal("HUP")?;
    wait_for_audit(&ca, "policy.reload_refused")?;
    assert_eq!(ask("shell")?.0, 200, "the old policy is still in force");

    let extended = format!(
        "{text}\n[[role]]\nname = \"extra\"\nprincipals = [\"sktest\"]\nhosts = [\"*\"]\n\n[[grant]]\nidentities = [\"local:root\"]\nroles = [\"extra\"]\n"
    );
    std::fs::write(&policy_file, extended)?;
    assert_eq!(ask("extra")?.1["error"], "unknown-role");
    ca.signal("HUP")?;
    wait_for_audit(&ca, "policy.reloaded")?;
    assert_eq!(ask("extra")?.0, 200, "the new role is in force");
    Ok(())
}

fn wait_for_audit(ca: &TestCa, kind: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if ca.audit_rows()?.iter().any(|r| r["kind"] == kind) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    anyhow::bail!("no {kind} audit row appeared:\n{}", ca.log())
}
