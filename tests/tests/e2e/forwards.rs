//! Port forwarding through the bastion (`ssh -L`): the CA decides each
//! destination by the session's role — `permit-port-forwarding`, its hosts
//! and its `ports`, `localhost` meaning the target itself — before the
//! target opens any connection; every decision is audited; what passes is
//! recorded both ways. Driven with OpenSSH and with an independent client
//! (asyncssh), each time with listeners on the refused destinations that
//! must never see a connection.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bastion::{Setup, World, events, wait_audit};
use crate::fixtures::{LOGIN_USER, policy};

/// A listener on a destination the role does not allow: it must never be
/// connected to, not even briefly.
struct Trap {
    listener: TcpListener,
    /// `HOST:PORT` as a client asks for it.
    destination: String,
}

impl Trap {
    fn on(ip: IpAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((ip, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let destination = match ip {
            IpAddr::V6(ip) => format!("[{ip}]:{port}"),
            IpAddr::V4(ip) => format!("{ip}:{port}"),
        };
        Ok(Self {
            listener,
            destination,
        })
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Whether anything connected since it was set.
    fn sprung(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

/// This machine's address on its default route: a host the role (which
/// covers only 127.0.0.1) does not cover, reachable from the target. None
/// on a machine with no such address.
fn other_host() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connect only picks the route's source address.
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The bastion world with the `shell` role allowed to forward (its hosts:
/// 127.0.0.1; its ports: the target sshd's).
fn forwarding_world() -> anyhow::Result<World> {
    let policy = policy().0.replacen(
        "extensions = [\"permit-pty\"]\n",
        "extensions = [\"permit-port-forwarding\", \"permit-pty\"]\n",
        1,
    );
    World::build(Setup {
        policy,
        ..Setup::default()
    })
}

/// The refused destinations of a test: a port of the role's host outside
/// its `ports`, and (where this machine has one) another host's port.
struct Traps {
    port_outside: Trap,
    host_outside: Option<Trap>,
}

impl Traps {
    fn set() -> anyhow::Result<Self> {
        Ok(Self {
            port_outside: Trap::on(IpAddr::from([127, 0, 0, 1]))?,
            host_outside: other_host().map(Trap::on).transpose()?,
        })
    }

    /// Each refused destination with the code the CA must give.
    fn expected(&self) -> Vec<(&Trap, &'static str)> {
        let mut all = vec![(&self.port_outside, "port-not-in-role")];
        if let Some(trap) = &self.host_outside {
            all.push((trap, "host-not-in-role"));
        }
        all
    }

    fn none_sprung(&self) -> anyhow::Result<()> {
        for (trap, _) in self.expected() {
            anyhow::ensure!(
                !trap.sprung(),
                "{} was connected to although the CA refused it",
                trap.destination
            );
        }
        Ok(())
    }
}

/// The `session.forward_denied` row for `destination`, with its code.
fn denial(world: &World, destination: &str, code: &str) -> anyhow::Result<()> {
    let row = wait_audit(&world.ca, "session.forward_denied", |r| {
        r["detail"]["destination_as_asked"] == destination
    })?;
    assert_eq!(row["detail"]["denied"], code, "{row}");
    assert_eq!(row["outcome"], "deny", "{row}");
    assert!(
        row["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("local:"),
        "the row names the session's person: {row}"
    );
    Ok(())
}

/// `ssh -L` through the bastion: allowed where the role says, recorded
/// both ways like an exec channel (kind `forward`); refused elsewhere
/// before the target connects, with an audit row each.
#[test]
fn openssh_forwards_reach_only_the_roles_hosts_and_ports() -> anyhow::Result<()> {
    let world = forwarding_world()?;
    let traps = Traps::set()?;
    let allowed_local = shiftkey_tests::util::free_port();
    let mut forwards = vec![
        "-N".to_owned(),
        "-L".to_owned(),
        format!("{allowed_local}:localhost:{}", world.sshd.port),
    ];
    let mut refused_local = Vec::new();
    for (trap, code) in traps.expected() {
        let local = shiftkey_tests::util::free_port();
        forwards.push("-L".into());
        forwards.push(format!("{local}:{}", trap.destination));
        refused_local.push((local, trap, code));
    }
    let args: Vec<&str> = forwards.iter().map(String::as_str).collect();
    let mut ssh = world
        .ssh(LOGIN_USER, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let outcome = (|| -> anyhow::Result<()> {
        // Allowed: `localhost` on the target is the target; its sshd's
        // banner comes back, our line goes in, both recorded.
        let mut stream = connect_local(allowed_local, &world)?;
        let mut banner = [0u8; 64];
        let n = stream.read(&mut banner)?;
        assert!(
            String::from_utf8_lossy(&banner[..n]).starts_with("SSH-2.0-"),
            "{:?}",
            &banner[..n]
        );
        stream.write_all(b"SSH-2.0-forwarded-probe\r\n")?;
        let (_, lines) = world.wait_recording(|l| {
            l.first()
                .is_some_and(|h| h["shiftkey"]["kind"] == "forward")
                && events(l, "i").contains("forwarded-probe")
        })?;
        assert!(events(&lines, "o").starts_with("SSH-2.0-"), "{lines:?}");
        let command = lines[0]["shiftkey"]["command"].as_str().unwrap_or_default();
        assert!(
            command.contains(&format!("direct-tcpip 127.0.0.1:{}", world.sshd.port)),
            "the recording names the destination as the CA checked it: {command}"
        );
        let row = wait_audit(&world.ca, "session.forward", |_| true)?;
        assert_eq!(
            row["detail"]["destination"],
            format!("127.0.0.1:{}", world.sshd.port),
            "{row}"
        );
        drop(stream);
        // Refused: ssh accepts locally, the bastion's channel open fails,
        // the connection closes without a byte.
        for (local, trap, code) in &refused_local {
            let mut stream = connect_local(*local, &world)?;
            let mut buf = [0u8; 16];
            let read = stream.read(&mut buf);
            assert!(
                matches!(read, Ok(0)) || read.is_err(),
                "a refused forward to {} carried data: {read:?}",
                trap.destination
            );
            denial(&world, &trap.destination, code)?;
        }
        traps.none_sprung()
    })();
    let _ = ssh.kill();
    let _ = ssh.wait();
    outcome
}

/// The same with asyncssh's own direct-tcpip channels on a `login%host`
/// connection (no `-J`): the refusal comes back as the channel open's
/// failure, the target never connects, the CA audits each.
#[test]
fn an_independent_clients_forwards_are_decided_by_the_ca() -> anyhow::Result<()> {
    let world = forwarding_world()?;
    let traps = Traps::set()?;
    let allowed = format!("127.0.0.1:{}", world.sshd.port);
    let mut args = vec!["--timeout".to_owned(), "10".into(), "forward".into()];
    args.extend(["--to".into(), allowed.clone()]);
    for (trap, _) in traps.expected() {
        args.extend(["--to".into(), trap.destination.clone()]);
    }
    // A name outside the role too: refused by the CA, not by DNS.
    args.extend(["--to".into(), "outside.example:22".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = world.hostile(&args)?;
    let forwards = result["forwards"].as_array().cloned().unwrap_or_default();
    let of = |to: &str| -> Value {
        forwards
            .iter()
            .find(|f| f["to"] == to)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let inside = of(&allowed);
    assert_eq!(inside["opened"], true, "{result}\n{}", world.logs());
    assert!(
        inside["received"]
            .as_str()
            .unwrap_or_default()
            .starts_with("SSH-2.0-"),
        "{result}"
    );
    for (trap, code) in traps.expected() {
        let outcome = of(&trap.destination);
        assert_eq!(outcome["opened"], false, "{result}");
        assert!(
            outcome["error"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("prohibited"),
            "{result}"
        );
        denial(&world, &trap.destination, code)?;
    }
    assert_eq!(of("outside.example:22")["opened"], false, "{result}");
    denial(&world, "outside.example:22", "host-not-in-role")?;
    traps.none_sprung()?;
    // The port the trap holds is not the target's: the CA saw the
    // difference, not the bastion's guess.
    assert_ne!(traps.port_outside.port(), world.sshd.port);
    Ok(())
}

/// Forwards from a role without `permit-port-forwarding` never reach the
/// CA's destination check: the bastion refuses them from the certificate.
#[test]
fn a_role_without_port_forwarding_forwards_nothing() -> anyhow::Result<()> {
    let world = World::new(None)?;
    let allowed = format!("127.0.0.1:{}", world.sshd.port);
    let result = world.hostile(&["--timeout", "10", "forward", "--to", &allowed])?;
    assert_eq!(result["forwards"][0]["opened"], false, "{result}");
    let rows = world.ca.audit_rows()?;
    assert!(
        !rows.iter().any(|r| r["kind"] == "session.forward"),
        "no forward was allowed"
    );
    Ok(())
}

/// Connects to ssh's local end of a `-L`, waiting for ssh to listen.
fn connect_local(port: u16, world: &World) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                return Ok(s);
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => anyhow::bail!("the forward did not open: {e}\n{}", world.logs()),
        }
    }
}
