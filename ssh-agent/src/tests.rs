//! Tests for the ssh-agent client against the real OpenSSH `ssh-agent`,
//! `ssh-add` and `ssh-keygen`, plus fake agents for the failure paths. A
//! missing OpenSSH tool fails the test with an install hint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ssh_key::certificate::{Builder, CertType};
use ssh_key::getrandom::SysRng;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, Certificate, PrivateKey, PublicKey};

use crate::{Agent, Error, MAX_MESSAGE_LEN, SSH_AUTH_SOCK};

const KEY_ID: &str = "alice@example.com role=db-debug incident=INC-42 req=r_test serial=7";

/// A real `ssh-agent -D -a SOCKET` in a temp dir, killed on drop.
struct TestAgent {
    child: Child,
    sock: PathBuf,
    dir: tempfile::TempDir,
}

impl TestAgent {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ssh-agent not found: install it with `apt-get install -y openssh-client`");
        // The socket file appears at bind(), before listen(): wait until a
        // connection is accepted, not until the file exists.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&sock).is_err() {
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not listen on {}",
                sock.display()
            );
            thread::sleep(Duration::from_millis(20));
        }
        Self { child, sock, dir }
    }

    fn connect(&self) -> Agent {
        Agent::connect(&self.sock).unwrap()
    }

    /// Run an OpenSSH tool with SSH_AUTH_SOCK pointing at this agent.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env(SSH_AUTH_SOCK, &self.sock)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh ed25519 user key and a certificate for it (principal "sktest",
/// valid one hour) signed by a fresh in-memory CA; returns the CA too.
fn key_and_cert() -> (PrivateKey, Certificate, PrivateKey) {
    let ca = PrivateKey::random(&mut rng(), Algorithm::Ed25519).unwrap();
    let key = PrivateKey::random(&mut rng(), Algorithm::Ed25519).unwrap();
    let start = now() - 60;
    let mut builder = Builder::new_with_random_nonce(
        &mut rng(),
        key.public_key().key_data().clone(),
        start,
        start + 3600,
    )
    .unwrap();
    builder
        .serial(7)
        .unwrap()
        .cert_type(CertType::User)
        .unwrap()
        .key_id(KEY_ID)
        .unwrap()
        .valid_principal("sktest")
        .unwrap()
        .extension("permit-pty", "")
        .unwrap();
    let cert = builder.sign(&ca).unwrap();
    (key, cert, ca)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn added_certificate_is_seen_by_openssh_and_expires_with_its_lifetime() {
    let agent = TestAgent::start();
    let (key, cert, ca) = key_and_cert();
    let mut client = agent.connect();
    client
        .add_certificate(&key, &cert, Duration::from_secs(3), "shiftkey db-debug")
        .unwrap();

    // ssh-add -l lists it as an ed25519 certificate.
    let listed = stdout(&agent.run("ssh-add", &["-l"]));
    assert!(listed.contains("(ED25519-CERT)"), "ssh-add -l: {listed}");
    assert!(listed.contains("shiftkey db-debug"), "ssh-add -l: {listed}");

    // ssh-add -L prints the certificate; ssh-keygen -L reads it back.
    let public = stdout(&agent.run("ssh-add", &["-L"]));
    let line = public
        .lines()
        .find(|line| line.starts_with("ssh-ed25519-cert-v01@openssh.com "))
        .unwrap_or_else(|| panic!("no certificate in ssh-add -L: {public}"));
    assert_eq!(
        Certificate::from_openssh(line).unwrap().to_bytes().unwrap(),
        cert.to_bytes().unwrap()
    );
    let cert_file = agent.dir.path().join("id-cert.pub");
    std::fs::write(&cert_file, format!("{line}\n")).unwrap();
    let shown = stdout(&agent.run("ssh-keygen", &["-L", "-f", cert_file.to_str().unwrap()]));
    assert!(
        shown.contains("ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{shown}"
    );
    assert!(shown.contains(&format!("Key ID: \"{KEY_ID}\"")), "{shown}");
    assert!(shown.contains("sktest"), "{shown}");
    assert!(shown.contains("Serial: 7"), "{shown}");

    // The private key went in right: the agent signs with it, and the
    // signature verifies against the certificate's public key.
    let data = agent.dir.path().join("data");
    std::fs::write(&data, b"shiftkey agent test\n").unwrap();
    let signed = agent.run(
        "ssh-keygen",
        &[
            "-Y",
            "sign",
            "-f",
            cert_file.to_str().unwrap(),
            "-n",
            "shiftkey",
            data.to_str().unwrap(),
        ],
    );
    stdout(&signed);
    let checked = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", "shiftkey", "-s"])
        .arg(data.with_extension("sig"))
        .stdin(std::fs::File::open(&data).unwrap())
        .output()
        .unwrap();
    let checked = stdout(&checked);
    assert!(checked.contains("Good \"shiftkey\" signature"), "{checked}");

    // list() returns it with the certificate parsed.
    let identities = client.list().unwrap();
    assert_eq!(identities.len(), 1, "{identities:?}");
    let listed_cert = identities[0]
        .certificate
        .as_ref()
        .expect("certificate parsed");
    assert_eq!(listed_cert.key_id(), KEY_ID);
    assert_eq!(listed_cert.valid_principals(), ["sktest".to_string()]);
    assert_eq!(listed_cert.signature_key(), ca.public_key().key_data());
    assert_eq!(listed_cert.comment(), "shiftkey db-debug");
    assert_eq!(identities[0].key_blob, cert.to_bytes().unwrap());

    // Lifetime honoured: gone after 4 seconds, for us and for ssh-add.
    thread::sleep(Duration::from_secs(4));
    assert!(client.list().unwrap().is_empty());
    let after = agent.run("ssh-add", &["-l"]);
    assert!(
        String::from_utf8_lossy(&after.stdout).contains("no identities"),
        "ssh-add -l after expiry: {after:?}"
    );
}

#[test]
fn remove_deletes_the_identity_and_a_second_remove_is_refused() {
    let agent = TestAgent::start();
    let (key, cert, _) = key_and_cert();
    let mut client = agent.connect();
    client
        .add_certificate(&key, &cert, Duration::from_secs(600), "to remove")
        .unwrap();
    let identities = client.list().unwrap();
    assert_eq!(identities.len(), 1);

    client.remove(&identities[0].key_blob).unwrap();
    assert!(client.list().unwrap().is_empty());
    let listed = agent.run("ssh-add", &["-l"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("no identities"));

    let again = client.remove(&identities[0].key_blob).unwrap_err();
    assert!(matches!(again, Error::Refused { .. }), "{again:?}");
}

#[test]
fn list_parses_plain_keys_without_a_certificate() {
    let agent = TestAgent::start();
    let key_file = agent.dir.path().join("id_plain");
    let generated = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "plain key", "-f"])
        .arg(&key_file)
        .output()
        .unwrap();
    stdout(&generated);
    stdout(&agent.run("ssh-add", &["-q", key_file.to_str().unwrap()]));
    let (key, cert, _) = key_and_cert();
    let mut client = agent.connect();
    client
        .add_certificate(&key, &cert, Duration::from_secs(60), "cert")
        .unwrap();

    let identities = client.list().unwrap();
    assert_eq!(identities.len(), 2, "{identities:?}");
    let plain_public = PublicKey::read_openssh_file(key_file.with_extension("pub")).unwrap();
    let plain = identities
        .iter()
        .find(|i| i.certificate.is_none())
        .expect("the plain key is listed without a certificate");
    assert_eq!(plain.key_blob, plain_public.to_bytes().unwrap());
    let certified = identities
        .iter()
        .find_map(|i| i.certificate.as_ref())
        .expect("the certificate is listed with its certificate parsed");
    assert_eq!(certified.key_id(), KEY_ID);
    assert_eq!(certified.comment(), "cert");
}

#[test]
fn missing_auth_sock_is_its_own_error() {
    let err = Agent::from_env_value(None).unwrap_err();
    assert!(matches!(err, Error::NoAuthSock), "{err:?}");
    assert!(
        err.to_string().contains("eval \"$(ssh-agent -s)\""),
        "{err}"
    );
    let err = Agent::from_env_value(Some("".into())).unwrap_err();
    assert!(matches!(err, Error::NoAuthSock), "{err:?}");
}

#[test]
fn dead_or_missing_socket_is_not_running() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.sock");
    let err = Agent::from_env_value(Some(missing.clone().into())).unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err:?}");
    assert!(err.to_string().contains("not running"), "{err}");

    // An agent that was killed leaves its socket file behind: refused.
    let agent = TestAgent::start();
    let sock = agent.sock.clone();
    let mut killed = agent;
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    if !sock.exists() {
        // ssh-agent removes its socket on SIGTERM; SIGKILL leaves it. Make a
        // stale socket either way.
        drop(UnixListener::bind(&sock).unwrap());
    }
    let err = Agent::connect(&sock).unwrap_err();
    assert!(matches!(err, Error::NotRunning { .. }), "{err:?}");
}

#[test]
fn a_socket_that_is_not_ours_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the socket should be.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"").unwrap();
    let err = Agent::connect(&file).unwrap_err();
    assert!(
        matches!(err, Error::NotRunning { .. } | Error::Connect { .. }),
        "{err:?}"
    );
}

/// A fake agent that answers one request with `reply` (raw bytes, framing
/// included) and returns what it received.
fn fake_agent(reply: Vec<u8>) -> (tempfile::TempDir, PathBuf, thread::JoinHandle<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let mut request = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut request).unwrap();
        let _ = stream.write_all(&reply);
        request
    });
    (dir, sock, handle)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[test]
fn oversized_reply_is_refused_before_reading_it() {
    let mut reply = (MAX_MESSAGE_LEN + 1).to_be_bytes().to_vec();
    reply.push(12);
    let (_dir, sock, handle) = fake_agent(reply);
    let err = Agent::connect(&sock).unwrap().list().unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { len } if len == MAX_MESSAGE_LEN + 1),
        "{err:?}"
    );
    assert_eq!(handle.join().unwrap(), [11]);
}

#[test]
fn failure_reply_to_add_is_refused() {
    let (_dir, sock, handle) = fake_agent(frame(&[5]));
    let (key, cert, _) = key_and_cert();
    let err = Agent::connect(&sock)
        .unwrap()
        .add_certificate(&key, &cert, Duration::from_secs(30), "c")
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");

    // The message on the wire, field by field.
    use ssh_key::encoding::{Decode, Reader};
    let request = handle.join().unwrap();
    let mut r = request.as_slice();
    assert_eq!(u8::decode(&mut r).unwrap(), 25);
    assert_eq!(
        String::decode(&mut r).unwrap(),
        "ssh-ed25519-cert-v01@openssh.com"
    );
    assert_eq!(Vec::<u8>::decode(&mut r).unwrap(), cert.to_bytes().unwrap());
    let public = Vec::<u8>::decode(&mut r).unwrap();
    let ed = key.key_data().ed25519().unwrap();
    assert_eq!(public, ed.public.as_ref());
    let secret = Vec::<u8>::decode(&mut r).unwrap();
    assert_eq!(secret, ed.to_bytes());
    assert_eq!(String::decode(&mut r).unwrap(), "c");
    assert_eq!(u8::decode(&mut r).unwrap(), 1);
    assert_eq!(u32::decode(&mut r).unwrap(), 30);
    assert!(r.is_finished());
}

#[test]
fn malformed_identities_answer_is_an_error() {
    // Claims two identities, carries one.
    let mut body = vec![12, 0, 0, 0, 2];
    body.extend_from_slice(&[0, 0, 0, 1, b'k', 0, 0, 0, 1, b'c']);
    let (_dir, sock, _h) = fake_agent(frame(&body));
    let err = Agent::connect(&sock).unwrap().list().unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");

    // Trailing garbage after the last identity.
    let mut body = vec![12, 0, 0, 0, 1];
    body.extend_from_slice(&[0, 0, 0, 1, b'k', 0, 0, 0, 1, b'c', 0xff]);
    let (_dir, sock, _h) = fake_agent(frame(&body));
    let err = Agent::connect(&sock).unwrap().list().unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");

    // A huge count with no entries must not allocate for the count.
    let (_dir, sock, _h) = fake_agent(frame(&[12, 0xff, 0xff, 0xff, 0xff]));
    let err = Agent::connect(&sock).unwrap().list().unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");

    // Agent hangs up without answering.
    let (_dir, sock, _h) = fake_agent(Vec::new());
    let err = Agent::connect(&sock).unwrap().list().unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

#[test]
fn add_rejects_wrong_key_and_bad_lifetimes() {
    let (key, cert, _) = key_and_cert();
    let (other, _, _) = key_and_cert();
    let agent = TestAgent::start();
    let mut client = agent.connect();
    let err = client
        .add_certificate(&other, &cert, Duration::from_secs(30), "x")
        .unwrap_err();
    assert!(matches!(err, Error::CertificateKeyMismatch), "{err:?}");
    for lifetime in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(u64::from(u32::MAX) + 1),
    ] {
        let err = client
            .add_certificate(&key, &cert, lifetime, "x")
            .unwrap_err();
        assert!(matches!(err, Error::InvalidLifetime(_)), "{err:?}");
    }
    let ecdsa_file = agent.dir.path().join("id_ecdsa");
    stdout(
        &Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
            .arg(&ecdsa_file)
            .output()
            .unwrap(),
    );
    let ecdsa = PrivateKey::read_openssh_file(&ecdsa_file).unwrap();
    let err = client
        .add_certificate(&ecdsa, &cert, Duration::from_secs(30), "x")
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedKey { .. }), "{err:?}");
    // Nothing reached the agent.
    assert!(client.list().unwrap().is_empty());
}
