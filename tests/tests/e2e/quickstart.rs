//! The README's first command, as a user runs it on a fresh machine.

use std::process::Command;

use shiftkey_tests::util::{binary, free_port, run};

#[test]
fn quickstart_issues_and_shows_a_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("qs");
    let listen = format!("127.0.0.1:{}", free_port());
    let out = run(Command::new(binary("shiftkey-ca")?)
        .args(["quickstart", "--exit", "--listen", &listen, "--data-dir"])
        .arg(&data))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Issued certificate"), "{stdout}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
    };
    assert!(
        field("Key ID:").starts_with("\"local:root role=local-shell req=r_"),
        "{stdout}"
    );
    // The login scoped to the role, as enrolled hosts list it.
    assert_eq!(field("Principals:"), "root@local-shell", "{stdout}");
    assert_eq!(field("Extensions:"), "permit-pty", "{stdout}");
    assert!(
        stdout.contains("ssh-ed25519-cert-v01@openssh.com AAAA"),
        "{stdout}"
    );
    assert!(
        stdout.contains("audit verify --data-dir"),
        "the next commands are shown: {stdout}"
    );

    // The data directory it made is a working CA: the policy's own tests pass
    // and the audit log verifies, with the issuance in it.
    let policy = data.join("policy.toml");
    let test = run(Command::new(binary("shiftkey-ca")?)
        .args(["policy", "test"])
        .arg(&policy))?;
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );
    let verify = run(Command::new(binary("shiftkey-ca")?)
        .args(["audit", "verify", "--data-dir"])
        .arg(&data))?;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let export = run(Command::new(binary("shiftkey-ca")?)
        .args(["audit", "export", "--data-dir"])
        .arg(&data))?;
    assert!(String::from_utf8_lossy(&export.stdout).contains("\"certificate.issued\""));

    // Running it again reuses the directory and never overwrites the keys.
    let key_before = std::fs::read(data.join("keys/user_ca.pub"))?;
    let again = run(Command::new(binary("shiftkey-ca")?)
        .args(["quickstart", "--exit", "--data-dir"])
        .arg(&data))?;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read(data.join("keys/user_ca.pub"))?, key_before);
    let init = run(Command::new(binary("shiftkey-ca")?)
        .args(["init", "--data-dir"])
        .arg(&data))?;
    assert!(!init.status.success());
    assert!(String::from_utf8_lossy(&init.stderr).contains("refusing to overwrite"));
    Ok(())
}
