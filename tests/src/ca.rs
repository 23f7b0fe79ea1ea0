//! The real `shiftkey-ca` binary, initialized in a temporary data directory
//! and served on a loopback port, plus the ways tests talk to it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::util::{binary, run, run_ok};

#[derive(Debug)]
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The port is in ca.toml (`set_port`), not picked at each start.
    fixed_port: bool,
    child: Option<Child>,
    client: Option<reqwest::blocking::Client>,
    /// `ulimit -n` for the CA process (`with_open_files`).
    open_files: Option<u32>,
}

impl TestCa {
    /// `shiftkey-ca init` in a fresh directory, then the given policy and,
    /// when `oidc` is `(issuer, client_id)`, an `[oidc]` section.
    pub fn init(policy: &str, oidc: Option<(&str, &str)>) -> anyhow::Result<Self> {
        Self::init_with(policy, oidc, &[])
    }

    /// [`init`](Self::init) with more `shiftkey-ca init` arguments (e.g.
    /// `--user-key pkcs11:...`).
    pub fn init_with(
        policy: &str,
        oidc: Option<(&str, &str)>,
        init_args: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("shiftkey-ca-").tempdir()?;
        run_ok(
            Command::new(binary("shiftkey-ca")?)
                .arg("init")
                .arg("--data-dir")
                .arg(dir.path())
                .args(init_args),
        )?;
        std::fs::write(dir.path().join("policy.toml"), policy)?;
        // Port 0: the CA picks a free port and logs it (`start` reads it),
        // so parallel tests can never race for, or talk to, each other's.
        let port = 0;
        let mut config = std::fs::read_to_string(dir.path().join("ca.toml"))?
            .replace("listen = \"127.0.0.1:8443\"", "listen = \"127.0.0.1:0\"");
        if let Some((issuer, client_id)) = oidc {
            config.push_str(&format!(
                "\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"{client_id}\"\n\
                 # The test provider only speaks plain HTTP on loopback.\ndanger_allow_http_issuer = true\n"
            ));
        }
        std::fs::write(dir.path().join("ca.toml"), config)?;
        Ok(TestCa {
            dir,
            port,
            fixed_port: false,
            child: None,
            client: None,
            open_files: None,
        })
    }

    /// Runs the CA with this open-file limit (`ulimit -n`), as a systemd
    /// unit's `LimitNOFILE` would.
    pub fn with_open_files(mut self, limit: u32) -> Self {
        self.open_files = Some(limit);
        self
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("ca.sock")
    }

    /// Rewrites `ca.toml` (before `start`): e.g. adds `[store]`.
    pub fn configure(&mut self, edit: impl FnOnce(String) -> String) -> anyhow::Result<()> {
        let path = self.dir.path().join("ca.toml");
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, edit(text))?;
        Ok(())
    }

    /// Listens on `port` instead of one the CA picks (a load balancer must
    /// know the port before the CA starts, and again after a restart).
    pub fn set_port(&mut self, port: u16) -> anyhow::Result<()> {
        self.configure(|text| {
            text.replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
        })?;
        self.port = port;
        self.fixed_port = true;
        Ok(())
    }

    /// Another replica of this CA: a data directory of its own (socket,
    /// lock, logs), with this one's CA keys, TLS certificate, review UI
    /// sign-in key, policy and `ca.toml` copied in, as docs/install.md tells
    /// operators to do. Not started; listens on `port`.
    pub fn replica(&self, port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("shiftkey-ca-").tempdir()?;
        for sub in ["keys", "tls"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
            for entry in std::fs::read_dir(self.dir.path().join(sub))? {
                let entry = entry?;
                let to = dir.path().join(sub).join(entry.file_name());
                std::fs::copy(entry.path(), &to)?;
            }
        }
        for file in ["policy.toml", "ca.toml", "ui-login.key"] {
            let from = self.dir.path().join(file);
            if from.exists() {
                std::fs::copy(&from, dir.path().join(file))?;
            }
        }
        let config = std::fs::read_to_string(dir.path().join("ca.toml"))?;
        let listen = format!("listen = \"127.0.0.1:{}\"", self.port);
        anyhow::ensure!(
            config.contains(&listen),
            "the first replica's ca.toml has no {listen}: call set_port on it first"
        );
        std::fs::write(
            dir.path().join("ca.toml"),
            config.replace(&listen, &format!("listen = \"127.0.0.1:{port}\"")),
        )?;
        Ok(TestCa {
            dir,
            port,
            fixed_port: true,
            child: None,
            client: None,
            open_files: None,
        })
    }

    /// Starts `shiftkey-ca serve` and waits until it answers on HTTPS.
    pub fn start(mut self) -> anyhow::Result<Self> {
        self.spawn()?;
        Ok(self)
    }

    /// SIGKILL, no goodbye: what a crash looks like.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts (again) `shiftkey-ca serve` on this data directory and waits
    /// until it answers on HTTPS; the log goes on in the same file.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("ca.log"))?;
        if !self.fixed_port {
            // A new port each start: read it from this start's log line.
            self.port = 0;
        }
        let earlier_lines = self.log().lines().count();
        let mut command = match self.open_files {
            Some(limit) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary("shiftkey-ca")?);
                sh
            }
            None => Command::new(binary("shiftkey-ca")?),
        };
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(self.dir.path())
            .env("SHIFTKEY_LOG", "info,shiftkey_ca=debug")
            .env("SHIFTKEY_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting shiftkey-ca serve")?;
        self.child = Some(child);
        let cert = std::fs::read(self.dir.path().join("tls/cert.pem"))?;
        let client = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&cert)?)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.port == 0 {
                self.port = self.logged_port(earlier_lines).unwrap_or(0);
            }
            if self.port != 0
                && let Ok(resp) = client.get(self.url("/healthz")).send()
                && resp.status().is_success()
            {
                break;
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("shiftkey-ca exited with {status}:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!("shiftkey-ca did not become healthy:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.client = Some(client);
        Ok(())
    }

    /// The port from the CA's "serving" log line (JSON logs) after the
    /// first `skip` lines (those of earlier starts).
    fn logged_port(&self, skip: usize) -> Option<u16> {
        self.log().lines().skip(skip).find_map(|line| {
            let entry: Value = serde_json::from_str(line).ok()?;
            (entry["fields"]["message"] == "shiftkey-ca serving")
                .then(|| {
                    entry["fields"]["addr"]
                        .as_str()?
                        .rsplit(':')
                        .next()?
                        .parse()
                        .ok()
                })
                .flatten()
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.log")).unwrap_or_default()
    }

    pub fn client(&self) -> &reqwest::blocking::Client {
        self.client.as_ref().expect("TestCa::start was called")
    }

    /// True while the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        run_ok(
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid().to_string()),
        )?;
        Ok(())
    }

    /// Stops the CA with SIGTERM and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = run(Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    child.kill()?;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// `POST /v1/certificates` over HTTPS with a Bearer token.
    pub fn request_https(&self, token: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .client()
            .post(self.url("/v1/certificates"))
            .bearer_auth(token)
            .json(body)
            .send()?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().unwrap_or(Value::Null)))
    }

    /// `POST /v1/certificates` over the local socket: the caller is local:USER.
    pub fn request_local(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        let (status, body) = http_over_socket(
            &self.socket(),
            "POST",
            "/v1/certificates",
            body.to_string().as_bytes(),
        )?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Any request over the local socket, as local:USER. `Value::Null` sends
    /// no body at all (for routes that read none: a body the server never
    /// reads can race its close into a connection reset).
    pub fn local(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, body) = http_over_socket(&self.socket(), method, path, &bytes)?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Runs `shiftkey-ca ARGS...`.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<Output> {
        run(Command::new(binary("shiftkey-ca")?).args(args))
    }

    /// The audit log as exported by `shiftkey-ca audit export`.
    pub fn audit_rows(&self) -> anyhow::Result<Vec<Value>> {
        let out = run_ok(
            Command::new(binary("shiftkey-ca")?)
                .args(["audit", "export", "--data-dir"])
                .arg(self.dir.path()),
        )?;
        out.lines()
            .map(|l| serde_json::from_str(l).context("audit export line is JSON"))
            .collect()
    }

    /// The last audit row of `kind`.
    pub fn last_audit(&self, kind: &str) -> anyhow::Result<Value> {
        self.audit_rows()?
            .into_iter()
            .rev()
            .find(|r| r["kind"] == kind)
            .with_context(|| format!("no audit row of kind {kind}"))
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request over a Unix socket, `Connection: close`, returning
/// the status and body. Written by hand because the test client (reqwest)
/// cannot dial Unix sockets; the CA answers with a Content-Length body.
pub fn http_over_socket(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    // The CA may answer (413) and close before a huge body is fully sent;
    // what it answered is still ours to read.
    if let Err(e) = stream.write_all(body)
        && !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        )
    {
        return Err(e.into());
    }
    let mut response = Vec::new();
    // A CA that answers without reading a body it does not need (a GET
    // sent with one) closes with bytes unread: the kernel then reports a
    // reset once the answer has been read. The answer is what counts.
    match stream.read_to_end(&mut response) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !response.is_empty() => {}
        read => {
            read?;
        }
    }
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// Reads a streaming answer (Server-Sent Events) over the Unix socket until
/// `done` holds for the text received so far, or `timeout` passes; returns
/// the text. The raw HTTP (chunk sizes included) is fine for substring checks.
pub fn stream_over_socket(
    socket: &Path,
    path: &str,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !done(&text) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(text)
}
