//! Outgoing notifications and break-glass: the CA announces incidents and
//! emergency access to a webhook, signed so the receiver can trust them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use hmac::Mac;
use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// One request the receiver got: its headers (lower-cased names) and body.
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP receiver on loopback, standing in for a chat relay: it
/// answers 200 to every POST and hands what it got to the test.
fn receiver() -> anyhow::Result<(u16, mpsc::Receiver<Delivery>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut headers = Vec::new();
            let mut line = String::new();
            let mut length = 0usize;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.trim_end().split_once(':') {
                    let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                    if name == "content-length" {
                        length = value.parse().unwrap_or(0);
                    }
                    headers.push((name, value));
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if tx.send(Delivery { headers, body }).is_err() {
                return;
            }
        }
    });
    Ok((port, rx))
}

/// Waits for a delivery of `kind`, checking every delivery's signature.
fn wait_for(rx: &mpsc::Receiver<Delivery>, kind: &str) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(delivery) = rx.recv_timeout(left) else {
            break;
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())?;
        mac.update(&delivery.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            delivery.header("x-shiftkey-signature"),
            Some(expected.as_str()),
            "signed with the shared secret"
        );
        let body: Value = serde_json::from_slice(&delivery.body)?;
        assert_eq!(delivery.header("x-shiftkey-event"), body["kind"].as_str());
        if body["kind"] == kind {
            return Ok(body);
        }
    }
    anyhow::bail!("no {kind} notification arrived")
}

#[test]
fn incidents_and_break_glass_are_announced_signed() -> anyhow::Result<()> {
    let (port, deliveries) = receiver()?;
    let text = format!(
        "{}\n[[role]]\nname = \"break-glass\"\nprincipals = [\"root\"]\nhosts = [\"127.0.0.1\"]\nmax_ttl = \"15m\"\nbreak_glass = true\n\n\
         [[grant]]\nidentities = [\"local:root\"]\nroles = [\"break-glass\"]\n",
        policy().0
    );
    let ca = TestCa::init(&text, None)?;
    let secret = ca.data_dir().join("notify.secret");
    std::fs::write(&secret, SECRET)?;
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let mut config = std::fs::read_to_string(ca.data_dir().join("ca.toml"))?;
    config.push_str(&format!("\n[notifications]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = \"notify.secret\"\n"));
    std::fs::write(ca.data_dir().join("ca.toml"), config)?;
    let ca = ca.start()?;

    let (status, _) = ca.local(
        "POST",
        "/v1/incidents",
        &json!({ "id": "INC-5", "title": "login outage", "severity": "sev1" }),
    )?;
    assert_eq!(status, 201);
    let opened = wait_for(&deliveries, "incident.opened")?;
    assert_eq!(opened["detail"]["incident"], "INC-5");

    // Break-glass: a reason is mandatory, and its use is loud.
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "bg", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    let (status, answer) =
        ca.request_local(&json!({ "public_key": public.trim(), "role": "break-glass" }))?;
    assert_eq!(
        (status, answer["error"].as_str()),
        (403, Some("reason-required")),
        "{answer}"
    );
    let (status, answer) = ca.request_local(&json!({
        "public_key": public.trim(), "role": "break-glass", "reason": "identity provider down, restoring login (INC-5)",
    }))?;
    assert_eq!(status, 200, "{answer}");
    let issued = ca.last_audit("certificate.issued")?;
    assert_eq!(
        issued["detail"]["break_glass"], true,
        "the issuance row is flagged"
    );
    let used = ca.last_audit("break_glass.used")?;
    assert_eq!(used["detail"]["serial"], answer["serial"]);
    let announced = wait_for(&deliveries, "break_glass.used")?;
    assert_eq!(announced["detail"]["serial"], answer["serial"]);
    assert_eq!(
        announced["detail"]["reason"],
        "identity provider down, restoring login (INC-5)"
    );
    Ok(())
}

#[test]
fn a_notification_url_must_be_https_or_loopback() -> anyhow::Result<()> {
    let ca = TestCa::init(&policy().0, None)?;
    let mut config = std::fs::read_to_string(ca.data_dir().join("ca.toml"))?;
    config
        .push_str("\n[notifications]\nurl = \"http://hooks.example.com/x\"\nsecret_file = \"s\"\n");
    std::fs::write(ca.data_dir().join("ca.toml"), config)?;
    let err = match ca.start() {
        Ok(_) => anyhow::bail!("the CA started with a plain-http notification URL"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("notifications.url"), "{err}");
    Ok(())
}
