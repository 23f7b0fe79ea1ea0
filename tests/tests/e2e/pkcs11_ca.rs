//! The CA itself with its keys on a PKCS#11 token (SoftHSM2): `shiftkey-ca
//! init --user-key pkcs11:... --host-key pkcs11:...` generates both keys on
//! the token and writes no private key file; the serving CA then signs
//! everything with them: a user certificate real sshd accepts (`ssh` logs
//! in), the host certificate of an enrolment (`ssh` trusts the host by the
//! host CA), a bastion session's certificate, and a recording seal whose
//! SSHSIG `shiftkey recordings verify` accepts.
//!
//! Runs in a child process that sees its throwaway token
//! (`shiftkey_tests::softhsm`); the CA it starts inherits `SOFTHSM2_CONF`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context, ensure};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::softhsm::{SoftHsm, softhsm_test, test_name};
use shiftkey_tests::sshd::{Sshd, principals_config};
use shiftkey_tests::util::{binary, ensure_login_user, require_tool, run, run_ok, ssh_keygen};
use ssh_key::{Algorithm, Certificate, HashAlg, PrivateKey, PublicKey};

use crate::fixtures::{LOGIN_USER, policy};

const PIN: &str = "24681357";
const TOKEN: &str = "shiftkey-ca";

fn setup(hsm: &SoftHsm) -> anyhow::Result<()> {
    hsm.init_token(TOKEN, PIN)?;
    hsm.pin_file("pin", PIN)?;
    Ok(())
}

fn uri(hsm: &SoftHsm, object: &str) -> String {
    hsm.uri(TOKEN, object, &hsm.root().join("pin"))
}

#[test]
fn a_ca_initialised_on_a_token_signs_logins_hosts_and_seals() {
    let name = test_name(
        module_path!(),
        "a_ca_initialised_on_a_token_signs_logins_hosts_and_seals",
    );
    softhsm_test(&name, setup, |hsm| ca_on_token(hsm, "ed25519")).unwrap();
}

#[test]
fn a_ca_with_p256_keys_on_a_token_signs_logins_hosts_and_seals() {
    let name = test_name(
        module_path!(),
        "a_ca_with_p256_keys_on_a_token_signs_logins_hosts_and_seals",
    );
    softhsm_test(&name, setup, |hsm| ca_on_token(hsm, "ecdsa-p256")).unwrap();
}

/// `algorithm`: what `init --key-algorithm` generates on the token.
fn ca_on_token(hsm: &SoftHsm, algorithm: &str) -> anyhow::Result<()> {
    require_tool("ssh-keygen", "openssh-client")?;
    let (text, _) = policy();
    let user_uri = uri(hsm, "user-ca");
    let host_uri = uri(hsm, "host-ca");
    let ca = TestCa::init_with(
        &text,
        None,
        &[
            "--user-key",
            &user_uri,
            "--host-key",
            &host_uri,
            "--key-algorithm",
            algorithm,
        ],
    )?;

    // Both keys were generated on the token, sensitive and never
    // extractable; the data directory holds no key file at all, and ca.toml
    // names the token keys for `serve`.
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
            key.contains("sensitive") && key.contains("never extractable"),
            "a key can leave the token: {key}"
        );
    }
    ensure!(
        !ca.data_dir().join("keys").exists(),
        "PKCS#11 mode wrote a keys directory: {:?}",
        std::fs::read_dir(ca.data_dir().join("keys"))?.collect::<Vec<_>>()
    );
    let config = std::fs::read_to_string(ca.data_dir().join("ca.toml"))?;
    ensure!(
        config.contains(&format!("user = {user_uri:?}"))
            && config.contains(&format!("host = {host_uri:?}")),
        "ca.toml does not name the token keys:\n{config}"
    );
    ensure!(!config.contains(PIN), "ca.toml holds the PIN");
    let created = ca.last_audit("keys.created")?;
    ensure!(
        created["detail"]["user_ca_location"] == user_uri.as_str()
            && created["detail"]["user_ca_generated"] == true
            && created["detail"]["host_ca_generated"] == true,
        "{created}"
    );

    // Fail closed: with a wrong PIN, or a URI naming no key on the token,
    // `serve` refuses to start, says what to fix, and never shows the PIN.
    let pin_file = hsm.root().join("pin");
    std::fs::write(&pin_file, "00000000\n")?;
    let out = serve_once(&ca)?;
    std::fs::write(&pin_file, format!("{PIN}\n"))?;
    ensure!(
        out.status.code() == Some(1)
            && stderr(&out).contains("PIN is incorrect")
            && !stderr(&out).contains("00000000"),
        "serve with a wrong PIN: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let config_path = ca.data_dir().join("ca.toml");
    std::fs::write(
        &config_path,
        config.replace("object=user-ca?", "object=user-ca-typo?"),
    )?;
    let out = serve_once(&ca)?;
    std::fs::write(&config_path, &config)?;
    ensure!(
        out.status.code() == Some(1)
            && stderr(&out).contains("no private key matching")
            && stderr(&out).contains("object=user-ca-typo"),
        "serve with a URI naming no key: {:?}\n{}",
        out.status,
        stderr(&out)
    );

    let ca = ca.start()?;
    let user_ca = fetch(&ca, "/v1/ca/user.pub")?;
    let host_ca = fetch(&ca, "/v1/ca/host.pub")?;
    let user_ca_key = PublicKey::from_openssh(user_ca.trim())?;
    let host_ca_key = PublicKey::from_openssh(host_ca.trim())?;
    let expected = if algorithm == "ed25519" {
        Algorithm::Ed25519
    } else {
        Algorithm::Ecdsa {
            curve: ssh_key::EcdsaCurve::NistP256,
        }
    };
    ensure!(
        user_ca_key.algorithm() == expected && host_ca_key.algorithm() == expected,
        "the token keys are not {algorithm}: {user_ca}{host_ca}"
    );
    ensure!(
        created["detail"]["user_ca_fingerprint"]
            == user_ca_key
                .fingerprint(HashAlg::Sha256)
                .to_string()
                .as_str(),
        "the CA does not publish the key init made: {created} vs {user_ca}"
    );
    let started = ca.last_audit("ca.started")?;
    ensure!(
        started["detail"]["host_ca_location"] == host_uri.as_str(),
        "{started}"
    );

    // A user certificate from the serving CA, through the issuance path.
    let dir = tempfile::tempdir()?;
    let user_key = ssh_keygen(dir.path(), "user", &["-t", "ed25519"])?;
    let user_pub = std::fs::read_to_string(user_key.with_extension("pub"))?;
    let (status, issued) = ca.request_local(&json!({
        "public_key": user_pub.trim(), "role": "shell",
    }))?;
    ensure!(status == 200, "{issued}\n{}", ca.log());
    let user_cert = Certificate::from_openssh(issued["certificate"].as_str().context("no cert")?)?;
    ensure!(
        user_cert.signature_key().fingerprint(HashAlg::Sha256)
            == user_ca_key.fingerprint(HashAlg::Sha256),
        "the user certificate is not signed by the token's user CA key"
    );
    let cert_path = dir.path().join("user-cert.pub");
    std::fs::write(&cert_path, format!("{}\n", user_cert.to_openssh()?))?;

    // A host enrolment: its host certificate comes from the token's host CA.
    let host_key = ssh_keygen(dir.path(), "ssh_host_ed25519_key", &["-t", "ed25519"])?;
    let host_pub = std::fs::read_to_string(host_key.with_extension("pub"))?;
    let host_cert = enroll(&ca, "db-1", false, host_pub.trim())?;
    ensure!(
        host_cert.signature_key().fingerprint(HashAlg::Sha256)
            == host_ca_key.fingerprint(HashAlg::Sha256),
        "the host certificate is not signed by the token's host CA key"
    );
    let host_cert_path = dir.path().join("ssh_host_ed25519_key-cert.pub");
    std::fs::write(&host_cert_path, format!("{}\n", host_cert.to_openssh()?))?;
    let shown = run_ok(
        Command::new("ssh-keygen")
            .arg("-L")
            .arg("-f")
            .arg(&host_cert_path),
    )?;
    ensure!(shown.contains("host certificate"), "{shown}");

    // Real sshd trusting what /v1/ca/user.pub publishes, presenting the
    // enrolment's certificate; ssh knows the host only by /v1/ca/host.pub.
    ensure_login_user(LOGIN_USER)?;
    let sshd_dir = dir.path().join("sshd");
    std::fs::create_dir(&sshd_dir)?;
    let trusted = sshd_dir.join("trusted_user_ca.pub");
    std::fs::write(&trusted, &user_ca)?;
    let principals = principals_config(&sshd_dir, LOGIN_USER, &[&format!("{LOGIN_USER}@shell")])?;
    let sshd = Sshd::start_with_config(&sshd_dir, |port| {
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nHostCertificate {}\nPidFile none\n\
             UsePAM no\nAuthorizedKeysFile none\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nTrustedUserCAKeys {}\n\
             StrictModes no\nLogLevel VERBOSE\n{principals}",
            host_key.display(),
            host_cert_path.display(),
            trusted.display()
        )
    })?;
    let known_hosts = dir.path().join("known_hosts");
    let mut lines = String::new();
    for line in host_ca.lines().filter(|l| !l.trim().is_empty()) {
        lines.push_str(&format!("@cert-authority 127.0.0.1 {line}\n"));
    }
    std::fs::write(&known_hosts, lines)?;
    let out = ssh(&sshd, &known_hosts, &user_key, &cert_path)?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "token-signed",
        "sshd refused the CA's token-signed certificate: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );

    // A bastion session: its certificate and the recording's seal are made
    // with the token's user CA key; `recordings verify` accepts the seal.
    let bastion_key = new_key()?;
    let bastion_cert = enroll(
        &ca,
        "bastion-1",
        true,
        &bastion_key.public_key().to_openssh()?,
    )?;
    let bastion = Enrolled {
        key: bastion_key,
        certificate: bastion_cert,
    };
    let (status, grant) = signed_json(
        &ca,
        &bastion,
        "/v1/sessions",
        &json!({
            "user_certificate": issued["certificate"],
            "principal": LOGIN_USER,
            "target_host": "127.0.0.1",
            "target_port": 22,
            "client_address": "127.0.0.1:40000",
            "session_key": new_key()?.public_key().to_openssh()?,
        }),
    )?;
    ensure!(status == 200, "{grant}\n{}", ca.log());
    let session_cert =
        Certificate::from_openssh(grant["certificate"].as_str().context("no session cert")?)?;
    ensure!(
        session_cert.signature_key().fingerprint(HashAlg::Sha256)
            == user_ca_key.fingerprint(HashAlg::Sha256),
        "the session certificate is not signed by the token's user CA key"
    );
    let session = grant["session_id"]
        .as_str()
        .context("no session_id")?
        .to_owned();
    let cast = cast(&session)?;
    let (status, body) = signed(
        &ca,
        &bastion,
        &format!("/v1/recordings/{session}/files/0.cast.gz?offset=0"),
        &cast,
    )?;
    ensure!(status == 200, "{}", String::from_utf8_lossy(&body));
    let (status, sealed) = signed_json(
        &ca,
        &bastion,
        &format!("/v1/recordings/{session}/seal"),
        &json!({
            "ended_at": chrono::Utc::now().timestamp(),
            "exit_status": 0,
            "end_reason": "client closed",
            "files": [{ "name": "0.cast.gz", "kind": "shell", "command": null,
                        "bytes": cast.len(), "sha256": hex::encode(Sha256::digest(&cast)) }],
        }),
    )?;
    ensure!(status == 200, "{sealed}\n{}", ca.log());

    let home = tempfile::tempdir()?;
    let bundle = dir.path().join("bundle");
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let out = shiftkey(
        &ca,
        home.path(),
        &["recordings", "export", &session, "--out", &bundle_arg],
    )?;
    ensure!(out.status.success(), "{}", stderr(&out));
    let ca_key = dir.path().join("user_ca.pub");
    std::fs::write(&ca_key, &user_ca)?;
    let ca_key_arg = ca_key.to_string_lossy().into_owned();
    let out = shiftkey(
        &ca,
        home.path(),
        &["recordings", "verify", &bundle_arg, "--ca-key", &ca_key_arg],
    )?;
    ensure!(
        out.status.success() && stdout(&out).trim_end().ends_with("OK"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // The same bundle against another CA key: refused, so the check above
    // really was the token key's signature.
    let other = dir.path().join("other_ca.pub");
    std::fs::write(
        &other,
        format!("{}\n", new_key()?.public_key().to_openssh()?),
    )?;
    let out = shiftkey(
        &ca,
        home.path(),
        &[
            "recordings",
            "verify",
            &bundle_arg,
            "--ca-key",
            &other.to_string_lossy(),
        ],
    )?;
    ensure!(
        !out.status.success(),
        "verify accepted another CA key: {}",
        stdout(&out)
    );

    // Still no key file anywhere in the data directory after all that.
    ensure!(!ca.data_dir().join("keys").exists());
    Ok(())
}

/// `shiftkey-ca serve` that must stop by itself (`timeout` ends one that
/// would serve, with status 124).
fn serve_once(ca: &TestCa) -> anyhow::Result<Output> {
    run(Command::new("timeout")
        .arg("30")
        .arg(binary("shiftkey-ca")?)
        .args(["serve", "--data-dir"])
        .arg(ca.data_dir())
        .stdin(Stdio::null()))
}

fn new_key() -> anyhow::Result<PrivateKey> {
    Ok(PrivateKey::random(
        &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
        Algorithm::Ed25519,
    )?)
}

fn fetch(ca: &TestCa, path: &str) -> anyhow::Result<String> {
    let response = ca.client().get(ca.url(path)).send()?;
    ensure!(response.status().is_success(), "GET {path}");
    Ok(response.text()?)
}

/// An enrolled bastion: its key and the certificate the CA signed.
struct Enrolled {
    key: PrivateKey,
    certificate: Certificate,
}

/// `shiftkey-ca hosts token`, then `POST /v1/hosts/enroll` with `host_key`.
fn enroll(ca: &TestCa, name: &str, bastion: bool, host_key: &str) -> anyhow::Result<Certificate> {
    let dir = ca.data_dir().to_string_lossy().into_owned();
    let principals = format!("{name}.example.com,127.0.0.1");
    let mut args = vec![
        "hosts",
        "token",
        "--data-dir",
        &dir,
        "--name",
        name,
        "--principals",
        &principals,
        "--json",
    ];
    if bastion {
        args.push("--bastion");
    }
    let out = ca.cli(&args)?;
    ensure!(out.status.success(), "{}", stderr(&out));
    let token: Value = serde_json::from_slice(&out.stdout)?;
    let response = ca
        .client()
        .post(ca.url("/v1/hosts/enroll"))
        .json(&json!({ "token": token["token"], "host_key": host_key }))
        .send()?;
    let status = response.status().as_u16();
    let answer: Value = response.json()?;
    ensure!(status == 200, "{answer}\n{}", ca.log());
    Ok(Certificate::from_openssh(
        answer["certificate"].as_str().context("no certificate")?,
    )?)
}

/// A POST signed like an enrolled host signs it.
fn signed(ca: &TestCa, by: &Enrolled, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let ts = u64::try_from(chrono::Utc::now().timestamp())?;
    let authorization =
        shiftkey_wire::host_auth::authorization(&by.key, &by.certificate, "POST", path, ts, body)?;
    let response = ca
        .client()
        .post(ca.url(path))
        .header("authorization", authorization)
        .body(body.to_vec())
        .send()?;
    let status = response.status().as_u16();
    Ok((status, response.bytes()?.to_vec()))
}

fn signed_json(
    ca: &TestCa,
    by: &Enrolled,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let (status, bytes) = signed(ca, by, path, body.to_string().as_bytes())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A short shell cast, gzip, as a bastion writes it.
fn cast(session: &str) -> anyhow::Result<Vec<u8>> {
    let header = json!({
        "version": 2, "width": 80, "height": 24, "timestamp": 1_790_000_000,
        "env": { "TERM": "xterm-256color", "SHELL": "/bin/sh" },
        "shiftkey": { "session": session, "channel": 0, "kind": "shell", "command": null,
                      "identity": "local:root", "principal": LOGIN_USER, "target": "127.0.0.1:22" },
    });
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(
        format!(
            "{header}\n{}\n{}\n{}\n",
            json!([0.1, "o", "$ "]),
            json!([0.5, "i", "hostname\r"]),
            json!([0.6, "o", "hostname\r\ndb-1\r\n$ "]),
        )
        .as_bytes(),
    )?;
    Ok(gz.finish()?)
}

/// `shiftkey ARGS` as the local user on the CA's socket, with its own HOME.
fn shiftkey(ca: &TestCa, home: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let socket = format!("unix:{}", ca.socket().display());
    run(Command::new(binary("shiftkey")?)
        .args(args)
        .args(["--ca", &socket])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null()))
}

/// `ssh` with only this key and certificate, trusting hosts only through
/// `known_hosts`.
fn ssh(sshd: &Sshd, known_hosts: &Path, key: &Path, cert: &Path) -> anyhow::Result<Output> {
    run(Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
        .args(["-o", "LogLevel=ERROR"])
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
