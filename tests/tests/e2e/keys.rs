//! CA key files as an operator meets them: encrypted at rest in OpenSSH
//! format, unreadable without the passphrase.

use std::process::Command;

use shiftkey_tests::util::{binary, run, run_ok};

#[test]
fn encrypted_keys_are_openssh_format_and_need_the_passphrase() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("ca");
    let ca = binary("shiftkey-ca")?;
    let refused = run(Command::new(&ca)
        .args(["init", "--encrypt", "--data-dir"])
        .arg(&data)
        .env_remove("SHIFTKEY_CA_PASSPHRASE"))?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SHIFTKEY_CA_PASSPHRASE"));

    run_ok(
        Command::new(&ca)
            .args(["init", "--encrypt", "--data-dir"])
            .arg(&data)
            .env("SHIFTKEY_CA_PASSPHRASE", "correct horse"),
    )?;
    let key = data.join("keys/user_ca");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key)?.permissions()) & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !std::fs::read_to_string(&key)?.contains("none"),
        "the key file names a cipher, not none"
    );

    // OpenSSH itself reads it with the passphrase, and only with it.
    let public = run_ok(
        Command::new("ssh-keygen")
            .args(["-y", "-P", "correct horse", "-f"])
            .arg(&key),
    )?;
    assert_eq!(
        public.split_whitespace().nth(1),
        std::fs::read_to_string(data.join("keys/user_ca.pub"))?
            .split_whitespace()
            .nth(1)
    );
    assert!(
        !run(Command::new("ssh-keygen")
            .args(["-y", "-P", "wrong", "-f"])
            .arg(&key))?
        .status
        .success()
    );

    // The CA will not start without it, and says what to do.
    let serve = run(Command::new(&ca)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env_remove("SHIFTKEY_CA_PASSPHRASE"))?;
    assert!(!serve.status.success());
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("set SHIFTKEY_CA_PASSPHRASE"),
        "{}",
        String::from_utf8_lossy(&serve.stderr)
    );
    let wrong = run(Command::new(&ca)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("SHIFTKEY_CA_PASSPHRASE", "wrong"))?;
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    Ok(())
}
