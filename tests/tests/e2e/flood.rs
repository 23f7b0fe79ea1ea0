//! A local user (`nobody`) floods the CA with idle and half-sent
//! connections, on the Unix socket and on HTTPS (from another source
//! address, 127.0.0.2), while the CA runs with the open-file limit a
//! default systemd unit gives it (1,024): legitimate issuance by other
//! users on both listeners keeps answering, and the CA closes the flood's
//! connections instead of holding them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use shiftkey_tests::ca::TestCa;
use shiftkey_tests::oidc::OidcProvider;
use shiftkey_tests::util::ssh_keygen;

use crate::fixtures::policy;

const CLIENT_ID: &str = "shiftkey-e2e";
/// Connections each flood holds (the issue's attack).
const FLOOD: usize = 1200;
/// How long legitimate requests are made under the flood: past the 10 s
/// header timeout, so that the flood's connections are also closed and
/// reopened meanwhile.
const UNDER_ATTACK: Duration = Duration::from_secs(14);

/// The attacker (as `nobody`): holds `count` connections to a Unix socket path or a
/// `HOST:PORT`, half of them silent and half with request headers begun
/// and never finished, reopens every one the server closes, and writes
/// `open closed refused` to the status file every 200 ms.
const ATTACKER: &str = r#"
import os, resource, selectors, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
kind, where, count, status = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
half = {"unix": b"POST /v1/certificates HTTP/1.1\r\nHost: ca\r\nContent-Length: 90\r\n",
        "tcp": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"}[kind]
held, closed, refused, n = set(), 0, 0, 0
poller = selectors.DefaultSelector()
def dial():
    global refused, n
    try:
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            s.connect(where)
        else:
            host, port = where.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=2, source_address=("127.0.0.2", 0))
            s.setblocking(False)
    except OSError:
        refused += 1
        return None
    n += 1
    if n % 2:
        try:
            s.send(half)
        except OSError:
            pass
    return s
while True:
    while len(held) < count:
        s = dial()
        if s is None:
            break
        held.add(s)
        poller.register(s, selectors.EVENT_READ)
    for key, _ in poller.select(0.2):
        s = key.fileobj
        try:
            gone = s.recv(4096) == b""
        except BlockingIOError:
            gone = False
        except OSError:
            gone = True
        if gone:
            closed += 1
            held.discard(s)
            poller.unregister(s)
            s.close()
    with open(status + ".tmp", "w") as f:
        f.write("%d %d %d\n" % (len(held), closed, refused))
    os.replace(status + ".tmp", status)
"#;

struct Flood {
    child: Child,
    status: std::path::PathBuf,
}

impl Flood {
    fn start(kind: &str, target: &str, dir: &Path) -> anyhow::Result<Self> {
        let status = dir.join(format!("flood-{kind}"));
        let child = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
            ])
            .arg(ATTACKER)
            .args([kind, target, &FLOOD.to_string()])
            .arg(&status)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the flood (python3)")?;
        Ok(Self { child, status })
    }

    /// Connections held, closed by the server, refused at connect.
    fn counts(&self) -> (usize, usize, usize) {
        let text = std::fs::read_to_string(&self.status).unwrap_or_default();
        let n: Vec<usize> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match n[..] {
            [open, closed, refused] => (open, closed, refused),
            _ => (0, 0, 0),
        }
    }

    /// Waits until the flood has dialled all its connections once, or
    /// for 10 s when the CA cannot take them all (the CA without bounds
    /// stops accepting).
    fn wait_until_full(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (open, closed, refused) = self.counts();
            if open + closed + refused >= FLOOD || Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_flood_of_idle_connections_leaves_issuance_answering_on_both_listeners() -> anyhow::Result<()> {
    let provider = OidcProvider::start()?;
    let (text, _) = policy();
    let ca = TestCa::init(&text, Some((provider.issuer(), CLIENT_ID)))?
        .with_open_files(1024)
        .start()?;
    let work = tempfile::tempdir()?;
    let key = ssh_keygen(work.path(), "id", &["-t", "ed25519"])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?
        .trim()
        .to_owned();
    let token = provider.code_flow_token(CLIENT_ID, "alice@example.com", &["sre"])?;
    let body = json!({ "public_key": public, "role": "shell" });

    // The attacker must reach the socket (mode 0666) inside the data
    // directory; its files stay 0600.
    std::fs::set_permissions(
        ca.data_dir(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )?;
    // The status files are written by the attacker.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;
    let socket = ca.socket();
    let unix = Flood::start("unix", &socket.display().to_string(), work.path())?;
    let tcp = Flood::start("tcp", &format!("127.0.0.1:{}", ca.port), work.path())?;
    unix.wait_until_full();
    tcp.wait_until_full();

    let started = Instant::now();
    let mut rounds = 0;
    while started.elapsed() < UNDER_ATTACK {
        let (status, answer) = ca.request_local(&body)?;
        assert_eq!(
            status,
            200,
            "local socket, {rounds} rounds in, flood {:?}: {answer}",
            unix.counts()
        );
        let (status, answer): (u16, Value) = ca.request_https(&token, &body)?;
        assert_eq!(
            status,
            200,
            "HTTPS, {rounds} rounds in, flood {:?}: {answer}",
            tcp.counts()
        );
        rounds += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    // The CA closed the flood's connections (slots, header and idle
    // timeouts) instead of holding them until it ran out of descriptors.
    let (_, unix_closed, _) = unix.counts();
    let (_, tcp_closed, _) = tcp.counts();
    assert!(unix_closed >= FLOOD / 2, "socket flood {:?}", unix.counts());
    assert!(tcp_closed >= FLOOD / 2, "HTTPS flood {:?}", tcp.counts());
    let log = ca.log();
    assert!(
        !log.contains("Too many open files"),
        "the CA ran out of descriptors:\n{log}"
    );
    Ok(())
}
