//! CA keys on a PKCS#11 token (SoftHSM2): generated there, used there, and
//! what they sign accepted by real OpenSSH (`ssh-keygen -L`, `ssh-keygen -Y
//! verify`, `sshd` with `TrustedUserCAKeys`, `ssh` with `@cert-authority`).
//!
//! The signer is driven in-process through `shiftkey_ca::signer_harness`
//! (the CA's commands use it once it is wired in); each test re-runs itself
//! in a child process that sees its throwaway token directory
//! (`shiftkey_tests::softhsm`).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};
use shiftkey_ca::signer_harness::Harness;
use shiftkey_tests::softhsm::{MODULE, SoftHsm, softhsm_test, test_name};
use shiftkey_tests::sshd::Sshd;
use shiftkey_tests::util::{ensure_login_user, require_tool, run, run_ok, ssh_keygen};

use crate::fixtures::LOGIN_USER;

const PIN: &str = "13572468";
const TOKEN: &str = "shiftkey";
const NAMESPACE: &str = shiftkey_wire::RECORDING_NAMESPACE;

fn setup(hsm: &SoftHsm) -> anyhow::Result<()> {
    hsm.init_token(TOKEN, PIN)?;
    hsm.pin_file("pin", PIN)?;
    Ok(())
}

fn uri(hsm: &SoftHsm, object: &str) -> String {
    hsm.uri(TOKEN, object, &hsm.root().join("pin"))
}

#[test]
fn pkcs11_ed25519_keys_sign_what_openssh_accepts() {
    let name = test_name(
        module_path!(),
        "pkcs11_ed25519_keys_sign_what_openssh_accepts",
    );
    softhsm_test(&name, setup, |hsm| openssh_accepts(hsm, "ed25519")).unwrap();
}

#[test]
fn pkcs11_p256_keys_sign_what_openssh_accepts() {
    let name = test_name(module_path!(), "pkcs11_p256_keys_sign_what_openssh_accepts");
    softhsm_test(&name, setup, |hsm| openssh_accepts(hsm, "ecdsa-p256")).unwrap();
}

/// User and host CA keys generated on the token with `algorithm`; a user
/// certificate, a host certificate and an SSHSIG from them, each checked by
/// OpenSSH; an SSH login through a real sshd that trusts only the token's
/// user CA, to a host known only by the token's host CA.
fn openssh_accepts(hsm: &SoftHsm, algorithm: &str) -> anyhow::Result<()> {
    require_tool("ssh-keygen", "openssh-client")?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("ca-data");
    std::fs::create_dir(&data)?;

    let (user_ca, created) = Harness::pkcs11(&data, &uri(hsm, "user-ca"), algorithm, 4)?;
    ensure!(created, "the user CA key was not generated");
    let (host_ca, _) = Harness::pkcs11(&data, &uri(hsm, "host-ca"), algorithm, 4)?;
    ensure!(user_ca.algorithm() == algorithm);
    // Opening again finds the same keys on the token; nothing is generated.
    let (again, created) = Harness::pkcs11(&data, &uri(hsm, "user-ca"), algorithm, 2)?;
    ensure!(!created && again.fingerprint() == user_ca.fingerprint());
    let reopened = Harness::open_pkcs11(&data, &uri(hsm, "host-ca"), 1)?;
    ensure!(reopened.public_line() == host_ca.public_line());

    // The token's own view: both private keys sensitive and never
    // extractable (OpenSC's pkcs11-tool reads the attributes).
    let objects = run_ok(hsm.pkcs11_tool()?.args([
        "--token-label",
        TOKEN,
        "--login",
        "--pin",
        PIN,
        "--list-objects",
        "--type",
        "privkey",
    ]))?;
    let keys: Vec<&str> = objects.split("Private Key Object").skip(1).collect();
    ensure!(keys.len() == 2, "expected two private keys: {objects}");
    for key in keys {
        ensure!(
            key.contains("sensitive") && key.contains("never extractable") && key.contains("local"),
            "a key is not sensitive, never-extractable and generated on the token: {key}"
        );
    }

    // User certificate: ssh-keygen -L reads it and names the token's key.
    let user_key = ssh_keygen(dir.path(), "user", &["-t", "ed25519"])?;
    let user_pub = std::fs::read_to_string(user_key.with_extension("pub"))?;
    let cert = user_ca.user_certificate(user_pub.trim(), &[LOGIN_USER], 42, 10)?;
    let cert_path = dir.path().join("user-cert.pub");
    std::fs::write(&cert_path, format!("{cert}\n"))?;
    let shown = run_ok(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&cert_path),
    )?;
    ensure!(shown.contains("user certificate"), "{shown}");
    ensure!(
        shown.contains(&format!("Signing CA: {}", ca_type(algorithm)))
            && shown.contains(user_ca.fingerprint()),
        "ssh-keygen -L does not name the token key as CA: {shown}"
    );
    ensure!(
        shown.contains(LOGIN_USER) && shown.contains("Serial: 42"),
        "{shown}"
    );

    // Host certificate for the sshd below.
    let host_key = ssh_keygen(dir.path(), "ssh_host_ed25519_key", &["-t", "ed25519"])?;
    let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
    let host_cert = host_ca.host_certificate(host_pub.trim(), &["127.0.0.1"], 7, 60)?;
    let host_cert_path = dir.path().join("ssh_host_ed25519_key-cert.pub");
    std::fs::write(&host_cert_path, format!("{host_cert}\n"))?;
    let shown = run_ok(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&host_cert_path),
    )?;
    ensure!(
        shown.contains("host certificate") && shown.contains(host_ca.fingerprint()),
        "{shown}"
    );

    // SSHSIG, as recording seals are made: ssh-keygen -Y verify accepts it
    // for the manifest and refuses it for anything else.
    let manifest = br#"{"version":1,"session_id":"s-1"}"#;
    let signature = user_ca.sshsig(NAMESPACE, manifest)?;
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "shiftkey-ca namespaces=\"{NAMESPACE}\" {}\n",
            user_ca.public_line()
        ),
    )?;
    let sig_path = dir.path().join("manifest.sig");
    std::fs::write(&sig_path, &signature)?;
    ensure!(
        sshsig_verifies(&allowed, &sig_path, manifest)?,
        "ssh-keygen -Y verify refused the token's SSHSIG"
    );
    ensure!(
        !sshsig_verifies(
            &allowed,
            &sig_path,
            b"{\"version\":1,\"session_id\":\"s-2\"}"
        )?,
        "ssh-keygen -Y verify accepted the SSHSIG for another message"
    );

    // A real sshd that trusts only the token's user CA and presents the
    // host certificate; ssh knows the host only through the host CA.
    ensure_login_user(LOGIN_USER)?;
    let sshd_dir = dir.path().join("sshd");
    std::fs::create_dir(&sshd_dir)?;
    let trusted = sshd_dir.join("trusted_user_ca.pub");
    std::fs::write(
        &trusted,
        format!(
            "{}\n",
            user_ca.public_line_with_comment("shiftkey user CA (token)")?
        ),
    )?;
    let sshd = Sshd::start_with_config(&sshd_dir, |port| {
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nHostCertificate {}\nPidFile none\n\
             UsePAM no\nAuthorizedKeysFile none\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nTrustedUserCAKeys {}\n\
             StrictModes no\nLogLevel VERBOSE\n",
            host_key.display(),
            host_cert_path.display(),
            trusted.display()
        )
    })?;
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("@cert-authority 127.0.0.1 {}\n", host_ca.public_line()),
    )?;
    let out = ssh(&sshd, &known_hosts, &user_key, &cert_path)?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "token-signed",
        "sshd refused the token-signed certificate: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );

    // The same login with a certificate from another CA (a key file) is
    // refused by the same sshd: it really checks which CA signed.
    let other = Harness::key_file(&dir.path().join("other-ca"))?;
    let foreign = other.user_certificate(user_pub.trim(), &[LOGIN_USER], 43, 10)?;
    let foreign_path = dir.path().join("foreign-cert.pub");
    std::fs::write(&foreign_path, format!("{foreign}\n"))?;
    let out = ssh(&sshd, &known_hosts, &user_key, &foreign_path)?;
    ensure!(
        !out.status.success(),
        "sshd accepted a certificate from a CA it does not trust"
    );

    // Nothing was written to the data directory: no key files.
    let written: Vec<_> = std::fs::read_dir(&data)?.collect();
    ensure!(
        written.is_empty(),
        "files in the data directory: {written:?}"
    );
    Ok(())
}

/// `Signing CA:` as `ssh-keygen -L` prints the CA key's type.
fn ca_type(algorithm: &str) -> &'static str {
    if algorithm == "ed25519" {
        "ED25519"
    } else {
        "ECDSA"
    }
}

fn sshsig_verifies(allowed: &Path, signature: &Path, message: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", "shiftkey-ca", "-n", NAMESPACE, "-s"])
        .arg(signature)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ssh-keygen -Y verify")?;
    child
        .stdin
        .take()
        .context("ssh-keygen stdin")?
        .write_all(message)?;
    Ok(child.wait_with_output()?.status.success())
}

/// `ssh` with only this key and certificate, trusting hosts only through
/// `known_hosts` (no prompt, no TOFU).
fn ssh(
    sshd: &Sshd,
    known_hosts: &Path,
    key: &Path,
    cert: &Path,
) -> anyhow::Result<std::process::Output> {
    run(Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg("-i")
        .arg(key)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .arg("-p")
        .arg(sshd.port.to_string())
        .arg(format!("{LOGIN_USER}@127.0.0.1"))
        .arg("echo token-signed")
        .stdin(Stdio::null()))
}

/// What an operator gets wrong, each with an error that says what to fix.
#[test]
fn pkcs11_operator_mistakes_get_clear_errors() {
    let name = test_name(module_path!(), "pkcs11_operator_mistakes_get_clear_errors");
    softhsm_test(
        &name,
        |hsm| {
            setup(hsm)?;
            hsm.pin_file("wrong-pin", "00000000")?;
            Ok(())
        },
        |hsm| {
            let dir = tempfile::tempdir()?;
            let error =
                |result: Result<Harness, shiftkey_ca::signer_harness::HarnessError>| match result {
                    Ok(h) => format!("unexpectedly opened {}", h.location()),
                    Err(e) => e.to_string(),
                };
            let wrong_pin = hsm.uri(TOKEN, "user-ca", &hsm.root().join("wrong-pin"));
            let e = error(Harness::pkcs11(dir.path(), &wrong_pin, "ed25519", 1).map(|(h, _)| h));
            ensure!(
                e.contains("PIN is incorrect") && !e.contains("00000000"),
                "{e}"
            );

            let e = error(Harness::open_pkcs11(
                dir.path(),
                &uri(hsm, "no-such-key"),
                1,
            ));
            ensure!(
                e.contains("no private key matching") && e.contains("object=no-such-key"),
                "{e}"
            );

            let e = error(Harness::open_pkcs11(
                dir.path(),
                &format!("pkcs11:token=nope;object=k?module-path={MODULE}&pin-source=file:/x"),
                1,
            ));
            ensure!(
                e.contains("no token matches") && e.contains(&format!("`{TOKEN}`")),
                "{e}"
            );

            let e = error(Harness::open_pkcs11(
                dir.path(),
                "pkcs11:token=shiftkey;object=k?module-path=/usr/lib/no-such-module.so",
                1,
            ));
            ensure!(e.contains("cannot load the PKCS#11 module"), "{e}");

            let e = error(Harness::open_pkcs11(
                dir.path(),
                "pkcs11:token=shiftkey;object=k",
                1,
            ));
            ensure!(e.contains("module-path="), "{e}");

            let e = error(Harness::open_pkcs11(
                dir.path(),
                &format!("pkcs11:token=shiftkey;object=k?module-path={MODULE}&pin-value={PIN}"),
                1,
            ));
            ensure!(
                e.contains("refuses PINs inside URIs") && !e.contains(PIN),
                "{e}"
            );

            // Nothing above created a key on the token.
            let objects = run_ok(hsm.pkcs11_tool()?.args([
                "--token-label",
                TOKEN,
                "--login",
                "--pin",
                PIN,
                "--list-objects",
            ]))?;
            ensure!(!objects.contains("Private Key Object"), "{objects}");
            Ok(())
        },
    )
    .unwrap();
}
